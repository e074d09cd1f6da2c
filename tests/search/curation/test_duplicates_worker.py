"""With a real Celery worker over Redis: a duplicates job started through the API runs on the worker."""

from __future__ import annotations

import time

import pytest

from search.archives import SourceFile
from search.models import Job
from search.services.ingestion import images_import
from tests.conftest import image_bytes
from tests.search.curation.test_duplicates import DUPLICATES_URL, _reencoded

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait(job_id: int, deadline: float) -> Job:
    job = Job.objects.get(pk=job_id)
    while not job.is_finished:
        assert time.monotonic() < deadline, f"job {job.pk} ({job.kind}) still {job.status}"
        time.sleep(0.2)
        job.refresh_from_db()
    return job


def test_the_duplicates_job_runs_on_the_worker(celery_worker, callers):
    original = image_bytes(seed=71)
    files = [
        SourceFile(name="a.jpg", data=original, label="gneiss"),
        SourceFile(name="a-copy.png", data=_reencoded(original, scale=2.0), label="gneiss"),
        SourceFile(name="b.jpg", data=image_bytes(seed=72), label="schist"),
    ]
    summary = images_import(files)
    deadline = time.monotonic() + 120
    for job_id in summary.job_ids:
        assert _wait(job_id, deadline).status == Job.Status.SUCCEEDED
    started = callers.staff_token.post(f"{DUPLICATES_URL}find/")
    assert started.status_code == 202, started.content
    job = _wait(started.json()["job"], deadline)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 1 and job.result["groups"] == 1
    groups = callers.staff_token.get(DUPLICATES_URL).json()["results"]
    assert [{m["id"] for m in g["images"]} for g in groups] == [set(summary.image_ids[:2])]
