"""Calibrated similarity: the cosine of two embeddings → the probability that they show the same rock type.

Why: a well-trained metric embedding packs every near neighbour into a narrow band of cosines (the
shipped model gives 0.997–1.000 to a query's whole top 20), so the raw cosine says little to a
person. The calibration turns it into a probability that can be read on its own.

How it is fitted (:func:`fit_calibration`): on the held-out validation split of a training run, each
image queries the others and its top :data:`CALIBRATION_NEIGHBOURS` results become pairs
``(cosine, same rock type or not)``, i.e. exactly the pairs a search shows. scikit-learn's isotonic
regression fits a non-decreasing step function of the cosine to those outcomes; it assumes no shape,
only that a closer image is never less likely to be of the query's type. The fitted breakpoints are
stored in the checkpoint as plain lists (the ``calibration`` entry) and applied with linear
interpolation between them, clipped to the end values outside, so the mapping is monotone
non-decreasing in the cosine by construction.

Fallback: a checkpoint without a ``calibration`` entry (written before it existed) answers with
:data:`FALLBACK`, the cosine clipped to [0, 1]. It is monotone and in range but not a probability;
``Calibration.method`` says which one a model uses.

Measuring it (:func:`reliability`): the expected calibration error (ECE) over equal-width bins,
``Σ_b (n_b / N) · |mean predicted in b − share of same-type pairs in b|``, and the Brier score, the
mean squared difference between the predicted probability and the 0/1 outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .metrics import ranked_neighbours

CALIBRATION_NEIGHBOURS = 20
"""Top results per held-out query used for fitting: the depth of a typical search page."""

ISOTONIC = "isotonic"
FALLBACK_METHOD = "clipped-cosine"


class CalibrationError(ValueError):
    """A stored calibration is malformed (lengths differ, cosines not increasing, values outside [0, 1]...)."""


@dataclass(frozen=True)
class Calibration:
    """A monotone map from cosine to probability: piecewise linear through ``(cosines[i], probabilities[i])``."""

    cosines: tuple[float, ...]
    """Breakpoints, strictly increasing."""
    probabilities: tuple[float, ...]
    """Probability at each breakpoint, non-decreasing, in [0, 1]."""
    method: str = ISOTONIC
    fitted_on: dict[str, Any] = field(default_factory=dict)
    """What it was fitted on (split, queries, pairs, neighbours per query); free-form, for people."""

    def __post_init__(self) -> None:
        x = np.asarray(self.cosines, dtype=np.float64)
        y = np.asarray(self.probabilities, dtype=np.float64)
        if x.ndim != 1 or len(x) == 0 or x.shape != y.shape:
            raise CalibrationError(
                f"calibration needs as many probabilities as cosines (≥ 1), got {len(x)} and {len(y)}"
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise CalibrationError("calibration breakpoints must be finite numbers")
        if (np.diff(x) <= 0).any():
            raise CalibrationError("calibration cosines must be strictly increasing")
        if (np.diff(y) < 0).any() or y.min() < 0 or y.max() > 1:
            raise CalibrationError("calibration probabilities must be non-decreasing and within [0, 1]")

    @property
    def is_fallback(self) -> bool:
        """True for the uncalibrated fallback of old checkpoints."""
        return self.method == FALLBACK_METHOD

    def similarity(self, cosines: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Probability of the same rock type for each cosine (same shape, float64 in [0, 1])."""
        values = np.asarray(cosines, dtype=np.float64)
        mapped = np.interp(values, self.cosines, self.probabilities)
        return np.clip(mapped, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the checkpoint (lists of floats, no numpy)."""
        return {
            "method": self.method,
            "cosines": [float(v) for v in self.cosines],
            "probabilities": [float(v) for v in self.probabilities],
            "fitted_on": dict(self.fitted_on),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Calibration:
        """Inverse of :meth:`to_dict`; ``None`` or an empty dict (an older checkpoint) gives :data:`FALLBACK`."""
        if not data:
            return FALLBACK
        try:
            return cls(
                cosines=tuple(float(v) for v in data["cosines"]),
                probabilities=tuple(float(v) for v in data["probabilities"]),
                method=str(data.get("method", ISOTONIC)),
                fitted_on=dict(data.get("fitted_on") or {}),
            )
        except (KeyError, TypeError) as error:
            raise CalibrationError(f"calibration entry is incomplete: {error!r}") from error


FALLBACK = Calibration(
    cosines=(0.0, 1.0),
    probabilities=(0.0, 1.0),
    method=FALLBACK_METHOD,
    fitted_on={"note": "no calibration in this checkpoint: the cosine clipped to [0, 1], not a probability"},
)
"""What a checkpoint without a ``calibration`` entry answers: ``similarity = clip(cosine, 0, 1)``."""


def neighbour_pairs(
    embeddings: np.ndarray, labels: np.ndarray | Sequence, neighbours: int = CALIBRATION_NEIGHBOURS,
    queries: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(cosines, same)`` for each query's top ``neighbours`` other images, ranked as a search ranks them.

    ``queries``: indices of the images that query (default: all); every image is a possible result
    except the query itself. Embeddings are taken as L2-normalised (the model's output).
    """
    embeddings, inverse = _checked(embeddings, labels)
    query_ids, result_ids = _top_pairs(embeddings, inverse, neighbours, queries)
    return _cosines(embeddings, query_ids, result_ids), inverse[query_ids] == inverse[result_ids]


def search_pairs(
    embeddings: np.ndarray, labels: np.ndarray | Sequence, neighbours: int = CALIBRATION_NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cosines, same, weights)`` over the results searches show.

    Each image's top ``neighbours`` (weight 1 each), and for every other rock type its nearest image of
    that type, the top result of a search filtered to that type (together weighing as much as one
    top result). The second kind reaches the low cosines: a top 20 among many images of a few types
    is nearly all of the query's own type, and a calibration fitted on it alone would give a clearly
    different rock the probability of the worst top-20 result. Weighted low, they set the far end
    without outvoting the pairs an unfiltered search shows.
    """
    embeddings, inverse = _checked(embeddings, labels)
    top_q, top_r = _top_pairs(embeddings, inverse, neighbours, None)
    classes = np.unique(inverse)
    vectors = torch.from_numpy(embeddings)
    other_q, other_r = [], []
    for start in range(0, len(vectors), 1024):
        scores = vectors[start : start + 1024] @ vectors.T
        rows = torch.arange(len(scores))
        scores[rows, rows + start] = -torch.inf
        queries = np.arange(start, start + len(scores))
        for label in classes:
            columns = np.flatnonzero(inverse == label)
            other = inverse[queries] != label
            other_q.append(queries[other])
            other_r.append(columns[scores[:, columns].argmax(dim=1).numpy()][other])
    query_ids = np.concatenate([top_q, *other_q])
    result_ids = np.concatenate([top_r, *other_r])
    weights = np.ones(len(query_ids))
    weights[len(top_q) :] = 1.0 / max(1, len(classes) - 1)
    return _cosines(embeddings, query_ids, result_ids), inverse[query_ids] == inverse[result_ids], weights


def _checked(embeddings: np.ndarray, labels: np.ndarray | Sequence) -> tuple[np.ndarray, np.ndarray]:
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if len(embeddings) != len(labels):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    if len(embeddings) < 2:
        raise ValueError("need at least two images to form query/result pairs")
    return embeddings, np.unique(labels, return_inverse=True)[1]


def _top_pairs(
    embeddings: np.ndarray, inverse: np.ndarray, neighbours: int, queries: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Flat ``(query index, result index)`` arrays of each query's top ``neighbours``, best first."""
    depth = min(neighbours, len(embeddings) - 1)
    wanted = None
    if queries is not None:
        wanted = np.zeros(len(embeddings), dtype=bool)
        wanted[np.asarray(queries, dtype=np.int64)] = True
    query_ids, result_ids = [], []
    for query, ranked in ranked_neighbours(embeddings, inverse, "cosine", depth, chunk_size=1024):
        if wanted is not None:
            query, ranked = query[wanted[query]], ranked[wanted[query]]
        query_ids.append(np.repeat(query, ranked.shape[1]))
        result_ids.append(ranked.ravel())
    return np.concatenate(query_ids), np.concatenate(result_ids)


def _cosines(embeddings: np.ndarray, query_ids: np.ndarray, result_ids: np.ndarray) -> np.ndarray:
    return np.einsum("nd,nd->n", embeddings[query_ids], embeddings[result_ids]).astype(np.float64)


def fit_calibration(
    embeddings: np.ndarray, labels: np.ndarray | Sequence, *, neighbours: int = CALIBRATION_NEIGHBOURS,
    split: str = "val",
) -> Calibration:
    """Isotonic fit of P(same rock type | cosine) on the :func:`search_pairs` of held-out images."""
    cosines, same, weights = search_pairs(embeddings, labels, neighbours)
    return fit_isotonic(cosines, same, weights, fitted_on={
        "split": split, "queries": int(len(embeddings)), "pairs": int(len(cosines)),
        "neighbours": int(min(neighbours, len(embeddings) - 1)), "nearest_of_each_other_type": True,
        "same_share": round(float(same.mean()), 5),
    })


def fit_isotonic(
    cosines: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None, fitted_on: dict[str, Any] | None = None
) -> Calibration:
    """The non-decreasing step function of ``cosines`` closest (weighted least squares) to the 0/1 ``same``."""
    cosines = np.asarray(cosines, dtype=np.float64)
    same = np.asarray(same, dtype=np.float64)
    if len(cosines) == 0:
        raise ValueError("no pairs to fit a calibration on")
    # Imported here, not at the top: scikit-learn pulls in scipy (seconds of start-up), and every
    # process that loads a checkpoint imports this module only to apply a calibration, not to fit one.
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(cosines, same, sample_weight=weights)
    x, y = np.asarray(model.X_thresholds_), np.asarray(model.y_thresholds_)
    if len(x) == 1:  # every pair at one cosine: a flat line around it
        x, y = np.array([x[0] - 1e-6, x[0] + 1e-6]), np.array([y[0], y[0]])
    return Calibration(
        cosines=tuple(x.tolist()), probabilities=tuple(np.maximum.accumulate(y).tolist()),
        method=ISOTONIC, fitted_on=dict(fitted_on or {}),
    )


@dataclass(frozen=True)
class Reliability:
    """Calibration quality of predicted probabilities against 0/1 outcomes."""

    ece: float
    brier: float
    pairs: int
    bins: list[dict[str, float]]
    """Per equal-width bin: ``low``, ``high``, ``count``, ``mean_predicted``, ``observed`` (share of same type)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"ece": self.ece, "brier": self.brier, "pairs": self.pairs, "bins": self.bins}


def reliability(probabilities: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> Reliability:
    """ECE over ``bins`` equal-width bins of [0, 1] (the last one closed), and the Brier score."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(outcomes, dtype=np.float64).ravel()
    if len(p) != len(y) or len(p) == 0:
        raise ValueError(f"need as many outcomes as probabilities (≥ 1), got {len(p)} and {len(y)}")
    if p.min() < 0 or p.max() > 1:
        raise ValueError("probabilities must lie in [0, 1]")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        row = {"low": b / bins, "high": (b + 1) / bins, "count": count, "mean_predicted": None, "observed": None}
        if count:
            row["mean_predicted"] = float(p[members].mean())
            row["observed"] = float(y[members].mean())
            ece += count / len(p) * abs(row["mean_predicted"] - row["observed"])
        table.append(row)
    return Reliability(ece=float(ece), brier=float(np.mean((p - y) ** 2)), pairs=int(len(p)), bins=table)

