"""The live index's files lost or damaged after processes loaded them: noticed, rebuilt, nothing left unsearchable."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from search import engine, live_index
from search.models import IndexVersion, Job
from search.services import indexing
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes
from vectorindex import INDEX_FILENAME

pytestmark = pytest.mark.django_db(transaction=True)


def _damage(version: IndexVersion, how: str) -> None:
    directory = Path(version.path)
    if how == "deleted":
        shutil.rmtree(directory)
    else:  # overwritten in place with as many bytes of garbage: only the checksum can tell
        index_file = directory / INDEX_FILENAME
        index_file.write_bytes(b"\0" * index_file.stat().st_size)


@pytest.mark.parametrize("how", ["deleted", "corrupted"])
def test_healthz_reports_damaged_files_and_a_rebuild_replaces_them(client, how):
    for seed in (1, 2):
        image_ingest(data=image_bytes(seed=seed))
    assert client.get("/healthz").json()["status"] == "ok"  # this process has loaded the live version
    damaged = IndexVersion.objects.get(is_active=True)
    _damage(damaged, how)

    response = client.get("/healthz")

    assert response.status_code == 200  # this process still answers searches from memory …
    body = response.json()
    assert body["status"] == "degraded"  # … but says what is wrong, and what it did about it
    assert body["index"]["state"] == "damaged"
    assert "unusable" in body["index"]["error"] and str(damaged.path) not in body["index"]["error"]
    rebuild = Job.objects.get(pk=body["index"]["rebuild_job"])
    assert rebuild.kind == Job.Kind.REINDEX
    assert rebuild.status == Job.Status.SUCCEEDED  # in-process tasks: it ran at once
    after = client.get("/healthz").json()
    assert after["status"] == "ok" and after["index"]["version"] > damaged.version


def test_an_upload_processed_on_a_deleted_index_becomes_searchable_after_the_rebuild():
    first, _ = image_ingest(data=image_bytes(seed=3))
    assert engine.search_by_bytes(image_bytes(seed=3), k=1).hits[0].image.pk == first.pk
    shutil.rmtree(IndexVersion.objects.get(is_active=True).path)

    second, _ = image_ingest(data=image_bytes(seed=4))  # its processing job runs here, in-process

    failed, retry = Job.objects.filter(kind=Job.Kind.PROCESS, params={"image_ids": [second.pk]}).order_by("pk")
    assert failed.status == Job.Status.FAILED and "rebuild was requested" in failed.error
    assert failed.result == {"retried_as": retry.pk}
    assert retry.status == Job.Status.SUCCEEDED
    assert Job.objects.get(kind=Job.Kind.REINDEX).status == Job.Status.SUCCEEDED
    live_index.reset()
    hit = engine.search_by_bytes(image_bytes(seed=4), k=1).hits[0]
    assert hit.image.pk == second.pk and hit.score == pytest.approx(1.0, abs=1e-4)


@pytest.mark.worker
def test_with_a_worker_a_job_on_a_deleted_index_is_retried_after_the_rebuild(celery_worker):
    first, _ = image_ingest(data=image_bytes(seed=5))
    _wait(lambda: IndexVersion.objects.filter(is_active=True).exists(), "the first index")
    shutil.rmtree(IndexVersion.objects.get(is_active=True).path)

    second, _ = image_ingest(data=image_bytes(seed=6))

    def retried_and_done() -> bool:
        jobs = list(Job.objects.filter(kind=Job.Kind.PROCESS, params={"image_ids": [second.pk]}).order_by("pk"))
        return len(jobs) == 2 and jobs[1].is_finished

    _wait(retried_and_done, "the retried processing job")
    failed, retry = Job.objects.filter(kind=Job.Kind.PROCESS, params={"image_ids": [second.pk]}).order_by("pk")
    assert (failed.status, retry.status) == (Job.Status.FAILED, Job.Status.SUCCEEDED)
    live_index.reset()
    assert engine.search_by_bytes(image_bytes(seed=6), k=1).hits[0].image.pk == second.pk
    assert engine.search_by_bytes(image_bytes(seed=5), k=1).hits[0].image.pk == first.pk


def _wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_version_pruned_while_this_process_was_loading_it_is_not_a_damage(monkeypatch):
    """A busy process reads the active row, then newer versions go live and prune it: it loads the live one."""
    image_ingest(data=image_bytes(seed=5))
    indexing.reindex_request()  # in-process tasks: a second version is live at once
    live = IndexVersion.objects.get(is_active=True)
    superseded = IndexVersion.objects.exclude(pk=live.pk).order_by("-version").first()
    shutil.rmtree(superseded.path)  # pruned by the worker that activated a newer version
    answers = iter([superseded])  # what this process saw just before: the superseded row
    real = live_index.selectors.active_index_version
    monkeypatch.setattr(live_index.selectors, "active_index_version", lambda: next(answers, None) or real())
    live_index.reset()

    assert live_index.current().version.pk == live.pk
    assert Job.objects.filter(kind=Job.Kind.REINDEX).count() == 1  # the one above: none for a damage
