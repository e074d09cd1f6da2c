"""The embedded mode (no worker) runs jobs on background threads: requests never wait for long work.

The rest of the suite runs in-process jobs inline (GEOSIM_IN_PROCESS_JOBS=inline in test settings);
these tests switch to the embedded mode's default, "background", and hold a job inside its handler
to show the request has answered while the job is still running.
"""

from __future__ import annotations

import threading

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from search.archives import SourceFile
from search.models import Image, IndexVersion, Job
from search.services import in_process, jobs, projection
from search.services.indexing import reindex_request
from search.services.ingestion import images_import
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def background(settings):
    settings.GEOSIM_IN_PROCESS_JOBS = "background"
    yield
    assert in_process.wait_idle(timeout=120), "a background job did not finish"


@pytest.fixture
def collection(transactional_db):
    """Six images processed and indexed (inline, before the background mode is switched on)."""
    files = [SourceFile(name=f"{i}.jpg", data=image_bytes(seed=i), label="gneiss") for i in range(6)]
    images_import(files)
    return IndexVersion.objects.get(is_active=True)


def _hold(monkeypatch, kind: str) -> threading.Event:
    """Make jobs of ``kind`` wait inside their handler until the returned event is set."""
    release = threading.Event()
    registration = jobs._handlers[kind]

    def held(job, progress):
        assert release.wait(timeout=60), "the test never released the job"
        return registration.handler(job, progress)

    monkeypatch.setitem(jobs._handlers, kind, jobs._Registration(held, registration.retry_if_interrupted))
    return release


def test_the_explorer_answers_while_its_projection_is_computed(client, collection, background, monkeypatch):
    release = _hold(monkeypatch, Job.Kind.PROJECTION)
    response = client.get("/explore/")
    assert response.status_code == 200 and "Computing the PCA projection" in response.content.decode()
    job = Job.objects.get(kind=Job.Kind.PROJECTION)
    assert client.get("/explore/status.json").json()["ready"] is False
    release.set()
    assert in_process.wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert client.get("/explore/status.json").json()["ready"] is True
    assert projection.projection_cached(method="pca", index_version=collection.version) is not None


def test_admin_upload_returns_before_processing_and_jobs_page_loads_meanwhile(
    admin_client, collection, background, monkeypatch
):
    release = _hold(monkeypatch, Job.Kind.PROCESS)
    files = [SimpleUploadedFile(f"n{i}.jpg", image_bytes(seed=300 + i), "image/jpeg") for i in range(3)]
    response = admin_client.post("/admin/search/image/upload/", {"files": files, "label": "schist"})
    assert response.status_code == 302
    job = Job.objects.filter(kind=Job.Kind.PROCESS).latest("id")
    assert job.status in {Job.Status.PENDING, Job.Status.RUNNING}  # answered before the work was done
    jobs_page = admin_client.get("/jobs/")
    assert jobs_page.status_code == 200 and f'data-job="{job.pk}"' in jobs_page.content.decode()
    assert admin_client.get("/jobs/status.json").json()["open"] >= 1
    release.set()
    assert in_process.wait_idle(timeout=60)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Image.objects.filter(label="schist", embeddings__isnull=False).count() == 3


def test_projections_do_not_hold_up_indexing_work(collection, background, monkeypatch):
    """A projection stuck on its (low-priority) thread does not delay a rebuild on the job thread."""
    release = _hold(monkeypatch, Job.Kind.PROJECTION)
    try:
        projection_job = projection.projection_request(method="pca", index_version=collection.version)  # sent at commit
        rebuild = reindex_request()
        for _ in range(600):
            rebuild.refresh_from_db()
            if rebuild.is_finished:
                break
            threading.Event().wait(0.1)
        assert rebuild.status == Job.Status.SUCCEEDED, rebuild.error
        projection_job.refresh_from_db()
        assert projection_job.status in {Job.Status.PENDING, Job.Status.RUNNING}
    finally:
        release.set()


def test_an_uploaded_archive_is_imported_by_a_job_with_progress(admin_client, collection, background, monkeypatch):
    """The 2,000-image zip case: the page answers before a single image is imported; /jobs/ shows the import."""
    import io
    import zipfile

    release = _hold(monkeypatch, Job.Kind.IMPORT)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(12):
            zf.writestr(f"geological_similarity/marble/m{i:02d}.jpg", image_bytes(seed=700 + i))
    archive = SimpleUploadedFile("rocks.zip", buffer.getvalue(), "application/zip")
    before = Image.objects.count()
    try:
        response = admin_client.post("/admin/search/image/upload/", {"archive": archive})
        assert response.status_code == 302 and response["Location"] == "/jobs/"
        job = Job.objects.get(kind=Job.Kind.IMPORT)
        assert job.status in {Job.Status.PENDING, Job.Status.RUNNING}
        assert Image.objects.count() == before
        assert f'data-job="{job.pk}"' in admin_client.get("/jobs/").content.decode()
    finally:
        release.set()
    assert in_process.wait_idle(timeout=120)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.done, job.total) == (12, 12) and job.result["added"] == 12
    assert Image.objects.filter(label="marble").count() == 12
    assert not default_storage.exists(job.params["stored_name"])  # the stored archive is deleted
