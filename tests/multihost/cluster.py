"""GeoSim on several simulated machines: gunicorn and Celery processes inside the hosts of tests/multihost/network.py.

Every process gets the production settings (``geosim_site.settings``, ``DEBUG=0``) and its host's own
``GEOSIM_DATA_DIR``; they share only what the environment names: Postgres, Redis and the bucket.
The test itself plays the operator from the root namespace (``manage.py`` commands, SQL reads).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.conftest import REPO_ROOT
from tests.multihost.network import Host

WEB_PORT = 8000  # inside each host's own namespace, so every web host can use it
SLOW_BUILD_WORKER = REPO_ROOT / "tests" / "faults" / "slow_build_worker.py"


@dataclass
class HostProcess:
    """A process group started inside a host; ``kill`` is a power cut, ``stop`` a clean shutdown."""

    host: Host
    role: str
    process: subprocess.Popen
    log: Path

    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: no chance to clean up, ack a message or finish a write."""
        if self.running():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.running():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""


@dataclass
class Web(HostProcess):
    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{WEB_PORT}"


@dataclass
class Cluster:
    """The shared services' settings and every process started on the hosts (all stopped by ``close``)."""

    shared_env: dict[str, str]
    logs: Path
    operator_dir: Path
    token: str = ""
    processes: list[HostProcess] = field(default_factory=list)

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")
        env = {name: os.environ[name] for name in keep if name in os.environ}
        return {**env, **self.shared_env, "GEOSIM_DATA_DIR": str(data_dir), **extra}

    def start_web(self, host: Host) -> Web:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "geosim_site.wsgi",
            "--bind",
            f"{host.address}:{WEB_PORT}",
            "--workers",
            "1",
            "--threads",
            "2",
            "--timeout",
            "120",
            "--no-control-socket",
        ]  # fmt: skip  (its default path is shared by every gunicorn of the machine)
        web = self._start(host, "web", argv, {}, kind=Web)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if not web.running():
                raise AssertionError(f"web on host {host.name} exited:\n{web.log_tail()}")
            if http_json("GET", f"{web.url}/healthz")[0] > 0:  # 503 before the first index: up all the same
                return web
            time.sleep(0.3)
        raise AssertionError(f"web on host {host.name} did not answer within 120 s:\n{web.log_tail()}")

    def start_worker(self, host: Host, *, slow_build_seconds: float | None = None, **extra_env: str) -> HostProcess:
        """A Celery worker on ``host``; ``slow_build_seconds``: its index builds sleep that long first."""
        script = [str(SLOW_BUILD_WORKER)] if slow_build_seconds else ["-m", "celery"]
        argv = [sys.executable, *script, "-A", "geosim_site", "worker", "--pool", "solo",
                "-n", f"worker@host-{host.name}", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "INFO"]  # fmt: skip
        if slow_build_seconds:
            extra_env["SLOW_BUILD_SECONDS"] = str(slow_build_seconds)
        worker = self._start(host, "worker", argv, extra_env, kind=HostProcess)
        deadline = time.monotonic() + 120
        while " ready." not in worker.log_tail(100_000):
            if not worker.running() or time.monotonic() > deadline:
                raise AssertionError(f"worker on host {host.name} did not start:\n{worker.log_tail()}")
            time.sleep(0.3)
        return worker

    def manage(self, *args: str, **extra_env: str) -> str:
        """Run a management command as an operator from outside every host; returns its stdout."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env(self.operator_dir, **extra_env),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
        return result.stdout

    def sql(self, query: str, params: list | tuple = ()) -> list[tuple]:
        """Rows of one query against the shared database (the operator's view)."""
        with psycopg.connect(self.shared_env["DATABASE_URL"]) as connection:
            return connection.execute(query, params).fetchall()

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def _start(self, host: Host, role: str, argv: list[str], extra_env: dict[str, str], *, kind: type) -> HostProcess:
        log = self.logs / f"{role}-{host.name}-{len(self.processes)}.log"
        process = subprocess.Popen(
            host.command(argv),
            cwd=REPO_ROOT,
            env=self.env(host.data_dir, **extra_env),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = kind(host=host, role=role, process=process, log=log)
        self.processes.append(started)
        return started


def http_json(method: str, url: str, *, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    """(status, parsed JSON body) of one request; status -1 when nothing answered."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 — the test's own hosts
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            return error.code, json.loads(payload or b"{}")
        except ValueError:
            return error.code, {"body": payload[:500].decode(errors="replace")}
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return -1, {}


def http_bytes(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 — the test's own hosts
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body and its Content-Type header."""
    boundary = "geosim-multihost-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, data in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(web: Web, token: str, data: bytes, *, label: str) -> dict:
    body, headers = multipart({"label": label}, {"image": data})
    status, answer = http_json(
        "POST", f"{web.url}/api/v1/images/", body=body, headers={**headers, "Authorization": f"Token {token}"}
    )
    assert status in (200, 201), (status, answer)
    return answer


def search(web: Web, data: bytes, *, k: int = 1) -> tuple[int, dict]:
    body, headers = multipart({"k": str(k)}, {"image": data})
    return http_json("POST", f"{web.url}/api/v1/search/", body=body, headers=headers)


def wait_for(predicate, *, timeout: float, what: str, logs: list[HostProcess] = ()):
    """Poll ``predicate`` until it returns something truthy, and return that; after ``timeout``, fail with the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.role} on host {p.host.name} ---\n{p.log_tail()}" for p in logs)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tails}")
