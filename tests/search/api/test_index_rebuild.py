"""POST /api/v1/index/rebuild/: staff start a rebuild and get its job id (202)."""

import pytest

from search.models import IndexVersion, Job

from .conftest import CALLERS, REBUILD_URL, WRITE_DENIED, assert_error


@pytest.mark.parametrize("who", CALLERS)
def test_only_staff_may_rebuild(callers, who):
    response = callers[who].post(REBUILD_URL)
    if who in WRITE_DENIED:
        assert_error(response, WRITE_DENIED[who])
        assert not Job.objects.filter(kind=Job.Kind.REINDEX).exists()
    else:
        assert response.status_code == 202, response.content


def test_rebuild_is_202_and_the_job_succeeds(callers, collection):
    before = IndexVersion.objects.get(is_active=True).version
    response = callers.staff_token.post(REBUILD_URL)
    assert response.status_code == 202
    body = response.json()
    job = Job.objects.get(pk=body["job"])
    assert body["status_url"] == f"http://testserver/api/v1/jobs/{job.pk}/"
    assert job.kind == Job.Kind.REINDEX
    assert job.created_by.username == "staff"
    assert job.status == Job.Status.SUCCEEDED, job.error  # in-process tasks: done before the answer
    assert IndexVersion.objects.get(is_active=True).version > before
    status = callers.staff_token.get(body["status_url"]).json()
    assert (status["status"], status["progress"]) == ("succeeded", 1.0)


def test_get_is_not_allowed(callers, db):
    assert_error(callers.staff.get(REBUILD_URL), 405, "method_not_allowed")
