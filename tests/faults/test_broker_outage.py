"""Redis down while images are uploaded: they are stored, their jobs wait, and run when Redis is back."""

import pytest

from search.models import Image, IndexVersion, Job
from tests.conftest import write_tree
from tests.faults.conftest import manage, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def test_uploads_during_a_redis_outage_are_processed_when_it_returns(redis_server, process_env, start_worker, tmp_path):
    env = {**process_env, "REDIS_URL": redis_server.url}  # nothing listens there yet: Redis is down
    tree = write_tree(tmp_path / "rocks", per_class=4)

    result = manage(env, "import_images", str(tree), "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "added 12, duplicates 0, rejected 0" in result.stdout
    assert "1 job(s) waiting for the task queue" in result.stdout
    assert Image.objects.count() == 12
    job = Job.objects.get(kind=Job.Kind.PROCESS)
    assert job.status == Job.Status.PENDING

    redis_server.start()
    worker = start_worker(env)
    wait_until(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=90, what="the pending job", log=worker.log)
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
    assert IndexVersion.objects.get(is_active=True).vector_count == 12
