"""The search engine end to end in-process: embed, index incrementally, search, rebuild, swap, delete."""

import threading
from pathlib import Path

import faiss
import numpy as np
import pytest

from search import engine, live_index
from search.imaging import ImageRejected
from search.models import Embedding, Image, IndexVersion, Job, ModelVersion
from search.services import indexing
from search.services.indexing import model_version_activate
from search.services.ingestion import image_ingest
from search.services.model_versions import model_version_register
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def _add(n: int, *, label_cycle=("gneiss", "schist", "marble"), start: int = 0) -> list[Image]:
    images = []
    for i in range(start, start + n):
        image, _ = image_ingest(data=image_bytes(seed=i), label=label_cycle[i % len(label_cycle)])
        images.append(image)
    return images


def test_new_images_are_searchable_without_a_rebuild():
    images = _add(6)
    assert Embedding.objects.count() == 6
    active = IndexVersion.objects.get(is_active=True)
    assert active.vector_count == 6
    assert not Job.objects.filter(kind=Job.Kind.REINDEX).exists()
    answer = engine.search_by_bytes(image_bytes(seed=4), k=3)
    assert answer.hits[0].image.pk == images[4].pk
    assert answer.hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert answer.index_version == active.version
    assert answer.model_version == ModelVersion.objects.get(is_active=True).name


def test_results_match_exact_numpy_search():
    _add(12)
    ids, vectors = indexing.stored_vectors(ModelVersion.objects.get(is_active=True))
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    query = vectors[3:4]
    expected = ids[np.argsort(-(vectors @ query[0]))][:6]
    answer = engine.search_by_image(int(ids[3]), k=5)
    got = [hit.image.pk for hit in answer.hits]
    assert int(ids[3]) not in got  # the query image itself is excluded
    assert got == [int(i) for i in expected if i != ids[3]][:5]


def test_label_filter_returns_k_of_that_label():
    _add(15)
    answer = engine.search_by_bytes(image_bytes(seed=100), k=5, label="schist")
    assert len(answer.hits) == 5
    assert {hit.image.label for hit in answer.hits} == {"schist"}


def test_unknown_label_and_bad_k():
    _add(3)
    with pytest.raises(engine.UnknownLabel):
        engine.search_by_bytes(image_bytes(seed=1), k=2, label="granite")
    with pytest.raises(ValueError, match="between 1 and 100"):
        engine.search_by_bytes(image_bytes(seed=1), k=0)
    with pytest.raises(engine.UnknownImage):
        engine.search_by_image(999_999, k=2)


def test_bad_query_bytes_rejected():
    _add(2)
    with pytest.raises(ImageRejected):
        engine.search_by_bytes(b"not an image", k=2)


def test_predicted_label_is_the_weighted_vote():
    _add(9, label_cycle=("gneiss",))
    answer = engine.search_by_bytes(image_bytes(seed=3), k=3)
    assert answer.predicted_label == "gneiss"
    assert answer.vote == {"gneiss": 1.0}


def test_no_index_yet_is_unavailable():
    with pytest.raises(live_index.IndexUnavailable, match="No index has been built"):
        engine.search_by_bytes(image_bytes(seed=1), k=2)


def test_deleted_image_leaves_the_index():
    images = _add(5)
    victim = images[2]
    file_path = Path(victim.file.path)
    victim.delete()
    active = IndexVersion.objects.get(is_active=True)
    assert active.vector_count == 4
    assert not file_path.exists()
    assert Job.objects.get(kind=Job.Kind.REMOVE).status == Job.Status.SUCCEEDED
    answer = engine.search_by_bytes(image_bytes(seed=2), k=4)
    assert victim.pk not in {hit.image.pk for hit in answer.hits}


def test_rebuild_swaps_a_new_version_and_reuses_stored_embeddings(monkeypatch):
    _add(8)
    before = IndexVersion.objects.get(is_active=True)
    calls = []
    original = indexing.embedder.embed_images
    monkeypatch.setattr(
        indexing.embedder, "embed_images", lambda mv, pics: calls.append(len(pics)) or original(mv, pics)
    )
    job = indexing.reindex_request()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert calls == []  # same model: nothing re-embedded
    after = IndexVersion.objects.get(is_active=True)
    assert after.version > before.version
    assert after.vector_count == 8
    assert job.result["vectors"] == 8
    assert (job.done, job.total, job.progress) == (8, 8, 1.0)


def test_failed_rebuild_leaves_old_index_serving(monkeypatch):
    images = _add(6)
    before = IndexVersion.objects.get(is_active=True)

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire halfway through the build")

    monkeypatch.setattr(indexing, "build_index", explode)
    job = indexing.reindex_request()
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "disk on fire" in job.error
    assert IndexVersion.objects.get(is_active=True).pk == before.pk
    assert engine.search_by_bytes(image_bytes(seed=1), k=1).hits[0].image.pk == images[1].pk
    monkeypatch.undo()
    retry = indexing.reindex_request()
    retry.refresh_from_db()
    assert retry.status == Job.Status.SUCCEEDED


def test_corrupt_index_file_is_detected_and_rebuilt(settings):
    _add(4)
    active = IndexVersion.objects.get(is_active=True)
    index_file = Path(active.path) / "index.faiss"
    data = bytearray(index_file.read_bytes())
    data[-20:] = b"\xff" * 20
    index_file.write_bytes(bytes(data))
    live_index.reset()
    with pytest.raises(live_index.IndexUnavailable, match="unusable"):
        engine.search_by_bytes(image_bytes(seed=1), k=2)
    # The failure requested a rebuild from stored embeddings, which (in-process) has already run.
    rebuilt = IndexVersion.objects.get(is_active=True)
    assert rebuilt.version > active.version
    live_index.reset()
    assert engine.search_by_bytes(image_bytes(seed=1), k=2).index_version == rebuilt.version


def test_model_activation_reembeds_and_switches_atomically(other_tiny_checkpoint):
    _add(5)
    old_model = ModelVersion.objects.get(is_active=True)
    new_model = model_version_register(other_tiny_checkpoint)
    assert new_model.embedding_dim == 64 and not new_model.is_active
    job = model_version_activate(new_model)
    job.refresh_from_db()
    assert job.kind == Job.Kind.ACTIVATE_MODEL
    assert job.status == Job.Status.SUCCEEDED, job.error
    new_model.refresh_from_db()
    old_model.refresh_from_db()
    assert new_model.is_active and not old_model.is_active
    active = IndexVersion.objects.get(is_active=True)
    assert active.model_version == new_model
    assert Embedding.objects.filter(model_version=new_model).count() == 5
    answer = engine.search_by_bytes(image_bytes(seed=2), k=1)
    assert answer.model_version == new_model.name
    assert answer.hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_register_rejects_a_non_checkpoint(tmp_path):
    from training.checkpoint import CheckpointError

    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"definitely not torch")
    with pytest.raises(CheckpointError, match="bogus.pt"):
        model_version_register(bogus)
    assert not ModelVersion.objects.exists()


def test_concurrent_requests_join_one_reindex(monkeypatch):
    """Six threads ask for a rebuild at the same instant: one job, which every caller gets."""
    import threading

    from django.db import connection, connections

    from search.services import jobs

    if connection.vendor != "postgresql":
        pytest.skip(
            "needs Postgres (set DATABASE_URL): the in-memory SQLite test database cannot take "
            "concurrent write transactions from threads"
        )
    _add(3)
    monkeypatch.setattr(jobs, "job_enqueue", lambda job_id: False)  # queued, not yet picked up
    start = threading.Barrier(6)
    got, errors = [], []

    def ask() -> None:
        try:
            start.wait(timeout=30)
            got.append(indexing.reindex_request().pk)
        except Exception as exc:  # reported below, with the thread's own error
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(got) == 6
    assert len(set(got)) == 1
    assert Job.objects.filter(kind=Job.Kind.REINDEX).count() == 1
    Job.objects.filter(pk=got[0]).update(status=Job.Status.RUNNING)
    assert indexing.reindex_request().pk == got[0]


def test_disk_full_while_saving_keeps_the_old_index(monkeypatch, settings):
    import errno

    from vectorindex import VectorIndex

    images = _add(4)
    before = IndexVersion.objects.get(is_active=True)

    def full_disk(self, directory, **kwargs):
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "index.faiss.partial").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(VectorIndex, "save", full_disk)
    job = indexing.reindex_request()
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "No space left on device" in job.error
    assert IndexVersion.objects.get(is_active=True).pk == before.pk
    on_disk = {p.name for p in Path(settings.GEOSIM_INDEX_DIR).iterdir()}
    assert on_disk == {Path(v.path).name for v in IndexVersion.objects.all()}  # the half-written one is gone
    monkeypatch.undo()
    live_index.reset()
    assert engine.search_by_bytes(image_bytes(seed=2), k=1).hits[0].image.pk == images[2].pk


def test_images_processed_across_a_model_switch_are_still_indexed(other_tiny_checkpoint, monkeypatch):
    """A job embeds with the old model, the new model's index goes live, then the job adds its images."""
    from search.services import processing

    _add(3)
    old_model = ModelVersion.objects.get(is_active=True)
    new_model = model_version_register(other_tiny_checkpoint)
    model_version_activate(new_model)
    assert IndexVersion.objects.get(is_active=True).model_version == new_model
    # The job of this upload started before the switch: it embeds with the old model.
    monkeypatch.setattr(processing, "index_model_version", lambda: old_model)
    late, _ = image_ingest(data=image_bytes(seed=77), label="schist")
    assert Embedding.objects.filter(image=late, model_version=new_model).exists()
    assert IndexVersion.objects.get(is_active=True).vector_count == 4
    assert engine.search_by_bytes(image_bytes(seed=77), k=1).hits[0].image.pk == late.pk


def test_every_server_thread_searches_with_the_configured_faiss_threads(settings):
    # OpenMP keeps its thread count per OS thread: a second gunicorn thread must set its own. (A search by
    # upload runs the CNN first, whose torch threads happen to set it; a search by a stored image does not.)
    images = _add(3)
    settings.GEOSIM_SEARCH_THREADS = 1
    engine.search_by_image(images[0].pk, k=1)  # this thread is set up
    seen: list[int] = []

    def other_server_thread() -> None:
        faiss.omp_set_num_threads(3)  # what a fresh thread inherits on a 3-core host
        engine.search_by_image(images[1].pk, k=1)
        seen.append(faiss.omp_get_max_threads())

    thread = threading.Thread(target=other_server_thread)
    thread.start()
    thread.join()
    assert seen == [1]
