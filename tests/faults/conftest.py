"""Fault-test harness: throwaway Redis servers on other loopback ports and worker subprocesses.

The shared Redis (6379) and Postgres are never stopped. Workers run as real `celery worker`
processes against the test database (Postgres only: an SQLite test database lives in memory).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on its own loopback port, started and stopped by the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def redis_server():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port())
    yield server
    server.stop()


@pytest.fixture
def process_env(settings, tiny_checkpoint, transactional_db) -> dict[str, str]:
    """Environment for manage.py / celery subprocesses sharing this test's database and data dir."""
    if connection.vendor != "postgresql":
        pytest.skip("subprocess fault tests need Postgres (set DATABASE_URL); the SQLite test DB is in memory")
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="geosim_site.test_settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        GEOSIM_DATA_DIR=str(settings.GEOSIM_DATA_DIR),
        GEOSIM_DEFAULT_CHECKPOINT=str(tiny_checkpoint),
        GEOSIM_INDEX_CHECK_MS="0",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


class Worker:
    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log

    def kill(self) -> None:
        """SIGKILL the worker (and its children): no chance to clean up, like a power cut."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker(tmp_path):
    """Start `celery worker` subprocesses (optionally through a wrapper script); all stopped at teardown."""
    workers: list[Worker] = []

    def start(env: dict[str, str], *, script: Path | None = None, extra_env: dict[str, str] | None = None) -> Worker:
        log = tmp_path / f"worker-{len(workers)}.log"
        argv = [sys.executable, str(script)] if script else [sys.executable, "-m", "celery"]
        argv += [
            "-A",
            "geosim_site",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]
        process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env={**env, **(extra_env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = Worker(process, log)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_until(predicate, *, timeout: float = 60, what: str = "condition", log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
