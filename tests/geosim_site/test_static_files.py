"""Production (DEBUG off, gunicorn): pages work before `collectstatic`, and use hashed files after it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.faults.conftest import free_port

pytestmark = pytest.mark.slow

CSS_LINK = re.compile(r'<link rel="stylesheet" href="(/static/geosim/geosim[^"]*\.css)"')


def _production_env(data_dir: Path) -> dict[str, str]:
    # DJANGO_ALLOW_ASYNC_UNSAFE: set by the browser tests for their session; a deployment never has it.
    drop = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("GEOSIM_")}
    env.update(
        DJANGO_SETTINGS_MODULE="geosim_site.settings",
        DEBUG="0",
        SECRET_KEY="static-files-test-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        GEOSIM_DATA_DIR=str(data_dir),
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


class _Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "geosim_site.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "1"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while self.get("/healthz")[0] is None:
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)

    def get(self, path: str) -> tuple[int | None, dict, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as response:  # noqa: S310
                return response.status, dict(response.headers), response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode(errors="replace")
        except OSError:
            return None, {}, ""

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _check_site(server: _Server) -> str:
    """Every kind of page answers as it should; returns the stylesheet URL the page links."""
    status, _, page = server.get("/")
    assert status == 200, page[-2000:]
    css = CSS_LINK.search(page)
    assert css, page[:2000]
    status, _, body = server.get(css.group(1))
    assert status == 200 and "{" in body
    status, headers, body = server.get("/api/v1/no-such-endpoint/")
    assert status == 404 and headers["Content-Type"].startswith("application/json"), body[:500]
    status, headers, body = server.get("/no-such-page/")
    assert status == 404 and headers["Content-Type"].startswith("text/html"), body[:500]
    return css.group(1)


def test_pages_work_before_and_after_collectstatic(tmp_path):
    env = _production_env(tmp_path / "data")
    _manage(env, "migrate", "--no-input")
    warning = _manage(env, "check", "--deploy").stderr
    assert "geosim.W001" in warning and "manage.py collectstatic --noinput" in warning  # names the command

    server = _Server(env, tmp_path / "before.log")
    try:
        assert _check_site(server) == "/static/geosim/geosim.css"  # plain name, served from the source
    finally:
        server.stop()

    _manage(env, "collectstatic", "--noinput")
    server = _Server(env, tmp_path / "after.log")
    try:
        hashed = _check_site(server)
        assert re.fullmatch(r"/static/geosim/geosim\.[0-9a-f]{12}\.css", hashed)
        assert "immutable" in server.get(hashed)[1].get("Cache-Control", "")
    finally:
        server.stop()


def test_a_file_missing_from_an_older_manifest_links_its_plain_name(tmp_path):
    """An upgrade that forgot collectstatic: the new file is not in the manifest, the page still renders."""
    from geosim_site.staticfiles import StaticFilesStorage

    (tmp_path / "staticfiles.json").write_text(
        json.dumps({"version": "1.1", "paths": {"geosim/old.css": "geosim/old.0123456789ab.css"}, "hash": "x"})
    )
    storage = StaticFilesStorage(location=tmp_path, base_url="/static/")
    assert storage.url("geosim/old.css") == "/static/geosim/old.0123456789ab.css"
    assert storage.url("geosim/new.css") == "/static/geosim/new.css"


def test_without_a_manifest_plain_names_are_linked(tmp_path):
    from geosim_site.staticfiles import StaticFilesStorage

    assert StaticFilesStorage(location=tmp_path, base_url="/static/").url("geosim/a.css") == "/static/geosim/a.css"
