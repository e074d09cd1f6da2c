"""bench/bench_scale.py's own arithmetic: data generation, exact ground truth, recall, cells.

Each helper is compared with a plain computation on a small seeded set, so a wrong benchmark figure
cannot come from these parts.
"""

import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_scale  # noqa: E402


@pytest.fixture
def real_like():
    """Two tight classes of unit vectors in 16-d, like the real embeddings but small."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((2, 16)).astype(np.float32)
    vectors = np.repeat(centres, 200, axis=0) + 0.05 * rng.standard_normal((400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, np.repeat(np.array(["a", "b"]), 200)


def test_hold_out_keeps_queries_out_of_the_seeds(real_like):
    vectors, labels = real_like
    queries, query_classes, seeds, seed_classes, names = bench_scale.hold_out(vectors, labels, 50, seed=0)
    assert names == ["a", "b"]
    assert len(queries) == 50 and len(seeds) == 350
    seen = {row.tobytes() for row in seeds}
    assert not any(row.tobytes() in seen for row in queries)
    assert set(np.unique(query_classes)) <= {0, 1} and len(seed_classes) == 350


def test_generated_vectors_are_unit_norm_near_a_seed_of_their_class(real_like):
    vectors, labels = real_like
    _, _, seeds, seed_classes, _ = bench_scale.hold_out(vectors, labels, 50, seed=0)
    factors = bench_scale.class_noise_factors(seeds, seed_classes)
    for label, factor in enumerate(factors):
        assert np.allclose(factor @ factor.T, np.cov(seeds[seed_classes == label].T), atol=1e-5)

    base, classes = bench_scale.generate_base(3000, seeds, seed_classes, factors, noise=0.05, seed=0)
    assert base.shape == (3000, 16) and base.dtype == np.float32
    assert np.allclose(np.linalg.norm(base, axis=1), 1, atol=1e-5)
    nearest = faiss.knn(base, seeds, 1, metric=faiss.METRIC_INNER_PRODUCT)[1][:, 0]
    assert np.mean(seed_classes[nearest] == classes) > 0.99
    again, _ = bench_scale.generate_base(3000, seeds, seed_classes, factors, noise=0.05, seed=0)
    assert np.array_equal(base, again)


def test_ground_truth_is_the_float64_top_10_across_chunks(real_like, monkeypatch):
    vectors, labels = real_like
    monkeypatch.setattr(bench_scale, "GT_CHUNK", 70)  # several chunks to merge
    queries, base = vectors[:20], vectors[20:]
    found = bench_scale.exact_ground_truth(queries, base, candidates=40)

    exact = queries.astype(np.float64) @ base.astype(np.float64).T
    expected = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    assert np.array_equal(np.sort(found["truth"], axis=1), np.sort(expected, axis=1))
    assert 0 <= found["certified"] <= 1


def test_recall_and_same_label_count_what_they_say():
    truth = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]])
    found = np.array([[9, 8, 7, 6, 5, 10, 11, 12, 13, -1]])
    assert bench_scale.recall_at_k(found, truth) == 0.5
    classes = np.array([0] * 10 + [1] * 4)
    assert bench_scale.same_label_at_k(found, classes, np.array([0])) == 0.5  # a missing result (-1) counts as wrong


def test_cells_of_vectors_match_the_quantizer(real_like):
    vectors, _ = real_like
    quantizer = faiss.IndexFlatIP(16)
    index = faiss.IndexIVFFlat(quantizer, 16, 8, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add_with_ids(vectors, np.arange(len(vectors)))
    assert np.array_equal(bench_scale.cells_of_vectors(index, len(vectors)), quantizer.search(vectors, 1)[1][:, 0])
