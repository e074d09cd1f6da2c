"""Uploads and deletions as segments of the live index: no new version per upload, compaction, crashes."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from search import engine, live_index
from search.models import Image, IndexVersion, Job
from search.services import indexing
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes
from vectorindex import INDEX_FILENAME, VectorIndex, read_manifest
from vectorindex import files as index_files
from vectorindex import segments as segments_module

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(seed: int, label: str = "gneiss") -> Image:
    image, _ = image_ingest(data=image_bytes(seed=seed), label=label)
    return image


def _top_hit(seed: int) -> int:
    return engine.search_by_bytes(image_bytes(seed=seed), k=1).hits[0].image.pk


def _ranking(seed: int, k: int = 8) -> list[int]:
    return [hit.image.pk for hit in engine.search_by_bytes(image_bytes(seed=seed), k=k).hits]


def test_an_upload_adds_a_segment_and_leaves_the_base_untouched():
    first = [_upload(seed) for seed in range(4)]
    base = IndexVersion.objects.get(is_active=True)
    base_file = (Path(base.path) / INDEX_FILENAME).stat()

    later = [_upload(seed) for seed in range(10, 13)]

    active = IndexVersion.objects.get(is_active=True)
    assert active.pk == base.pk and IndexVersion.objects.count() == 1  # the first upload built it; no more versions
    assert (active.segments, active.vector_count) == (6, 7)
    after = (Path(base.path) / INDEX_FILENAME).stat()
    assert (after.st_ino, after.st_mtime_ns) == (base_file.st_ino, base_file.st_mtime_ns)
    assert [entry.added for entry in read_manifest(Path(base.path)).segments] == [1] * 6
    for seed, image in [(1, first[1]), (11, later[1])]:
        assert _top_hit(seed) == image.pk


def test_a_deletion_is_a_segment_and_the_image_is_never_returned_again():
    images = [_upload(seed) for seed in range(5)]
    images[2].delete()
    active = IndexVersion.objects.get(is_active=True)
    assert (active.segments, active.vector_count) == (5, 4)
    assert read_manifest(Path(active.path)).segments[-1].removed == 1
    live_index.reset()  # as a fresh process: base + segments from disk
    assert images[2].pk not in _ranking(2)


def test_label_filters_see_images_added_by_segments():
    [_upload(seed, label="gneiss") for seed in range(3)]
    schist = _upload(20, label="schist")
    answer = engine.search_by_bytes(image_bytes(seed=20), k=3, label="schist")
    assert [hit.image.pk for hit in answer.hits] == [schist.pk]


def test_compaction_folds_the_segments_into_a_new_base_with_the_same_answers(settings):
    settings.GEOSIM_INDEX_MAX_SEGMENTS = 3
    [_upload(seed) for seed in range(3)]  # a base of one, then two segments
    base = IndexVersion.objects.get(is_active=True)
    before = {seed: _ranking(seed) for seed in range(3)}
    assert not Job.objects.filter(kind=Job.Kind.COMPACT_INDEX).exists()

    new = _upload(10)  # the third segment: compaction is due, and runs in-process

    job = Job.objects.get(kind=Job.Kind.COMPACT_INDEX)
    assert job.status == Job.Status.SUCCEEDED, job.error
    compacted = IndexVersion.objects.get(is_active=True)
    assert compacted.version > base.version
    assert (compacted.segments, compacted.vector_count) == (0, 4)
    assert read_manifest(Path(compacted.path)).segments == ()
    assert job.result["compacted_segments"] == 3
    live_index.reset()
    assert {seed: [pk for pk in _ranking(seed) if pk != new.pk] for seed in before} == before
    answer = engine.search_by_bytes(image_bytes(seed=10), k=1)
    assert answer.hits[0].image.pk == new.pk and answer.index_version == compacted.version


def test_a_crash_mid_compaction_leaves_base_and_segments_serving(settings, monkeypatch):
    settings.GEOSIM_INDEX_MAX_SEGMENTS = 2
    images = [_upload(seed) for seed in range(2)]

    def crash(self, directory, **kwargs):
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / ".index.faiss.half.tmp").write_bytes(b"half a base")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(VectorIndex, "save", crash)
    images.append(_upload(10))  # the second segment asks for a compaction, which fails

    job = Job.objects.get(kind=Job.Kind.COMPACT_INDEX)
    assert job.status == Job.Status.FAILED and "No space left" in job.error
    active = IndexVersion.objects.get(is_active=True)
    assert (active.segments, active.vector_count) == (2, 3)
    live_index.reset()  # a fresh process loads base + both segments
    assert [_top_hit(seed) for seed in (0, 1, 10)] == [image.pk for image in images]
    monkeypatch.undo()

    retry = indexing.index_compaction_request()
    retry.refresh_from_db()
    assert retry.status == Job.Status.SUCCEEDED
    assert IndexVersion.objects.get(is_active=True).segments == 0


def test_segments_saved_while_a_compaction_merges_end_up_in_the_new_base(monkeypatch):
    """An upload lands between the compaction's snapshot and its swap: the new base holds it too."""
    [_upload(seed) for seed in range(3)]
    _upload(10)
    real_compacted = segments_module.SegmentedIndex.compacted
    late = []

    def compacted_while_an_upload_arrives(self):
        base = real_compacted(self)
        if not late:
            late.append(_upload(11))  # another segment, saved while the merge runs
        return base

    monkeypatch.setattr(segments_module.SegmentedIndex, "compacted", compacted_while_an_upload_arrives)
    job = indexing.index_compaction_request()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    active = IndexVersion.objects.get(is_active=True)
    assert (active.segments, active.vector_count) == (0, 5)
    live_index.reset()
    assert _top_hit(11) == late[0].pk


def test_a_crash_while_writing_a_segment_leaves_the_previous_state_serving(monkeypatch):
    images = [_upload(seed) for seed in range(3)]
    before = IndexVersion.objects.get(is_active=True)
    manifest = read_manifest(Path(before.path))

    def crash(file, data):
        file.write(data[: len(data) // 2])
        raise OSError(errno.EIO, "I/O error halfway through the segment")

    monkeypatch.setattr(index_files, "_write_bytes", crash)
    lost = _upload(50)
    monkeypatch.undo()

    job = Job.objects.filter(kind=Job.Kind.PROCESS, params={"image_ids": [lost.pk]}).get()
    assert job.status == Job.Status.FAILED and "halfway" in job.error
    after = IndexVersion.objects.get(is_active=True)
    assert (after.pk, after.segments, after.vector_count) == (before.pk, before.segments, 3)
    assert read_manifest(Path(before.path)) == manifest
    live_index.reset()
    assert [_top_hit(seed) for seed in range(3)] == [image.pk for image in images]
    assert lost.pk not in _ranking(50)


def test_an_unrecorded_segment_left_by_a_crashed_commit_is_never_served(monkeypatch):
    """The segment and manifest were written, then the transaction failed: the row is the commit point."""
    [_upload(seed) for seed in range(2)]  # a base and one segment

    def fail_after_saving(*args, **kwargs):
        raise RuntimeError("database gone after the segment was saved")

    monkeypatch.setattr(indexing, "compaction_due", fail_after_saving)
    ghost = _upload(60)
    monkeypatch.undo()

    active = IndexVersion.objects.get(is_active=True)
    assert active.segments == 1 and len(read_manifest(Path(active.path)).segments) == 2
    live_index.reset()
    assert ghost.pk not in _ranking(60)
    later = _upload(61)  # overwrites the unrecorded segment
    active.refresh_from_db()
    assert active.segments == 2 and len(read_manifest(Path(active.path)).segments) == 2
    live_index.reset()
    assert _top_hit(61) == later.pk and ghost.pk not in _ranking(60)


def test_a_process_with_the_base_loaded_reads_only_the_new_segment(monkeypatch):
    """What a second web process does: it loaded base + segments before, and catches up on the next search."""
    [_upload(seed) for seed in range(3)]
    other_process = live_index._state.loaded
    assert other_process.index.segment_count == 2
    image = _upload(70)  # this process installs its own segment
    live_index._state.loaded = other_process  # back to what another process would still hold
    base_loads = []
    real_load = VectorIndex.load.__func__
    monkeypatch.setattr(
        VectorIndex, "load", classmethod(lambda cls, *a, **kw: base_loads.append(a) or real_load(cls, *a, **kw))
    )
    assert _top_hit(70) == image.pk
    assert base_loads == []
    assert live_index.current().index.segment_count == 3


def test_an_unreadable_new_segment_keeps_the_old_state_serving_and_asks_for_a_rebuild():
    images = [_upload(seed) for seed in range(3)]
    other_process = live_index._state.loaded
    image = _upload(80)
    live_index._state.loaded = other_process  # a process that has not read the new segment yet
    active = IndexVersion.objects.get(is_active=True)
    segment = Path(active.path) / read_manifest(Path(active.path)).segments[-1].name
    segment.write_bytes(b"\0" * segment.stat().st_size)

    answer = engine.search_by_bytes(image_bytes(seed=1), k=1)  # served from what it has …

    assert answer.hits[0].image.pk == images[1].pk and answer.index_version == active.version
    rebuild = Job.objects.get(kind=Job.Kind.REINDEX)  # … and the rebuild it asked for ran in-process
    assert rebuild.status == Job.Status.SUCCEEDED
    assert _top_hit(80) == image.pk  # the rebuilt version holds the image, from the stored embeddings
    assert IndexVersion.objects.get(is_active=True).version > active.version


@pytest.mark.worker
def test_a_real_worker_compacts_the_segments(celery_worker, settings):
    settings.GEOSIM_INDEX_MAX_SEGMENTS = 2
    images = [_upload(0)]
    _wait(lambda: IndexVersion.objects.filter(is_active=True).exists(), "the first index")
    base = IndexVersion.objects.get(is_active=True)
    images += [_upload(seed) for seed in (1, 2)]

    def compacted() -> bool:
        job = Job.objects.filter(kind=Job.Kind.COMPACT_INDEX).first()
        return job is not None and job.is_finished

    _wait(compacted, "the compaction job")
    assert Job.objects.get(kind=Job.Kind.COMPACT_INDEX).status == Job.Status.SUCCEEDED
    active = IndexVersion.objects.get(is_active=True)
    assert active.version > base.version and (active.segments, active.vector_count) == (0, 3)
    live_index.reset()
    assert [_top_hit(seed) for seed in (0, 1, 2)] == [image.pk for image in images]


def _wait(predicate, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
