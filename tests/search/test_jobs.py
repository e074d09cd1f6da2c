"""The job lifecycle: claim once, progress, failure text, broker outages, dead workers."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from search.models import Job
from search.services import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def _use_handler(monkeypatch, handler):
    monkeypatch.setattr(jobs, "job_handler", lambda kind: handler)


def test_success_records_progress_and_result(monkeypatch):
    def handler(job, progress):
        progress.set_total(4)
        for _ in range(4):
            progress.advance()
        return {"answer": 42}

    _use_handler(monkeypatch, handler)
    job = Job.objects.create(kind=Job.Kind.PROCESS)
    jobs.job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.progress, job.result) == (
        Job.Status.SUCCEEDED,
        4,
        4,
        1.0,
        {"answer": 42},
    )
    assert job.started_at <= job.finished_at


def test_failure_keeps_a_readable_error(monkeypatch):
    def handler(job, progress):
        raise OSError("No space left on device")

    _use_handler(monkeypatch, handler)
    job = Job.objects.create(kind=Job.Kind.REINDEX)
    jobs.job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "OSError: No space left on device"
    assert "Traceback" not in job.error


def test_a_job_runs_once_even_if_delivered_twice(monkeypatch):
    runs = []
    _use_handler(monkeypatch, lambda job, progress: runs.append(job.pk))
    job = Job.objects.create(kind=Job.Kind.PROCESS)
    jobs.job_execute(job.pk)
    jobs.job_execute(job.pk)
    assert runs == [job.pk]
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_heartbeat_is_stamped_while_running(monkeypatch, settings):
    settings.GEOSIM_JOB_HEARTBEAT_SECONDS = 0.2
    seen = {}

    def handler(job, progress):
        started = Job.objects.get(pk=job.pk).heartbeat_at
        time.sleep(0.8)
        seen["later"] = Job.objects.get(pk=job.pk).heartbeat_at
        seen["started"] = started

    _use_handler(monkeypatch, handler)
    job = Job.objects.create(kind=Job.Kind.PROCESS)
    jobs.job_execute(job.pk, heartbeat=True)
    assert seen["later"] > seen["started"]


def test_broker_down_keeps_job_pending_then_sweep_sends_it(monkeypatch):
    def unreachable(job_id):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(jobs, "_send_run_job", unreachable)
    job = Job.objects.create(kind=Job.Kind.PROCESS)
    assert jobs.job_enqueue(job.pk) is False
    assert Job.objects.get(pk=job.pk).status == Job.Status.PENDING
    sent = []
    monkeypatch.setattr(jobs, "_send_run_job", lambda job_id: sent.append(job_id))
    assert jobs.jobs_enqueue_pending(older_than=timedelta(0)) == 1
    assert sent == [job.pk]


def test_stale_running_jobs_are_failed_and_idempotent_ones_retried():
    long_ago = timezone.now() - timedelta(minutes=5)
    process = Job.objects.create(
        kind=Job.Kind.PROCESS,
        status=Job.Status.RUNNING,
        heartbeat_at=long_ago,
        attempts=1,
        params={"image_ids": [1, 2]},
        total=2,
    )
    reindex = Job.objects.create(kind=Job.Kind.REINDEX, status=Job.Status.RUNNING, heartbeat_at=long_ago, attempts=1)
    alive = Job.objects.create(kind=Job.Kind.REINDEX, status=Job.Status.RUNNING, heartbeat_at=timezone.now())
    exhausted = Job.objects.create(
        kind=Job.Kind.PROCESS, status=Job.Status.RUNNING, heartbeat_at=long_ago, attempts=jobs.MAX_ATTEMPTS
    )
    recovered = jobs.jobs_recover_stale(stale_after=timedelta(seconds=60))
    assert sorted(recovered) == sorted([process.pk, reindex.pk, exhausted.pk])
    for job in (process, reindex, exhausted):
        job.refresh_from_db()
        assert job.status == Job.Status.FAILED
        assert "worker running this job stopped" in job.error
    assert Job.objects.get(pk=alive.pk).status == Job.Status.RUNNING
    retries = {r.kind: r for r in Job.objects.exclude(pk__in=[process.pk, reindex.pk, alive.pk, exhausted.pk])}
    # Each retry ran at once (in-process tasks); its attempts continue the count of the failed job.
    assert sorted(retries) == [Job.Kind.PROCESS, Job.Kind.REINDEX]
    assert (retries[Job.Kind.PROCESS].params, retries[Job.Kind.PROCESS].attempts) == ({"image_ids": [1, 2]}, 2)
    assert retries[Job.Kind.PROCESS].status == Job.Status.SUCCEEDED
    assert retries[Job.Kind.REINDEX].attempts == 2


def test_training_jobs_go_to_their_own_queue(monkeypatch, celery_in_process):
    """A training run must never hold the worker slot that uploads and indexing need."""
    sent = []
    monkeypatch.setattr(celery_in_process, "send_task", lambda name, **kwargs: sent.append(kwargs["queue"]))
    celery_in_process.conf.task_always_eager = False
    try:
        for kind in (Job.Kind.TRAIN_MODEL, Job.Kind.PROCESS, Job.Kind.REINDEX):
            assert jobs.job_enqueue(Job.objects.create(kind=kind).pk) is True
    finally:
        celery_in_process.conf.task_always_eager = True
    assert sent == ["training", "celery", "celery"]
