"""Queue an upload and a rebuild through the API while the broker is unreachable; print how long each took.

Test harness only, run as a subprocess with REDIS_URL pointing at a closed port. Prints one JSON line:
{"upload": {"status", "seconds", "job"}, "rebuild": {...}}.
"""

import json
import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "geosim_site.test_settings")
sys.path.insert(0, os.getcwd())
django.setup()

from django.test.utils import setup_test_environment  # noqa: E402

setup_test_environment()  # the test client's host, as in the suite

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from search.models import Job  # noqa: E402
from tests.conftest import image_bytes  # noqa: E402

client = APIClient()
client.force_login(get_user_model().objects.create_user("broker-outage-staff", is_staff=True))
answers = {}
for what, url, data in (
    ("upload", "/api/v1/images/", {"image": SimpleUploadedFile("rock.jpg", image_bytes(seed=5), "image/jpeg")}),
    ("rebuild", "/api/v1/index/rebuild/", {}),
):
    started = time.monotonic()
    response = client.post(url, data)
    seconds = time.monotonic() - started
    job = Job.objects.order_by("-pk").first()
    answers[what] = {"status": response.status_code, "seconds": round(seconds, 3), "job": job.pk if job else None}
    if response.status_code >= 400:
        answers[what]["body"] = response.content.decode(errors="replace")[:500]
print(json.dumps(answers))
