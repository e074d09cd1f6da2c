"""Admin additions: a "Rebuild index" button, "Activate this model", links to the jobs page."""

from __future__ import annotations

import pytest

from search.models import Job, ModelVersion
from search.services.model_versions import model_version_register

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client, admin_user):
    client.force_login(admin_user)
    return client


def test_rebuild_button_starts_a_job_and_leads_to_the_jobs_page(admin, indexed):
    page = admin.get("/admin/search/indexversion/").content.decode()
    assert "Rebuild index" in page and 'href="/jobs/"' in page
    assert "Rebuild index" in admin.get("/admin/search/job/").content.decode()
    response = admin.post("/admin/search/indexversion/rebuild/", follow=True)
    job = Job.objects.get(kind=Job.Kind.REINDEX)
    assert response.redirect_chain[-1][0] == "/jobs/"
    assert f"Index rebuild started: job #{job.pk}" in response.content.decode()
    assert admin.get("/admin/search/job/rebuild/").status_code == 302  # GET changes nothing
    assert Job.objects.filter(kind=Job.Kind.REINDEX).count() == 1


def test_staff_without_model_permissions_may_rebuild_as_through_the_api(client, django_user_model, indexed):
    """search.access.may_curate: the admin and the API agree that any active staff user may rebuild."""
    client.force_login(django_user_model.objects.create_user("helper", is_staff=True))
    response = client.post("/admin/search/indexversion/rebuild/")
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert Job.objects.filter(kind=Job.Kind.REINDEX).count() == 1
    assert client.post("/api/v1/index/rebuild/").status_code == 202


def test_staff_without_model_permissions_may_upload_as_through_the_api(client, django_user_model, indexed):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from search.models import Image
    from tests.conftest import image_bytes

    client.force_login(django_user_model.objects.create_user("helper", is_staff=True))
    before = Image.objects.count()
    files = [SimpleUploadedFile(f"{i}.jpg", image_bytes(seed=500 + i), "image/jpeg") for i in range(2)]
    response = client.post("/admin/search/image/upload/", {"files": files, "label": "gneiss"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert Image.objects.count() == before + 2
    api = client.post("/api/v1/images/", {"image": SimpleUploadedFile("a.jpg", image_bytes(seed=600), "image/jpeg")})
    assert api.status_code == 201


def test_non_staff_may_neither_upload_nor_rebuild(client, django_user_model, indexed):
    client.force_login(django_user_model.objects.create_user("visitor"))
    assert client.post("/admin/search/indexversion/rebuild/").status_code == 302  # to the admin login
    assert client.post("/api/v1/index/rebuild/").status_code == 403
    assert not Job.objects.filter(kind=Job.Kind.REINDEX).exists()


def test_activate_this_model(admin, indexed, other_tiny_checkpoint):
    other = model_version_register(other_tiny_checkpoint)
    listing = admin.get("/admin/search/modelversion/").content.decode()
    assert "Activate this model" in listing
    assert "Activate this model" in admin.get(f"/admin/search/modelversion/{other.pk}/change/").content.decode()
    response = admin.post(
        "/admin/search/modelversion/", {"action": "activate_model", "_selected_action": [other.pk]}, follow=True
    )
    job = Job.objects.get(kind=Job.Kind.ACTIVATE_MODEL)
    assert job.params == {"model_version_id": other.pk}
    assert f"job #{job.pk}" in response.content.decode()
    again = admin.post(f"/admin/search/modelversion/{other.pk}/activate/", follow=True)
    assert again.redirect_chain[-1][0] == "/jobs/"
    assert Job.objects.filter(kind=Job.Kind.ACTIVATE_MODEL).count() == 1  # joined the open job
    active = ModelVersion.objects.get(is_active=True)
    assert (
        "already the active model"
        in admin.post(f"/admin/search/modelversion/{active.pk}/activate/", follow=True).content.decode()
    )
