"""Base + segments against one index over the same vectors; compaction against a rebuild; crashes mid-write."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.vectorindex.test_index import clustered, numpy_search
from vectorindex import (
    MANIFEST_FILENAME,
    IndexCorruptError,
    IndexMissingError,
    Segment,
    SegmentedIndex,
    build_index,
    compaction_due,
    load,
    read_manifest,
    read_new_segments,
    save_segment,
    saved_files,
)
from vectorindex import files as index_files

DIM = 128


@pytest.fixture
def collection():
    """3,000 vectors under scattered ids: 2,000 in the base, the rest added later by segments."""
    vectors = clustered(3_000, seed=11)
    ids = np.random.default_rng(12).permutation(np.arange(1, 9_001))[:3_000].astype(np.int64)
    return ids, vectors


@pytest.fixture
def saved(collection, tmp_path):
    """A saved exact base of the first 2,000 vectors, loaded back with no segments."""
    ids, vectors = collection
    build_index(ids[:2000], vectors[:2000]).save(tmp_path, index_version=1, model_version="m")
    return load(tmp_path)


def apply_updates(directory, index, collection):
    """Three segments: add 500, remove 300 (base and new ids), re-add 100 with new vectors, add 500 more."""
    ids, vectors = collection
    index = save_segment(directory, index, Segment.adding(ids[2000:2500], vectors[2000:2500]))
    removed = np.concatenate([ids[:200], ids[2000:2100]])
    index = save_segment(directory, index, Segment.removing(removed, dim=DIM))
    moved = clustered(100, seed=99)
    index = save_segment(directory, index, Segment.adding(ids[300:400], moved))
    index = save_segment(directory, index, Segment.adding(ids[2500:], vectors[2500:]))
    expected = dict(zip(ids.tolist(), vectors, strict=True))
    for image_id in removed.tolist():
        del expected[image_id]
    expected.update(zip(ids[300:400].tolist(), moved, strict=True))
    final_ids = np.array(sorted(expected), dtype=np.int64)
    return index, final_ids, np.stack([expected[i] for i in final_ids.tolist()])


def test_base_plus_segments_equals_one_index_over_the_same_vectors(saved, collection, tmp_path):
    index, final_ids, final_vectors = apply_updates(tmp_path, saved, collection)
    queries = clustered(40, seed=5)
    scores, ids = index.search(queries, 10)
    truth_scores, truth_ids = numpy_search(final_vectors, final_ids, queries, 10)
    np.testing.assert_array_equal(ids, truth_ids)
    np.testing.assert_allclose(scores, truth_scores, atol=1e-5)
    assert index.ntotal == len(final_ids) == 2700
    np.testing.assert_array_equal(index.ids(), final_ids)
    assert (index.segment_count, index.kind) == (4, "flat")


def test_removed_ids_are_never_returned_and_replaced_ids_use_their_new_vector(saved, collection, tmp_path):
    ids, vectors = collection
    index, _, _ = apply_updates(tmp_path, saved, collection)
    removed = np.concatenate([ids[:200], ids[2000:2100]])
    _, found = index.search(vectors[:200], 5)  # the removed vectors themselves as queries
    assert not np.isin(found, removed).any()
    assert not any(index.contains(int(i)) for i in removed)
    moved = clustered(100, seed=99)
    scores, found = index.search(moved[:5], 1)
    assert found[:, 0].tolist() == ids[300:305].tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_filters_apply_to_base_and_segments_alike(saved, collection, tmp_path):
    index, final_ids, final_vectors = apply_updates(tmp_path, saved, collection)
    rng = np.random.default_rng(3)
    allowed = rng.choice(final_ids, 400, replace=False)  # from the base and from the segments
    excluded = allowed[:50]
    queries = clustered(10, seed=6)
    scores, ids = index.search(queries, 8, allowed_ids=allowed, exclude_ids=excluded)
    eligible = np.isin(final_ids, np.setdiff1d(allowed, excluded))
    truth_scores, truth_ids = numpy_search(final_vectors[eligible], final_ids[eligible], queries, 8)
    np.testing.assert_array_equal(ids, truth_ids)
    np.testing.assert_allclose(scores, truth_scores, atol=1e-5)


def test_fewer_eligible_than_k_are_padded_across_base_and_segments(saved, collection, tmp_path):
    ids, _ = collection
    index, _, _ = apply_updates(tmp_path, saved, collection)
    allowed = np.array([ids[500], ids[2600], 10**9])  # one in the base, one from a segment, one unknown
    scores, found = index.search(clustered(1, seed=8), 4, allowed_ids=allowed)
    assert sorted(found[0, :2].tolist()) == sorted([int(ids[500]), int(ids[2600])])
    assert found[0, 2:].tolist() == [-1, -1] and np.isneginf(scores[0, 2:]).all()


def test_compaction_equals_a_rebuild(saved, collection, tmp_path):
    index, final_ids, final_vectors = apply_updates(tmp_path, saved, collection)
    compacted = index.compacted()
    rebuilt = build_index(final_ids, final_vectors)
    queries = clustered(30, seed=7)
    for allowed in (None, final_ids[::7]):
        got = compacted.search(queries, 10, allowed_ids=allowed)
        want = rebuilt.search(queries, 10, allowed_ids=allowed)
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], atol=1e-6)
    np.testing.assert_array_equal(compacted.ids(), final_ids)
    assert saved.base.ntotal == 2000  # the loaded base itself was not changed


def test_compaction_of_an_approximate_base_keeps_every_change(collection, tmp_path):
    ids, vectors = collection
    base = build_index(ids[:2000], vectors[:2000], exact_limit=500)
    base.save(tmp_path, index_version=1, model_version="m")
    index, final_ids, _ = apply_updates(tmp_path, load(tmp_path), collection)
    assert index.kind == "ivf_sq8"
    compacted = index.compacted()
    assert compacted.kind == "ivf_sq8" and compacted.nprobe == base.nprobe
    np.testing.assert_array_equal(compacted.ids(), final_ids)
    _, found = compacted.search(vectors[2600:2610], 1)
    assert found[:, 0].tolist() == ids[2600:2610].tolist()


def test_a_reader_with_the_base_loaded_reads_only_the_new_segment_files(saved, collection, tmp_path, monkeypatch):
    ids, vectors = collection
    writer = save_segment(tmp_path, saved, Segment.adding(ids[2000:2010], vectors[2000:2010]))
    reader = read_new_segments(tmp_path, saved)
    assert reader.segment_count == 1
    writer = save_segment(tmp_path, writer, Segment.adding(ids[2010:2020], vectors[2010:2020]))
    read = []
    real = index_files.read_segment_file
    monkeypatch.setattr(
        "vectorindex.segments.read_segment_file", lambda d, entry, **kw: read.append(entry.name) or real(d, entry, **kw)
    )
    reader = read_new_segments(tmp_path, reader)
    assert read == ["segment-000002.npz"]
    np.testing.assert_array_equal(reader.ids(), writer.ids())


def test_load_takes_only_as_many_segments_as_asked(saved, collection, tmp_path):
    apply_updates(tmp_path, saved, collection)
    assert load(tmp_path, segments=2).segment_count == 2
    assert load(tmp_path).segment_count == 4
    with pytest.raises(IndexCorruptError, match="lists 4 segments, expected at least 5"):
        load(tmp_path, segments=5)


def test_a_crash_while_writing_a_segment_leaves_the_previous_state(saved, collection, tmp_path, monkeypatch):
    ids, vectors = collection
    index = save_segment(tmp_path, saved, Segment.adding(ids[2000:2100], vectors[2000:2100]))
    before = read_manifest(tmp_path)

    def crash(file, data):
        file.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_files, "_write_bytes", crash)
    with pytest.raises(OSError, match="No space"):
        save_segment(tmp_path, index, Segment.adding(ids[2100:2200], vectors[2100:2200]))
    monkeypatch.undo()
    assert read_manifest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss", MANIFEST_FILENAME, "segment-000001.npz"]
    reloaded = load(tmp_path)
    np.testing.assert_array_equal(reloaded.ids(), index.ids())


def test_a_crash_between_segment_file_and_manifest_is_invisible_and_overwritten(saved, collection, tmp_path):
    """A complete segment file that no manifest names (and a stray temp file) change nothing; the next write wins."""
    ids, vectors = collection
    index_files.write_segment_file(
        tmp_path,
        1,
        added_ids=ids[2000:2100],
        added_vectors=vectors[2000:2100],
        removed_ids=np.empty(0, np.int64),
        count=2100,
    )
    (tmp_path / ".segment-000002.npz.abc.tmp").write_bytes(b"half a segment")
    assert load(tmp_path).ntotal == 2000
    index = save_segment(tmp_path, load(tmp_path), Segment.adding(ids[2500:2510], vectors[2500:2510]))
    assert load(tmp_path).ntotal == index.ntotal == 2010
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_manifest_listing_a_segment_the_caller_never_recorded_is_overwritten(saved, collection, tmp_path):
    """The writer's caller crashed after the manifest but before its own commit: it knows one segment fewer."""
    ids, vectors = collection
    save_segment(tmp_path, saved, Segment.adding(ids[2000:2100], vectors[2000:2100]))  # never recorded
    index = save_segment(tmp_path, saved, Segment.adding(ids[2100:2110], vectors[2100:2110]))
    assert index.segment_count == 1
    assert load(tmp_path).ntotal == 2010
    assert not load(tmp_path).contains(int(ids[2000]))


@pytest.mark.parametrize("damage", ["deleted", "flipped"])
def test_a_damaged_segment_file_is_refused(saved, collection, tmp_path, damage):
    ids, vectors = collection
    save_segment(tmp_path, saved, Segment.adding(ids[2000:2100], vectors[2000:2100]))
    path = tmp_path / "segment-000001.npz"
    if damage == "deleted":
        path.unlink()
        with pytest.raises(IndexMissingError, match="segment-000001.npz"):
            load(tmp_path)
    else:
        raw = bytearray(path.read_bytes())
        raw[-10] ^= 0xFF
        path.write_bytes(bytes(raw))
        with pytest.raises(IndexCorruptError, match="sha256"):
            load(tmp_path)


def test_a_segment_cannot_be_added_to_a_deleted_index(saved, collection, tmp_path):
    ids, vectors = collection
    (tmp_path / "index.faiss").unlink()
    with pytest.raises(IndexMissingError, match="index.faiss"):
        save_segment(tmp_path, saved, Segment.adding(ids[2000:2001], vectors[2000:2001]))


def test_saved_files_list_the_segments_and_the_manifest_last(saved, collection, tmp_path):
    ids, vectors = collection
    save_segment(tmp_path, saved, Segment.adding(ids[2000:2001], vectors[2000:2001]))
    assert [p.name for p in saved_files(tmp_path)] == ["index.faiss", "segment-000001.npz", MANIFEST_FILENAME]


def test_a_version_1_manifest_without_segments_is_still_read(saved, tmp_path):
    path = tmp_path / MANIFEST_FILENAME
    data = json.loads(path.read_text())
    data["format_version"] = 1
    del data["segments"]
    path.write_text(json.dumps(data))
    assert load(tmp_path).ntotal == 2000


def test_bad_segments_are_refused_before_anything_is_written(saved, tmp_path):
    with pytest.raises(ValueError, match="dim 128"):
        save_segment(tmp_path, saved, Segment.adding(np.array([1]), np.ones((1, 64), np.float32)))
    with pytest.raises(ValueError, match="unique"):
        Segment.adding(np.array([1, 1]), np.ones((2, DIM), np.float32))
    with pytest.raises(ValueError, match="dim 128"):
        save_segment(tmp_path, saved, Segment.removing([1], dim=64))
    assert read_manifest(tmp_path).segments == ()


def test_compaction_is_due_by_delta_size_relative_to_the_base_or_by_segment_count(saved, collection, tmp_path):
    ids, vectors = collection
    index = save_segment(tmp_path, saved, Segment.adding(ids[2000:2050], vectors[2000:2050]))
    assert not compaction_due(index)  # 50 changes on a 2,000-vector base: below the 1,000 floor
    assert not compaction_due(index, min_delta=0)  # 5 % of the base: 100
    assert compaction_due(index, min_delta=0, max_delta_fraction=0.02)  # 2 %: 40
    assert compaction_due(index, max_delta=30)  # the cap wins over the floor
    assert compaction_due(index, max_segments=1)
    assert not compaction_due(SegmentedIndex.from_base(index.base, index.manifest))


def test_the_package_works_in_a_process_without_django(saved, collection, tmp_path):
    """A second process (no Django) loads base + segments a first one saved, and sees a later segment."""
    ids, vectors = collection
    index = save_segment(tmp_path, saved, Segment.adding(ids[2000:2001], vectors[2000:2001]))
    code = (
        "import sys; from vectorindex import load, read_new_segments\n"
        f"index = load({str(tmp_path)!r}); print(index.ntotal, flush=True)\n"
        "sys.stdin.readline()\n"
        f"index = read_new_segments({str(tmp_path)!r}, index); print(index.ntotal, index.contains({int(ids[2001])}))\n"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout.readline().split() == ["2001"]
    save_segment(tmp_path, index, Segment.adding(ids[2001:2002], vectors[2001:2002]))
    out, _ = reader.communicate("go\n", timeout=60)
    assert out.split() == ["2002", "True"]
