"""docker-compose.yml (no Docker engine here): its services, their environment and health checks."""

import yaml

from tests.conftest import REPO_ROOT


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_five_services_with_healthchecks():
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "trainer"}
    for name, service in services.items():
        assert "healthcheck" in service, name


def test_web_and_worker_share_env_and_data_volume():
    services = _compose()["services"]
    for name in ("web", "worker", "trainer"):
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
    worker, trainer = services["worker"]["command"], services["trainer"]["command"]
    assert worker[worker.index("-Q") + 1] == "celery"
    assert trainer[trainer.index("-Q") + 1] == "training"
    assert "--beat" not in trainer


def test_dockerfile_installs_pinned_requirements():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile
