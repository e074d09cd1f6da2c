"""How long the admin's upload page takes to answer for a 2,000-image zip, embedded mode (SQLite, no worker).

    python bench/bench_admin_upload.py --mode background     # the default: jobs on background threads
    python bench/bench_admin_upload.py --mode inline         # jobs in the request (the former behaviour)

Each run uses a fresh GEOSIM_DATA_DIR (a temporary folder), migrates, logs in a superuser through
Django's test client and posts the zip; it reports the page's answer time and how long the import and
processing jobs needed after that. Results go to bench/results/admin_upload.json under the mode's name.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("background", "inline"), default="background")
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        DEBUG="1",
        ALLOWED_HOSTS="testserver",
        GEOSIM_IN_PROCESS_JOBS=args.mode,
        GEOSIM_DATA_DIR=tempfile.mkdtemp(prefix="geosim-upload-bench-"),
        DJANGO_SETTINGS_MODULE="geosim_site.settings",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.test import Client

    from search.services import in_process
    from tests.conftest import image_bytes

    call_command("migrate", verbosity=0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(args.images):
            rock = ("gneiss", "marble", "schist")[i % 3]
            zf.writestr(f"geological_similarity/{rock}/{i:05d}.jpg", image_bytes(seed=i))
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("bench", "bench@example.org", "bench-pw"))
    upload = SimpleUploadedFile("rocks.zip", buffer.getvalue(), "application/zip")
    started = time.perf_counter()
    response = client.post("/admin/search/image/upload/", {"archive": upload})
    answered = time.perf_counter() - started
    in_process.wait_idle(timeout=3600)
    finished = time.perf_counter() - started
    row = {
        "mode": args.mode,
        "images": args.images,
        "status": response.status_code,
        "page_answered_s": round(answered, 2),
        "all_jobs_done_s": round(finished, 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "command": f"python bench/bench_admin_upload.py --mode {args.mode}",
        "python": platform.python_version(),
    }
    print(json.dumps(row))
    out = ROOT / "bench" / "results" / "admin_upload.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results[args.mode] = row
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
