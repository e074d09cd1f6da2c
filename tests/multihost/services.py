"""The services the simulated machines share, each a throwaway server of this test on the bridge's address.

Postgres (tests/postgres_server.py), Redis and SeaweedFS (tests/object_store.py) listen only on the
bridge's address, never on loopback or the machine's other interfaces, on ports of this test's
range (7700-7799; SeaweedFS's gRPC ports are those + 10000). An address is drawn per run, so two
runs cannot collide; the machine's own Postgres and Redis are never touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

POSTGRES_PORT = 7701
REDIS_PORT = 7702
OBJECT_STORE_PORTS = {"s3": 7710, "master": 7711, "volume": 7712, "filer": 7713, "admin": 7714}


def wait_for_port(address: str, port: int, *, timeout: float = 60, what: str = "server") -> None:
    """Return once something accepts connections on ``address``:``port``; RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(1)
            if probe.connect_ex((address, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {address}:{port} within {timeout} s")


@dataclass
class Redis:
    """A throwaway redis-server on ``address`` only, without persistence."""

    address: str
    port: int = REDIS_PORT
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{self.port}/0"

    @staticmethod
    def unavailable() -> str | None:
        return None if shutil.which("redis-server") else "redis-server is not installed"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                self.address,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.address, self.port, what="redis-server")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
