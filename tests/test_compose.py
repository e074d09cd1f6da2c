"""docker-compose.yml (no Docker engine here): its services, their environment and health checks."""

import re
import time

import pytest
import yaml
from botocore.exceptions import ClientError

from tests.conftest import REPO_ROOT


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_every_service_has_a_healthcheck():
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "seaweedfs", "web", "worker", "worker-2", "trainer"}
    for name, service in services.items():
        assert "healthcheck" in service, name


def test_web_and_worker_share_env_and_data_volume():
    services = _compose()["services"]
    for name in ("web", "worker", "worker-2", "trainer"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["GEOSIM_DATA_DIR"] == "/data"
        assert env["DEBUG"] == "0"
        assert "SECRET_KEY" in env
        assert "geosim-data:/data" in services[name]["volumes"]
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "gunicorn" in services["web"]["command"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "geosim_site", "worker"]


def test_training_has_its_own_worker_and_queue():
    """Training runs for minutes to hours: the default worker must not consume its queue, the trainer only it."""
    services = _compose()["services"]
    for name in ("worker", "worker-2"):
        command = services[name]["command"]
        assert "training" not in command[command.index("-Q") + 1].split(",")
    trainer = services["trainer"]["command"]
    assert trainer[trainer.index("-Q") + 1] == "training"
    assert "--beat" not in trainer


def test_dockerfile_installs_pinned_requirements():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile


def test_web_and_workers_store_media_in_the_object_store():
    services = _compose()["services"]
    store = services["seaweedfs"]
    for name in ("web", "worker", "worker-2"):
        env = services[name]["environment"]
        assert env["GEOSIM_STORAGE_URL"] == f"s3://{store['environment']['S3_BUCKET']}/media"
        assert env["GEOSIM_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key] == store["environment"][key], key  # the one identity the store accepts
        assert services[name]["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
    assert "-ip=seaweedfs" in store["command"] and "seaweedfs-data:/data" in store["volumes"]


def test_two_workers_and_one_beat():
    services = _compose()["services"]
    workers = [
        s
        for name, s in services.items()
        if s.get("command", [])[:4] == ["celery", "-A", "geosim_site", "worker"] and name != "trainer"
    ]
    assert len(workers) == 2
    assert sum("--beat" in worker["command"] for worker in workers) == 1  # the job sweep runs once
    assert services["worker-2"]["volumes"] == services["worker"]["volumes"]
    for worker in workers:  # both take indexing work and the explorer's projections
        assert worker["command"][worker["command"].index("-Q") + 1] == "celery,geosim-low"


def _compose_default(value: str) -> str:
    """What docker compose substitutes for ``${NAME:-default}`` when NAME is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.mark.slow
@pytest.mark.objectstore
def test_the_object_store_service_starts_with_the_bucket_and_refuses_other_keys(object_store, tmp_path):
    """Run the compose service's own `weed` command line (on free local ports) with its environment."""
    from tests.object_store import start_object_store, stop_object_store

    store_service = _compose()["services"]["seaweedfs"]
    env = {key: _compose_default(value) for key, value in store_service["environment"].items()}
    web_env = {key: _compose_default(str(value)) for key, value in _compose()["services"]["web"]["environment"].items()}
    kept = [arg for arg in store_service["command"][1:] if not arg.startswith(("-dir=", "-ip=", "-ip.bind="))]
    weed = object_store.process.args[0]
    started = start_object_store(weed, tmp_path, extra_args=kept, environment=env)
    try:
        bucket = web_env["GEOSIM_STORAGE_URL"].removeprefix("s3://").split("/")[0]
        client = started.client(access_key=web_env["AWS_ACCESS_KEY_ID"], secret_key=web_env["AWS_SECRET_ACCESS_KEY"])
        deadline = time.monotonic() + 30  # the bucket is created just after the gateway starts answering
        while bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
            assert time.monotonic() < deadline, f"bucket {bucket} was not created:\n{started.log_path.read_text()}"
            time.sleep(0.2)
        client.put_object(Bucket=bucket, Key="media/probe.txt", Body=b"ok")
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            started.client(attempts=1).put_object(Bucket=bucket, Key="media/other.txt", Body=b"no")
    finally:
        stop_object_store(started)
