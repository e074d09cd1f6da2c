"""With a real Celery worker over Redis: an image POSTed by staff becomes findable by POST /api/v1/search/."""

import dataclasses
import time

import pytest

from search.models import Job
from search.services import jobs
from tests.conftest import image_bytes

from .conftest import IMAGES_URL, SEARCH_URL, upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_uploaded_image_is_processed_by_the_worker_and_found(celery_worker, callers, monkeypatch):
    # The new index version goes live inside the job, a moment before the job row is marked succeeded.
    # Widen that moment, so the test cannot pass or fail on which of the two it happens to see first.
    registration = jobs._handlers[Job.Kind.PROCESS]

    def process_then_pause(job, progress):
        result = registration.handler(job, progress)
        time.sleep(1.0)
        return result

    monkeypatch.setitem(jobs._handlers, Job.Kind.PROCESS, dataclasses.replace(registration, handler=process_then_pause))
    data = image_bytes(seed=2024, size=(300, 200))
    created = callers.staff_token.post(IMAGES_URL, {"image": upload(data), "label": "gneiss"})
    assert created.status_code == 201, created.content
    image_id = created.json()["id"]
    deadline = time.monotonic() + 60
    while True:
        response = callers.anonymous.post(SEARCH_URL, {"image": upload(data), "k": 1})
        if (
            response.status_code == 200
            and response.json()["results"][:1]
            and response.json()["results"][0]["id"] == image_id
        ):
            break
        assert response.status_code in (200, 503), response.content
        assert time.monotonic() < deadline, f"not searchable within 60 s: {response.content[:300]!r}"
        time.sleep(0.2)
    assert response.json()["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    job = Job.objects.get(kind=Job.Kind.PROCESS)
    while not job.is_finished:  # searchable already; the worker records the outcome right after
        assert time.monotonic() < deadline, f"job {job.pk} still {job.status} after 60 s"
        time.sleep(0.1)
        job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 1
    detail = callers.staff.get(f"{IMAGES_URL}{image_id}/").json()
    assert detail["thumbnail_url"] and detail["thumbnail_url"].endswith(".webp")
