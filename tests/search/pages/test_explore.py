"""The explorer: a projection job per index version and method, cached as a file, served to the page."""

from __future__ import annotations

import gzip
import json

import pytest

from search.models import Image, IndexVersion, Job
from search.services import projection
from search.services.indexing import reindex_request
from tests.search.pages.conftest import add_images

pytestmark = pytest.mark.django_db


def _data_url(html: str) -> str:
    return html.split('data-src="')[1].split('"')[0]


def _explore(client, capture, **params):
    """Open the explorer, let the projection job it starts run, and open it again."""
    with capture(execute=True):
        client.get("/explore/", params)
    return client.get("/explore/", params)


def test_no_index_yet_explains_itself(client, db):
    response = client.get("/explore/")
    assert response.status_code == 200
    assert "No index has been built yet" in response.content.decode()
    assert not Job.objects.filter(kind=Job.Kind.PROJECTION).exists()


def test_projection_job_covers_every_indexed_image_with_its_label(client, indexed, django_capture_on_commit_callbacks):
    response = _explore(client, django_capture_on_commit_callbacks)
    html = response.content.decode()
    assert response.status_code == 200
    job = Job.objects.get(kind=Job.Kind.PROJECTION)
    live = IndexVersion.objects.get(is_active=True)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.params == {"method": "pca", "index_version": live.version}
    data_response = client.get(_data_url(html), HTTP_ACCEPT_ENCODING="gzip")
    assert data_response["Content-Encoding"] == "gzip"
    assert "immutable" in data_response["Cache-Control"]
    data = json.loads(gzip.decompress(data_response.content))
    assert data["count"] == data["total"] == len(indexed)
    assert sorted(data["ids"]) == sorted(image.pk for image in indexed)
    labels = {pk: data["labels"][code] for pk, code in zip(data["ids"], data["label"], strict=True)}
    assert labels == dict(Image.objects.values_list("pk", "label"))
    assert len(data["xyz"]) == 3 * len(indexed)
    assert max(abs(v) for v in data["xyz"]) <= projection.SCALE
    assert len(set(data["xyz"])) > len(indexed)  # real, distinct coordinates


def test_cached_projection_is_reused_and_served_plain_without_gzip(client, indexed, django_capture_on_commit_callbacks):
    first = _explore(client, django_capture_on_commit_callbacks).content.decode()
    client.get("/explore/")
    assert Job.objects.filter(kind=Job.Kind.PROJECTION).count() == 1
    plain = client.get(_data_url(first))
    assert "Content-Encoding" not in plain
    assert plain.json()["method"] == "pca"


def test_open_job_shows_progress_and_is_joined(client, indexed):
    client.get("/explore/")  # the job is created; its task only runs at commit, which never comes here
    response = client.get("/explore/")
    assert "Computing the PCA projection" in response.content.decode()
    assert Job.objects.filter(kind=Job.Kind.PROJECTION).count() == 1
    status = client.get("/explore/status.json").json()
    assert status == {"ready": False, "status": "pending", "progress": 0.0, "error": ""}


def test_tsne_and_unknown_method(staff_client, indexed, django_capture_on_commit_callbacks):
    client = staff_client
    response = _explore(client, django_capture_on_commit_callbacks, method="tsne")
    assert response.status_code == 200
    assert client.get(_data_url(response.content.decode())).json()["count"] == len(indexed)
    assert client.get("/explore/", {"method": "umap"}).status_code == 404
    assert client.get("/explore/data/nonsense.json").status_code == 404


def test_a_newer_index_shows_the_older_projection_meanwhile(client, indexed, django_capture_on_commit_callbacks):
    _explore(client, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        add_images(2, start=100)  # uploads become segments of the live version...
    assert IndexVersion.objects.get(is_active=True).segments
    with django_capture_on_commit_callbacks(execute=True):
        reindex_request()  # ...and a rebuild (like a compaction) makes a new version
    html = client.get("/explore/").content.decode()
    assert "is being computed" in html
    assert 'data-src="/explore/data/v' in html


def test_large_collections_are_subsampled(indexed, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(projection, "MAX_POINTS", 5)
    live = IndexVersion.objects.get(is_active=True)
    with django_capture_on_commit_callbacks(execute=True):
        job = projection.projection_request(method="pca", index_version=live.version)
    job.refresh_from_db()
    assert job.result["points"] == 5 and job.result["total"] == len(indexed)
    data = projection.projection_load(projection.projection_cached(method="pca", index_version=live.version))
    assert len(data["ids"]) == len(set(data["ids"])) == 5


def test_anonymous_visitors_cannot_start_a_tsne(client, indexed, django_capture_on_commit_callbacks):
    """t-SNE holds a worker for minutes: only staff start it; visitors see a cached one or an explanation."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get("/explore/", {"method": "tsne"})
        status = client.get("/explore/status.json", {"method": "tsne"}).json()
    assert response.status_code == 200
    assert "a staff user starts it" in response.content.decode()
    assert status["ready"] is False
    assert not Job.objects.filter(kind=Job.Kind.PROJECTION).exists()
    assert client.get("/explore/").status_code == 200  # PCA is cheap: anyone may start it
    assert Job.objects.filter(kind=Job.Kind.PROJECTION).count() == 1


def test_one_projection_at_a_time(staff_client, indexed):
    live = IndexVersion.objects.get(is_active=True)
    first = projection.projection_request(method="pca", index_version=live.version)  # its commit never comes here
    assert projection.projection_request(method="tsne", index_version=live.version) == first
    html = staff_client.get("/explore/", {"method": "tsne"}).content.decode()
    assert "Waiting for another projection to finish" in html
    assert staff_client.get("/explore/status.json", {"method": "tsne"}).json()["status"] == "pending"
    assert Job.objects.filter(kind=Job.Kind.PROJECTION).count() == 1


def test_projections_run_on_the_low_priority_queue(indexed, monkeypatch, celery_in_process):
    from search.services import jobs

    sent = []
    monkeypatch.setattr(celery_in_process, "send_task", lambda name, **kwargs: sent.append(kwargs["queue"]))
    live = IndexVersion.objects.get(is_active=True)
    celery_in_process.conf.task_always_eager = False  # as with a worker; the fixture sets it back
    jobs.job_enqueue(projection.projection_request(method="pca", index_version=live.version).pk)
    jobs.job_enqueue(jobs.job_create(kind=Job.Kind.REINDEX).pk)
    celery_in_process.conf.task_always_eager = True
    assert sent == [jobs.LOW_PRIORITY_QUEUE, jobs.JOB_QUEUE]
    assert {queue.name for queue in celery_in_process.conf.task_queues} == {jobs.LOW_PRIORITY_QUEUE, jobs.JOB_QUEUE}
