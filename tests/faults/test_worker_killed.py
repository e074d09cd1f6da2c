"""A worker killed mid-reindex: the old index serves, the job fails with its reason and another worker reruns it."""

import time
from pathlib import Path

import pytest

from search import engine, live_index
from search.models import IndexVersion, Job
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes
from tests.faults.conftest import manage, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow]

SLOW_WORKER = Path(__file__).with_name("slow_build_worker.py")


def test_worker_killed_mid_reindex(redis_server, process_env, start_worker):
    images = [image_ingest(data=image_bytes(seed=i), label="gneiss")[0] for i in range(10)]  # indexed in-process
    old = IndexVersion.objects.get(is_active=True)
    redis_server.start()
    env = {**process_env, "REDIS_URL": redis_server.url, "GEOSIM_JOB_HEARTBEAT_SECONDS": "1"}

    slow = start_worker(env, script=SLOW_WORKER, extra_env={"SLOW_BUILD_SECONDS": "120"})
    assert manage(env, "rebuild_index").returncode == 0
    job = Job.objects.get(kind=Job.Kind.REINDEX)
    wait_until(
        lambda: Job.objects.get(pk=job.pk).status == Job.Status.RUNNING, what="the reindex to start", log=slow.log
    )
    slow.kill()
    time.sleep(4)  # longer than the stale threshold below, counted from the job's last heartbeat

    # The old index keeps serving; nothing half-built is active.
    live_index.reset()
    answer = engine.search_by_bytes(image_bytes(seed=3), k=1)
    assert answer.index_version == old.version
    assert answer.hits[0].image.pk == images[3].pk
    assert IndexVersion.objects.get(is_active=True).pk == old.pk

    # A new worker's start-up sweep finds the job silent, marks it failed with its reason and runs it again.
    recovery = start_worker({**env, "GEOSIM_JOB_STALE_SECONDS": "3"})
    wait_until(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=90, what="the stale job", log=recovery.log)
    failed = Job.objects.get(pk=job.pk)
    assert failed.status == Job.Status.FAILED
    assert "worker running this job stopped" in failed.error
    retry = Job.objects.get(kind=Job.Kind.REINDEX, pk__gt=job.pk)
    wait_until(
        lambda: Job.objects.get(pk=retry.pk).status == Job.Status.SUCCEEDED,
        timeout=90,
        what="the retried rebuild",
        log=recovery.log,
    )
    new = IndexVersion.objects.get(is_active=True)
    assert new.version > old.version and new.vector_count == 10
