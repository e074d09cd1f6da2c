"""A celery worker whose index builds take long: lets a test kill it in the middle of a reindex.

Test harness only. Usage: python tests/faults/slow_build_worker.py -A geosim_site worker ...
"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "geosim_site.test_settings")
django.setup()

from search.services import indexing  # noqa: E402

_real_build = indexing.build_index


def _slow_build(*args, **kwargs):
    time.sleep(float(os.environ.get("SLOW_BUILD_SECONDS", "60")))
    return _real_build(*args, **kwargs)


indexing.build_index = _slow_build

from celery.__main__ import main  # noqa: E402

sys.argv[0] = "celery"
sys.exit(main())
