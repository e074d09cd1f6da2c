"""Celery tasks: thin wrappers that take a job id and hand it to the job service."""

from datetime import timedelta

from celery import shared_task
from celery.signals import worker_ready

from search.services.jobs import job_execute, jobs_enqueue_pending, jobs_recover_stale


@shared_task(name="search.run_job", bind=True, acks_late=True)
def run_job(self, job_id: int) -> None:
    job_execute(job_id, heartbeat=not self.request.is_eager)


@shared_task(name="search.sweep_jobs")
def sweep_jobs() -> dict:
    """Periodic (beat): recover jobs whose worker died, re-send jobs that never reached a worker."""
    return {"recovered": jobs_recover_stale(), "resent": jobs_enqueue_pending()}


@worker_ready.connect
def sweep_at_worker_start(sender=None, **kwargs) -> None:
    # Jobs recorded while the broker was down are sent as soon as a worker is up again.
    jobs_recover_stale()
    jobs_enqueue_pending(older_than=timedelta(0))
