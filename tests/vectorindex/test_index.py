"""vectorindex against a plain numpy exact search on seeded synthetic embeddings."""

import errno
import hashlib
import json

import faiss
import numpy as np
import pytest

from vectorindex import files as index_files
from vectorindex.index import (
    INDEX_FILENAME,
    INDEX_FORMAT_VERSION,
    KIND_APPROX,
    KIND_EXACT,
    MANIFEST_FILENAME,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    VectorIndex,
    build_index,
    read_manifest,
    search_threads,
    set_search_threads,
)

DIM = 128


def clustered(n: int, *, seed: int, centres: int = 100, noise: float = 0.6) -> np.ndarray:
    """Unit vectors around random unit centres, like embeddings of a few dozen kinds of rock."""
    rng = np.random.default_rng(seed)
    middles = rng.standard_normal((centres, DIM))
    middles /= np.linalg.norm(middles, axis=1, keepdims=True)
    x = middles[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def near(vector: np.ndarray) -> np.ndarray:
    """A new unit vector close to ``vector``: a new image of the same kind of rock."""
    moved = vector + 0.1 * np.random.default_rng(0).standard_normal(DIM) / np.sqrt(DIM)
    return (moved / np.linalg.norm(moved))[None, :].astype(np.float32)


def numpy_search(vectors, ids, queries, k):
    """The obviously correct answer: all inner products, sorted."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def recall(found, truth):
    return np.mean([len(np.intersect1d(a, b)) / truth.shape[1] for a, b in zip(found, truth, strict=True)])


@pytest.fixture(scope="module")
def data():
    vectors = clustered(20_000, seed=1)
    ids = np.random.default_rng(2).permutation(np.arange(1, 60_001))[:20_000].astype(np.int64)
    queries = clustered(200, seed=3)
    return ids, vectors, queries


@pytest.fixture(scope="module")
def exact(data):
    ids, vectors, _ = data
    return build_index(ids[:5000], vectors[:5000])


@pytest.fixture(scope="module")
def approx(data):
    ids, vectors, _ = data
    return build_index(ids, vectors, exact_limit=5000, seed=0)


@pytest.fixture(params=[KIND_EXACT, KIND_APPROX])
def fresh(request, data, tmp_path):
    """A private copy (saved and loaded) of either kind that a test may change, with its ids and vectors."""
    ids, vectors, _ = data
    built = request.getfixturevalue("exact" if request.param == KIND_EXACT else "approx")
    built.save(tmp_path / "copy", index_version=1, model_version="m")
    n = built.ntotal
    return VectorIndex.load(tmp_path / "copy"), ids[:n], vectors[:n]


def test_exact_kind_matches_numpy(exact, data):
    ids, vectors, queries = data
    scores, found = exact.search(queries, 10)
    want_scores, want_ids = numpy_search(vectors[:5000], ids[:5000], queries, 10)
    assert exact.kind == KIND_EXACT and exact.recall_at_10 is None
    assert scores.dtype == np.float32 and found.dtype == np.int64 and found.shape == (200, 10)
    np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert (found == want_ids).mean() > 0.999  # ties aside


def test_approximate_kind_recall_is_measured_and_recorded(approx, data):
    ids, vectors, queries = data
    assert approx.kind == KIND_APPROX and approx.ntotal == 20_000
    sample = np.random.default_rng(7).choice(len(ids), 500, replace=False)
    measured = recall(approx.search(vectors[sample], 10)[1], numpy_search(vectors, ids, vectors[sample], 10)[1])
    assert measured >= 0.9
    assert approx.recall_at_10 == pytest.approx(measured, abs=0.03)
    held_out = recall(approx.search(queries, 5)[1], numpy_search(vectors, ids, queries, 5)[1])
    assert held_out >= 0.9


def test_build_reports_progress_up_to_one(data):
    ids, vectors, _ = data
    seen = []
    build_index(ids[:3000], vectors[:3000], exact_limit=1000, progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_build_is_reproducible_for_a_seed(data):
    ids, vectors, queries = data
    first = build_index(ids[:4000], vectors[:4000], exact_limit=1000, seed=5)
    second = build_index(ids[:4000], vectors[:4000], exact_limit=1000, seed=5)
    assert np.array_equal(first.search(queries, 10)[1], second.search(queries, 10)[1])


@pytest.mark.parametrize("which", ["exact", "approx"])
def test_save_load_round_trip_gives_identical_results(which, request, data, tmp_path):
    built = request.getfixturevalue(which)
    queries = data[2]
    manifest = built.save(tmp_path, index_version=3, model_version="resnet-v1")
    assert manifest == read_manifest(tmp_path)
    assert (manifest.format_version, manifest.index_version, manifest.model_version) == (
        INDEX_FORMAT_VERSION,
        3,
        "resnet-v1",
    )
    assert (manifest.dim, manifest.count, manifest.kind) == (DIM, built.ntotal, built.kind)
    assert manifest.recall_at_10 == built.recall_at_10
    loaded = VectorIndex.load(tmp_path, expected_model_version="resnet-v1", expected_dim=DIM)
    assert (loaded.kind, loaded.ntotal, loaded.nprobe, loaded.recall_at_10) == (
        built.kind,
        built.ntotal,
        built.nprobe,
        built.recall_at_10,
    )
    for a, b in zip(built.search(queries, 10), loaded.search(queries, 10), strict=True):
        assert np.array_equal(a, b)
    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_FILENAME, MANIFEST_FILENAME]


def test_flipped_bytes_in_index_file_are_corrupt(exact, tmp_path):
    exact.save(tmp_path, index_version=1, model_version="m")
    path = tmp_path / INDEX_FILENAME
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 8] = bytes(b ^ 0xFF for b in raw[len(raw) // 2 : len(raw) // 2 + 8])
    path.write_bytes(bytes(raw))
    with pytest.raises(IndexCorruptError, match="sha256"):
        VectorIndex.load(tmp_path)


def test_truncated_index_file_is_corrupt(exact, tmp_path):
    exact.save(tmp_path, index_version=1, model_version="m")
    path = tmp_path / INDEX_FILENAME
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IndexCorruptError, match=str(path)):
        VectorIndex.load(tmp_path)


def test_unreadable_faiss_file_with_matching_checksum_is_corrupt(exact, tmp_path):
    exact.save(tmp_path, index_version=1, model_version="m")
    rewrite_manifest(tmp_path, sha256=write_file(tmp_path / INDEX_FILENAME, b"not a faiss index"))
    with pytest.raises(IndexCorruptError, match="cannot be read"):
        VectorIndex.load(tmp_path)


def test_manifest_disagreeing_with_index_is_corrupt(exact, tmp_path):
    exact.save(tmp_path, index_version=1, model_version="m")
    rewrite_manifest(tmp_path, count=exact.ntotal + 1)
    with pytest.raises(IndexCorruptError, match="count"):
        VectorIndex.load(tmp_path)


@pytest.mark.parametrize("text", ["{not json", "[]", '{"format_version": 1}'])
def test_unparseable_manifest_is_corrupt(exact, tmp_path, text):
    exact.save(tmp_path, index_version=1, model_version="m")
    (tmp_path / MANIFEST_FILENAME).write_text(text)
    with pytest.raises(IndexCorruptError, match=MANIFEST_FILENAME):
        VectorIndex.load(tmp_path)


def test_other_model_version_is_a_mismatch(exact, tmp_path):
    exact.save(tmp_path, index_version=1, model_version="old-model")
    with pytest.raises(IndexMismatchError, match="'old-model'.*expected 'new-model'"):
        VectorIndex.load(tmp_path, expected_model_version="new-model")


def test_other_dimension_is_a_mismatch(exact, tmp_path):
    exact.save(tmp_path, index_version=1, model_version="m")
    with pytest.raises(IndexMismatchError, match="dimension 128, expected 64"):
        VectorIndex.load(tmp_path, expected_dim=64)


def test_other_format_version_is_a_mismatch(exact, tmp_path):
    exact.save(tmp_path, index_version=1, model_version="m")
    rewrite_manifest(tmp_path, format_version=INDEX_FORMAT_VERSION + 1)
    with pytest.raises(IndexMismatchError, match="format version"):
        VectorIndex.load(tmp_path)


def test_missing_directory_manifest_or_index_file(exact, tmp_path):
    with pytest.raises(IndexMissingError, match="no index manifest"):
        VectorIndex.load(tmp_path / "nowhere")
    exact.save(tmp_path, index_version=1, model_version="m")
    (tmp_path / INDEX_FILENAME).unlink()
    with pytest.raises(IndexMissingError, match=INDEX_FILENAME):
        VectorIndex.load(tmp_path)
    (tmp_path / MANIFEST_FILENAME).unlink()
    with pytest.raises(IndexMissingError):
        read_manifest(tmp_path)


@pytest.mark.parametrize("failing", ["_write_index", "_write_bytes"])
def test_failed_save_leaves_previous_index_loadable(exact, data, tmp_path, monkeypatch, failing):
    queries = data[2]
    first = exact.save(tmp_path, index_version=1, model_version="m")
    before = exact.search(queries, 5)

    def disk_full(file):
        file.write(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    fakes = {
        "_write_index": lambda index, file: disk_full(file),
        "_write_bytes": lambda file, data: disk_full(file),
    }
    monkeypatch.setattr(index_files, failing, fakes[failing])
    changed = build_index(data[0][:100], data[1][:100])
    with pytest.raises(OSError, match="No space"):
        changed.save(tmp_path, index_version=2, model_version="m")

    assert sorted(p.name for p in tmp_path.iterdir()) == [INDEX_FILENAME, MANIFEST_FILENAME]
    assert read_manifest(tmp_path) == first
    loaded = VectorIndex.load(tmp_path)
    assert np.array_equal(loaded.search(queries, 5)[1], before[1])


def test_add_new_id_is_found_as_its_own_top_hit(fresh):
    built, ids, vectors = fresh
    vector = near(vectors[0])
    built.add(np.array([10**9]), vector)
    scores, found = built.search(vector, 3)
    assert found[0, 0] == 10**9 and scores[0, 0] == pytest.approx(1.0, abs=0.01)
    assert built.ntotal == len(ids) + 1 and built.contains(10**9)


def test_remove_drops_ids_from_results_and_count(fresh):
    built, ids, vectors = fresh
    gone = ids[:50]
    assert built.remove(np.concatenate([gone, [10**12]])) == 50
    assert built.ntotal == len(ids) - 50
    found = built.search(vectors[:50], 10)[1]
    assert not np.isin(found, gone).any()
    assert not built.contains(int(gone[0])) and built.contains(int(ids[50]))
    assert built.remove(gone) == 0


def test_re_adding_an_id_replaces_its_vector(fresh):
    built, ids, vectors = fresh
    image_id = int(ids[0])
    new_vector = near(vectors[1])
    built.add(np.array([image_id]), new_vector)
    assert built.ntotal == len(ids)
    assert built.search(new_vector, 1)[1][0, 0] == image_id
    assert image_id not in built.search(vectors[:1], 10)[1][0]
    assert np.array_equal(built.ids(), np.sort(ids))


@pytest.mark.parametrize("n_allowed", [10_000, 500, 12])
def test_allowed_ids_give_exactly_k_results_from_the_allowed_set(fresh, data, n_allowed):
    built, ids, vectors = fresh
    queries = data[2][:50]
    allowed = np.random.default_rng(n_allowed).choice(ids, min(n_allowed, len(ids)), replace=False)
    scores, found = built.search(queries, 10, allowed_ids=allowed)
    assert (found >= 0).all() and np.isin(found, allowed).all()
    assert all(len(set(row)) == 10 for row in found)
    inside = np.isin(ids, allowed)
    truth = numpy_search(vectors[inside], ids[inside], queries, 10)[1]
    assert recall(found, truth) >= (0.999 if built.kind == KIND_EXACT else 0.9)


def test_exclude_ids_removes_them_from_results(fresh):
    built, ids, vectors = fresh
    scores, found = built.search(vectors[:20], 10, exclude_ids=ids[:20])
    assert (found >= 0).all() and not np.isin(found, ids[:20]).any()
    both = built.search(vectors[:20], 5, allowed_ids=ids[:25], exclude_ids=ids[:20])[1]
    assert np.array_equal(np.sort(both, axis=1), np.tile(np.sort(ids[20:25]), (20, 1)))
    # Many allowed ids (a bitmap selector), unsorted and repeated, minus the excluded ones.
    many = built.search(vectors[:20], 10, allowed_ids=np.concatenate([ids[::-1], ids]), exclude_ids=ids[:20])[1]
    assert (many >= 0).all() and not np.isin(many, ids[:20]).any()


def test_fewer_than_k_eligible_are_padded(fresh):
    built, ids, vectors = fresh
    scores, found = built.search(vectors[:4], 5, allowed_ids=np.concatenate([ids[:3], [10**12]]))
    assert np.isin(found[:, :3], ids[:3]).all()
    assert (found[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert np.isfinite(scores[:, :3]).all()
    scores, found = built.search(vectors[:4], 5, allowed_ids=np.array([], dtype=np.int64))
    assert (found == -1).all() and np.isneginf(scores).all()


def test_small_index_pads_results():
    vectors = clustered(3, seed=5)
    built = build_index(np.array([4, 5, 6]), vectors)
    scores, found = built.search(vectors, 5)
    assert found.shape == (3, 5) and (found[:, :3] >= 0).all() and (found[:, 3:] == -1).all()
    assert np.isneginf(scores[:, 3:]).all()
    assert np.array_equal(found[:, 0], [4, 5, 6])


def test_dimension_mismatch_is_a_value_error(exact):
    with pytest.raises(ValueError, match="dim 128.*dim 64"):
        exact.search(np.zeros((2, 64), np.float32), 5)
    with pytest.raises(ValueError, match="2-D"):
        exact.search(np.zeros(128, np.float32), 5)
    with pytest.raises(ValueError, match="dimension mismatch"):
        exact.add(np.array([1]), np.zeros((1, 64), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        exact.search(np.full((1, 128), np.nan, np.float32), 5)
    with pytest.raises(ValueError, match="k must be"):
        exact.search(np.zeros((1, 128), np.float32), 0)


@pytest.mark.parametrize(
    ("ids", "message"),
    [([1, 1], "unique"), ([-1, 2], ">= 0"), ([1, 2, 3], "3 ids for 2 vectors"), ([1.5, 2.5], "integers")],
)
def test_bad_ids_are_refused(ids, message):
    with pytest.raises(ValueError, match=message):
        build_index(np.array(ids), clustered(2, seed=0))


def test_empty_index_searches_to_padding():
    built = build_index(np.array([], dtype=np.int64), np.zeros((0, DIM), np.float32))
    assert built.ntotal == 0 and built.dim == DIM
    assert (built.search(clustered(2, seed=0), 3)[1] == -1).all()


def test_search_threads_context_restores_previous_count():
    before = faiss.omp_get_max_threads()
    with search_threads(1):
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before
    assert set_search_threads(before) == before
    with pytest.raises(ValueError):
        set_search_threads(0)


def write_file(path, content: bytes) -> str:
    path.write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def rewrite_manifest(directory, **changes):
    path = directory / MANIFEST_FILENAME
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_filtered_search_survives_faiss_torch_utils():
    """pytorch-metric-learning imports faiss.contrib.torch_utils, which patches Index.search."""
    import faiss.contrib.torch_utils  # noqa: F401

    from vectorindex import build_index

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = build_index(np.arange(50, dtype=np.int64), vectors)
    scores, ids = index.search(vectors[:1], 3, allowed_ids=np.array([5, 6, 7, 8]))
    assert set(ids[0]) <= {5, 6, 7, 8} and len(ids[0]) == 3
