"""`make demo`'s settings: a stored secret key the README's later commands reuse, the project's own 404 page,
and no faiss import chatter, in a real `manage.py` process."""

import json
import os
import stat
import subprocess
import sys

from tests.conftest import REPO_ROOT

_PROBE = """
import json
from django.conf import settings
from django.test import Client
response = Client(HTTP_HOST="127.0.0.1").get("/no/such/page/")
print(json.dumps({"debug": settings.DEBUG, "status": response.status_code, "body": response.content.decode(),
                  "key": settings.SECRET_KEY}))
"""


def _manage(args, *, data_dir, settings_module=None) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}
    }
    env["GEOSIM_DATA_DIR"] = str(data_dir)
    if settings_module:
        env["DJANGO_SETTINGS_MODULE"] = settings_module
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_demo_settings_store_a_key_show_the_project_404_and_keep_faiss_quiet(tmp_path):
    demo = _manage(["shell", "-c", _PROBE], data_dir=tmp_path, settings_module="geosim_site.demo_settings")
    assert demo.returncode == 0, demo.stderr
    assert "faiss.loader" not in demo.stdout + demo.stderr
    seen = json.loads(demo.stdout.strip().splitlines()[-1])
    assert seen["debug"] is False
    assert seen["status"] == 404
    assert "Back to search" in seen["body"]  # templates/404.html, not Django's technical page
    assert "URLconf" not in seen["body"]

    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == seen["key"]
    assert len(seen["key"]) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    # A plain command afterwards (production settings, no DEBUG, no SECRET_KEY) uses the same key.
    plain = _manage(["shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"], data_dir=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip().splitlines()[-1] == seen["key"]
    assert "faiss.loader" not in plain.stdout + plain.stderr


def test_without_the_demo_key_production_still_refuses(tmp_path):
    result = _manage(["check"], data_dir=tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "secret_key").exists()
