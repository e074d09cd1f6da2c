"""GET /api/v1/jobs/ and /api/v1/jobs/<id>/: job status and progress, for staff."""

import pytest

from search.models import Job

from .conftest import CALLERS, JOBS_URL, WRITE_DENIED, assert_error


@pytest.fixture
def job(db) -> Job:
    return Job.objects.create(
        kind=Job.Kind.REINDEX, status=Job.Status.FAILED, done=3, total=4, progress=0.75, error="RuntimeError: boom"
    )


@pytest.mark.parametrize("who", CALLERS)
def test_only_staff_may_read_jobs(callers, job, who):
    for url in (f"{JOBS_URL}{job.pk}/", JOBS_URL):
        response = callers[who].get(url)
        if who in WRITE_DENIED:
            assert_error(response, WRITE_DENIED[who])
        else:
            assert response.status_code == 200


def test_job_shape(callers, job):
    body = callers.staff_token.get(f"{JOBS_URL}{job.pk}/").json()
    assert {"id", "kind", "status", "progress", "error"} <= body.keys()
    assert body["id"] == job.pk
    assert (body["kind"], body["status"], body["progress"], body["error"]) == (
        "reindex",
        "failed",
        0.75,
        "RuntimeError: boom",
    )
    assert (body["done"], body["total"]) == (3, 4)
    assert body["created_at"] and body["finished_at"] is None


def test_list_is_newest_first_and_paginated(callers, job):
    newer = Job.objects.create(kind=Job.Kind.PROCESS, total=1)
    body = callers.staff.get(JOBS_URL).json()
    assert body["count"] == 2
    assert [item["id"] for item in body["results"]] == [newer.pk, job.pk]


def test_unknown_job_is_404_json(callers, db):
    assert_error(callers.staff.get(f"{JOBS_URL}31337/"), 404, "not_found")
    assert_error(callers.staff.get(f"{JOBS_URL}nope/"), 404)
