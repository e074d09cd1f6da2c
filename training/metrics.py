"""Leave-one-out retrieval metrics: every image queries all the others.

Own implementation rather than pytorch-metric-learning's ``AccuracyCalculator`` because it streams the
similarity matrix in chunks (22,800² floats would need 2 GB), supports Euclidean baselines, and also
gives the top-1 confusion table; ``tests/training/test_metrics.py`` checks it against plain numpy.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

METRIC_NAMES = ("p_at_1", "p_at_5", "map_at_r", "r_precision")


def ranked_neighbours(
    embeddings: np.ndarray, labels: np.ndarray, metric: str, depth: int | None, chunk_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(query indices, neighbour indices ranked best first, self excluded)`` per chunk.

    ``depth`` None ranks as deep as the largest class needs (R of its queries).
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    vectors = torch.as_tensor(np.ascontiguousarray(embeddings), dtype=torch.float32)
    if metric == "cosine":
        vectors = F.normalize(vectors, dim=1)
        bias = torch.zeros(len(vectors))
    else:
        # Ranking by -|q - x|² equals ranking by 2·q·x - |x|², as |q|² is the same for one query.
        bias = -(vectors * vectors).sum(dim=1)
    n = len(vectors)
    _, counts = np.unique(labels, return_counts=True)
    needed = max(5, int(counts.max()) - 1) if depth is None else depth
    depth = min(needed, n - 1)
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        scores = vectors[start:stop] @ vectors.T
        if metric == "euclidean":
            scores = 2 * scores + bias
        rows = torch.arange(stop - start)
        scores[rows, rows + start] = -torch.inf
        yield np.arange(start, stop), scores.topk(depth, dim=1).indices.numpy()


def retrieval_metrics(
    embeddings: np.ndarray, labels: np.ndarray | list, metric: str = "cosine", chunk_size: int = 1024
) -> dict[str, float]:
    """P@1, P@5, MAP@R and R-precision, leave-one-out, averaged over queries.

    For a query with R other images of its class: P@k is the share of relevant images among its k
    nearest neighbours; R-precision the share among its R nearest; MAP@R (Musgrave et al., 2020) the
    mean over i ≤ R of precision-at-i counted only at relevant positions i. Queries whose class has no
    other image are left out. ``metric``: ``"cosine"`` (embeddings are normalised first) or
    ``"euclidean"`` (for raw-feature baselines).
    """
    per_query = per_query_metrics(embeddings, labels, metric, chunk_size)
    return {name: float(values.mean()) for name, values in per_query.items()}


def per_query_metrics(
    embeddings: np.ndarray, labels: np.ndarray | list, metric: str = "cosine", chunk_size: int = 1024
) -> dict[str, np.ndarray]:
    """The metrics of :func:`retrieval_metrics` for each query (for bootstrap confidence intervals).

    Queries whose class has no other image are left out, so the arrays may be shorter than ``labels``.
    """
    labels = np.asarray(labels)
    embeddings = np.asarray(embeddings)
    if len(labels) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    if len(labels) < 2:
        raise ValueError("need at least two images")
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    relevant_counts = counts[inverse] - 1
    parts: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
    for query, ranked in ranked_neighbours(embeddings, inverse, metric, None, chunk_size):
        r = relevant_counts[query]
        keep = r > 0
        if not keep.any():
            continue
        query, ranked, r = query[keep], ranked[keep], r[keep]
        hits = (inverse[ranked] == inverse[query][:, None]).astype(np.float64)
        depth = hits.shape[1]
        positions = np.arange(1, depth + 1)
        within_r = positions[None, :] <= r[:, None]
        precision_at_i = np.cumsum(hits, axis=1) / positions
        top5 = min(5, depth)
        parts["p_at_1"].append(hits[:, 0])
        parts["p_at_5"].append(hits[:, :top5].sum(axis=1) / top5)
        parts["map_at_r"].append((precision_at_i * hits * within_r).sum(axis=1) / r)
        parts["r_precision"].append((hits * within_r).sum(axis=1) / r)
    if not parts["p_at_1"]:
        raise ValueError("every class has a single image: nothing to retrieve")
    return {name: np.concatenate(values) for name, values in parts.items()}


def top1_confusion(
    embeddings: np.ndarray, labels: np.ndarray | list, metric: str = "cosine", chunk_size: int = 1024
) -> tuple[list, np.ndarray]:
    """``(classes, table)``: ``table[i, j]`` counts queries of class i whose nearest other image is of class j."""
    labels = np.asarray(labels)
    classes, inverse = np.unique(labels, return_inverse=True)
    table = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for query, ranked in ranked_neighbours(np.asarray(embeddings), inverse, metric, 1, chunk_size):
        np.add.at(table, (inverse[query], inverse[ranked[:, 0]]), 1)
    return classes.tolist(), table
