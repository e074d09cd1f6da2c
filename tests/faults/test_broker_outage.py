"""Redis down while images are uploaded: requests answer at once, jobs wait, and run when Redis is back."""

import json
import os
import subprocess
import sys

import pytest

from search.models import Image, IndexVersion, Job
from search.services import jobs
from tests.conftest import REPO_ROOT, write_tree
from tests.faults.conftest import free_port, manage, wait_until

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


def test_requests_that_queue_jobs_answer_at_once_while_redis_is_down(process_env, tmp_path):
    """An upload and a rebuild answer without waiting out a reconnect loop; their jobs stay pending for the sweep."""
    env = {**process_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # a closed port: Redis is down
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests/faults/enqueue_while_redis_is_down.py")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert (answers["upload"]["status"], answers["rebuild"]["status"]) == (201, 202), answers
    for what in ("upload", "rebuild"):
        job = Job.objects.get(pk=answers[what]["job"])
        assert (job.status, job.error) == (Job.Status.PENDING, jobs.QUEUE_UNREACHABLE), what
        # Before the fix each took ~20 s (the result backend's reconnect loop); now well under a second.
        assert answers[what]["seconds"] < 5, answers


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis broker (REDIS_URL)")
def test_the_broker_timeouts_reach_the_redis_client(celery_in_process):
    """Publishing gives up fast: short connect/socket timeouts on redis-py, no connect retry, no publish retry."""
    from django.conf import settings

    with celery_in_process.connection_for_write() as connection:
        pool_kwargs = connection.default_channel.client.connection_pool.connection_kwargs
        assert pool_kwargs["socket_connect_timeout"] == settings.BROKER_CONNECT_TIMEOUT_S <= 1
        assert pool_kwargs["socket_timeout"] == settings.BROKER_SOCKET_TIMEOUT_S <= 2
        assert connection.transport_options["max_retries"] == 0
    assert celery_in_process.conf.task_publish_retry is False
    assert celery_in_process.conf.task_ignore_result is True
