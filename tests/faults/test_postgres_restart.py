"""Postgres restarted under load: the web process recovers by itself and /healthz tells the truth."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO_ROOT, image_bytes, write_tree
from tests.faults.conftest import free_port, wait_until
from tests.postgres_server import ThrowawayPostgres, postgres_unavailable

pytestmark = [pytest.mark.slow]


@pytest.fixture
def throwaway_postgres():
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    server = ThrowawayPostgres(port=free_port())
    server.start()
    yield server
    server.destroy()


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _search(base: str, data: bytes) -> int:
    boundary = "geosimboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base}/api/v1/search/", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return -1


def test_web_recovers_after_postgres_restart(throwaway_postgres, tiny_checkpoint, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DEBUG"}}
    env.update(
        DATABASE_URL=throwaway_postgres.url,
        SECRET_KEY="restart-test-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        GEOSIM_DATA_DIR=str(tmp_path / "var"),
        GEOSIM_DEFAULT_CHECKPOINT=str(tiny_checkpoint),
        GEOSIM_SEARCH_RATE="off",
        GEOSIM_INDEX_CHECK_MS="0",
        DJANGO_SETTINGS_MODULE="geosim_site.settings",
    )
    manage = [sys.executable, "manage.py"]
    for args in (["migrate", "-v0"], ["import_images", str(write_tree(tmp_path / "rocks")), "--no-progress"]):
        result = subprocess.run(manage + args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "geosim_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "60",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=(tmp_path / "web.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    query = image_bytes(seed=1)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            statuses.append(_search(base, query))
            time.sleep(0.02)

    try:
        wait_until(lambda: _search(base, query) == 200, timeout=120, what="the web server", log=tmp_path / "web.log")
        status, body = _get(f"{base}/healthz")
        assert status == 200 and body["database"]["ok"] and body["index"]["ok"]
        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(1)

        throwaway_postgres.stop()
        wait_until(lambda: _get(f"{base}/healthz")[0] == 503, timeout=30, what="healthz to report the outage")
        status, body = _get(f"{base}/healthz")
        assert body["database"]["ok"] is False
        time.sleep(1)

        throwaway_postgres.start()
        wait_until(lambda: _get(f"{base}/healthz")[0] == 200, timeout=30, what="healthz to recover")
        wait_until(lambda: statuses[-1] == 200, timeout=30, what="searches to recover")
        stop.set()
        loader.join(timeout=30)
        assert server.poll() is None  # the same process recovered, nothing restarted it
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)
    assert 500 not in statuses, "a search answered 500 during the outage"
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(503) >= 1 and statuses.count(200) >= 2
