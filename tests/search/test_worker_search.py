"""The search engine with a real Celery worker over Redis: incremental indexing, reindex under load."""

import threading
import time

import pytest

from search import engine
from search.models import Embedding, IndexVersion, Job
from search.services import indexing
from search.services.ingestion import image_ingest, images_import
from tests.conftest import image_bytes
from tests.search.test_worker import wait_for_job

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _wait_until(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_import_is_embedded_and_searchable_without_a_rebuild(celery_worker):
    from search.archives import SourceFile

    summary = images_import([SourceFile(f"gneiss/{i}.jpg", image_bytes(seed=i), "gneiss") for i in range(20)])
    for job_id in summary.job_ids:
        assert wait_for_job(job_id).status == Job.Status.SUCCEEDED
    assert Embedding.objects.count() == 20
    image, _ = image_ingest(data=image_bytes(seed=500), label="schist")
    _wait_until(lambda: IndexVersion.objects.filter(is_active=True, vector_count=21).exists(), what="image indexed")
    answer = engine.search_by_bytes(image_bytes(seed=500), k=1)
    assert answer.hits[0].image.pk == image.pk
    assert not Job.objects.filter(kind=Job.Kind.REINDEX).exists()


def test_searches_during_a_reindex_all_succeed(celery_worker, monkeypatch):
    images = [image_ingest(data=image_bytes(seed=i), label="marble")[0] for i in range(30)]
    _wait_until(lambda: IndexVersion.objects.filter(is_active=True, vector_count=30).exists(), what="indexed")
    old_version = IndexVersion.objects.get(is_active=True).version
    real_build = indexing.build_index

    def slow_build(*args, **kwargs):
        time.sleep(1.5)  # the worker is mid-build while the searches below run
        return real_build(*args, **kwargs)

    monkeypatch.setattr(indexing, "build_index", slow_build)
    job = indexing.reindex_request()
    versions, errors = set(), []
    while not Job.objects.get(pk=job.pk).is_finished:
        try:
            answer = engine.search_by_bytes(image_bytes(seed=7), k=3)
            versions.add(answer.index_version)
            assert answer.hits[0].image.pk == images[7].pk
        except Exception as exc:  # any failure is a finding
            errors.append(repr(exc))
        time.sleep(0.02)
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
    assert errors == []
    assert old_version in versions  # the old index answered during the build
    assert engine.search_by_bytes(image_bytes(seed=7), k=3).index_version > old_version


def test_two_concurrent_reindex_requests_make_one_build(celery_worker, monkeypatch):
    for i in range(5):
        image_ingest(data=image_bytes(seed=i))
    _wait_until(lambda: IndexVersion.objects.filter(is_active=True, vector_count=5).exists(), what="indexed")
    builds = []
    real_build = indexing.build_index

    def counting_build(*args, **kwargs):
        builds.append(1)
        time.sleep(0.5)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(indexing, "build_index", counting_build)
    jobs, barrier = [], threading.Barrier(2)

    def request():
        from django.db import connection

        barrier.wait()
        jobs.append(indexing.reindex_request().pk)
        connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(jobs)) == 1
    assert wait_for_job(jobs[0]).status == Job.Status.SUCCEEDED
    assert builds == [1]
    assert Job.objects.filter(kind=Job.Kind.REINDEX).count() == 1
