"""Celery tasks: thin wrappers that take a job id and hand it to the job service."""

from celery import shared_task

from search.services.jobs import job_execute, jobs_enqueue_pending


@shared_task(name="search.run_job", acks_late=True)
def run_job(job_id: int) -> None:
    job_execute(job_id)


@shared_task(name="search.sweep_pending_jobs")
def sweep_pending_jobs() -> int:
    return jobs_enqueue_pending()
