"""Retrieval metrics against a plain numpy computation, and on a case small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import retrieval_metrics, top1_confusion


def numpy_reference(embeddings: np.ndarray, labels: np.ndarray, metric: str = "cosine") -> dict[str, float]:
    """Obviously-correct leave-one-out metrics: one query at a time, full sort."""
    if metric == "cosine":
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        distance = -(unit @ unit.T)
    else:
        distance = ((embeddings[:, None, :] - embeddings[None, :, :]) ** 2).sum(-1)
    p1, p5, map_r, r_prec = [], [], [], []
    for q in range(len(labels)):
        others = [i for i in np.argsort(distance[q], kind="stable") if i != q]
        relevant = [labels[i] == labels[q] for i in others]
        r = sum(relevant)
        if r == 0:
            continue
        p1.append(float(relevant[0]))
        p5.append(sum(relevant[:5]) / 5)
        r_prec.append(sum(relevant[:r]) / r)
        ap = 0.0
        hits = 0
        for i in range(r):
            if relevant[i]:
                hits += 1
                ap += hits / (i + 1)
        map_r.append(ap / r)
    return {"p_at_1": np.mean(p1), "p_at_5": np.mean(p5), "map_at_r": np.mean(map_r), "r_precision": np.mean(r_prec)}


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_matches_numpy_on_noisy_clusters(metric: str) -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 150)
    centres = rng.normal(size=(4, 16))
    embeddings = centres[labels] + rng.normal(scale=1.2, size=(150, 16))  # overlapping: metrics well below 1
    ours = retrieval_metrics(embeddings.astype(np.float32), labels, metric=metric, chunk_size=37)
    expected = numpy_reference(embeddings, labels, metric)
    assert set(ours) == {"p_at_1", "p_at_5", "map_at_r", "r_precision"}
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key
    assert 0.3 < ours["map_at_r"] < 0.95


def test_hand_computed_case() -> None:
    # On a line: a0=0, a1=1, b0=2, b1=10, a2=11. Cosine cannot order points on a line, so use euclidean.
    points = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    labels = np.array(["a", "a", "b", "b", "a"])
    result = retrieval_metrics(points, labels, metric="euclidean")
    # Nearest others: a0→a1 ✓, a1→a0 ✓ (tie-free), b0→a1 ✗, b1→a2 ✗, a2→b1 ✗.
    assert result["p_at_1"] == pytest.approx(2 / 5)
    # a0: ranked a1,b0,b1,a2 → R=2, AP = (1/1)/2 = 0.5; a1: a0,b0,b1,a2 → 0.5; b0: a1,a0,b1,… R=1 → 0
    # b1: a2,b0,… → 0; a2: b1,b0,a1,a0 → 0.  MAP@R = 1/5.
    assert result["map_at_r"] == pytest.approx(1 / 5)
    assert result["r_precision"] == pytest.approx((0.5 + 0.5 + 0 + 0 + 0) / 5)
    # P@5 with only 4 others: share of relevant among them.
    assert result["p_at_5"] == pytest.approx((2 / 4 + 2 / 4 + 1 / 4 + 1 / 4 + 2 / 4) / 5)


def test_perfect_clusters_score_one() -> None:
    labels = np.repeat(np.arange(3), 10)
    embeddings = np.eye(3)[labels] + np.random.default_rng(0).normal(scale=0.01, size=(30, 3))
    assert all(v == pytest.approx(1.0) for v in retrieval_metrics(embeddings, labels).values())


def test_singleton_classes_are_not_queries() -> None:
    embeddings = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    assert retrieval_metrics(embeddings, ["x", "x", "lonely"])["p_at_1"] == 1.0


def test_top1_confusion_counts_nearest_neighbour_classes() -> None:
    points = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    classes, table = top1_confusion(points, np.array(["a", "a", "b", "b", "a"]), metric="euclidean")
    assert classes == ["a", "b"]
    assert table.tolist() == [[2, 1], [2, 0]]


def test_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        retrieval_metrics(np.zeros((3, 2)), [0, 1])
