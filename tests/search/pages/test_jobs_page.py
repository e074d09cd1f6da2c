"""The jobs monitor: staff only, every job with status and progress, and a JSON feed for live updates."""

from __future__ import annotations

import pytest

from search.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def some_jobs(db):
    Job.objects.create(kind=Job.Kind.REINDEX, status=Job.Status.RUNNING, progress=0.4, done=4, total=10)
    Job.objects.create(kind=Job.Kind.PROCESS, status=Job.Status.FAILED, error="RuntimeError: disk on fire")


def test_anonymous_and_non_staff_are_sent_to_log_in(client, django_user_model, some_jobs):
    response = client.get("/jobs/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/jobs/")
    client.force_login(django_user_model.objects.create_user("visitor", password="pw-visitor-123"))
    assert client.get("/jobs/").status_code == 302
    assert client.get("/jobs/status.json").status_code == 403


def test_staff_see_jobs_with_progress_and_errors(staff_client, some_jobs):
    response = staff_client.get("/jobs/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Rebuild index" in html and "Process new images" in html
    assert "width: 40%" in html and "4 / 10" in html
    assert "RuntimeError: disk on fire" in html
    assert 'data-open="1"' in html  # a job is open: the page polls


def test_status_feed_for_live_progress(staff_client, some_jobs):
    data = staff_client.get("/jobs/status.json").json()
    assert data["open"] == 1
    running = next(job for job in data["jobs"] if job["status"] == "running")
    assert (running["progress"], running["done"], running["total"]) == (0.4, 4, 10)
    assert any(job["error"] == "RuntimeError: disk on fire" for job in data["jobs"])
