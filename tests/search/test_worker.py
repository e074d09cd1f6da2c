"""With REDIS_URL set, new images are processed by a real Celery worker over Redis."""

import time

import pytest

from search.models import Job
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for_job(job_id: int, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout}s (status {job.status})")


def test_imported_image_is_processed_by_a_real_worker(celery_worker):
    image, created = image_ingest(data=image_bytes(seed=3, size=(800, 400)), label="gneiss")
    assert created
    job = Job.objects.get(kind=Job.Kind.PROCESS)
    job = wait_for_job(job.pk)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.done, job.total, job.progress) == (1, 1, 1.0)
    assert job.attempts == 1
    image.refresh_from_db()
    assert image.thumbnail.name.endswith(".webp")
