"""A throwaway PostgreSQL cluster for tests that stop, restart or isolate it (never the machine's own).

``initdb`` + ``pg_ctl`` from the newest installed server version, run as the ``postgres`` user when
the tests run as root (Postgres refuses root). It trusts every connection and listens on one
address only; the cluster lives in a temporary directory under /tmp (pytest's own is root-only,
which the postgres user could not enter).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))), None)


def postgres_unavailable() -> str | None:
    """Why a throwaway cluster cannot run here (a reason for a skip), or None."""
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without `runuser` to start Postgres as the postgres user"
    return None


def _as_postgres(*argv: str) -> subprocess.CompletedProcess:
    command = list(argv)
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


class ThrowawayPostgres:
    """A cluster on ``address``:``port``, initialised at construction; ``url`` names its ``database``."""

    def __init__(self, *, port: int, address: str = "127.0.0.1", database: str = "postgres") -> None:
        self.port = port
        self.address = address
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="geosim-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.url = f"postgres://postgres@{address}:{port}/{database}"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        result = _as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        assert result.returncode == 0, result.stderr
        if address != "127.0.0.1":  # clients on the address's own subnet (other machines, or namespaces)
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet trust\n")

    def start(self) -> None:
        # fsync off: a test cluster, thrown away at the end; its crash safety is not what is tested.
        options = f"-p {self.port} -c listen_addresses={self.address} -k {self.root} -c fsync=off"
        result = _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l", str(self.root / "log"), "start"
        )
        assert result.returncode == 0, result.stderr + result.stdout + self.log_tail()
        if self.database != "postgres":
            created = _as_postgres(
                str(PG_BIN / "createdb"), "-h", self.address, "-p", str(self.port), "-U", "postgres", self.database
            )
            assert created.returncode == 0 or "already exists" in created.stderr, created.stderr

    def stop(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        log = self.root / "log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""
