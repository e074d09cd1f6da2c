"""Relevance feedback: refine a query with collection images marked "more like these" and "less like these".

Rocchio's rule on the stored embeddings of the live model:

    q' = ALPHA·q + BETA·mean(positive) − GAMMA·mean(negative),   then L2-normalised

``q`` is the query's own embedding (an uploaded image, a saved query or a collection image) and may be
absent: positives alone are a query ("more like these"). Marked images are read from the Embedding table
under the live index's model, so the refined query lives in the same vector space as the index.
Weights are Rocchio's classic ones (1, 0.75, 0.15): negatives push gently, since an image unlike the
query is usually unlike it in many directions at once. The gain on the real collection is measured by
``bench/bench_feedback.py`` (docs/PERFORMANCE.md, "Relevance feedback").
"""

from __future__ import annotations

import numpy as np
from django.conf import settings

from search import embedder, engine, live_index
from search.filters import NO_FILTER
from search.imaging import decode_image
from search.limits import MAX_K
from search.models import Embedding

ALPHA, BETA, GAMMA = 1.0, 0.75, 0.15
MAX_MARKED = 200


class FeedbackError(ValueError):
    """Unusable feedback: unknown or not-yet-embedded ids, nothing to search with, too many ids."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def parse_ids(raw, param: str) -> list[int]:
    """Comma-separated image ids (a list of strings is joined first); FeedbackError if malformed."""
    if isinstance(raw, list | tuple):
        raw = ",".join(str(part) for part in raw)
    text = (raw or "").strip()
    if not text:
        return []
    ids = []
    for part in text.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit()) or len(part) > 18:
            raise FeedbackError(param, f"{part!r} is not an image id; give comma-separated ids, e.g. 12,40,7")
        ids.append(int(part))
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_MARKED:
        raise FeedbackError(param, f"at most {MAX_MARKED} ids")
    return ids


def refined_query(
    base: np.ndarray | None, *, positive: list[int], negative: list[int], model_version_id: int
) -> np.ndarray:
    """The Rocchio query (1, d) float32, unit length; FeedbackError for ids without a stored vector."""
    both = set(positive) & set(negative)
    if both:
        raise FeedbackError("negative", f"image(s) {sorted(both)} are marked both more and less like")
    if base is None and not positive:
        raise FeedbackError("positive", "give an image, or at least one positive image id, to search with")
    vectors = _stored_vectors([*positive, *negative], model_version_id)
    missing = [i for i in [*positive, *negative] if i not in vectors]
    if missing:
        raise FeedbackError(
            "positive" if set(missing) & set(positive) else "negative",
            f"no searchable image with id(s) {missing[:20]} (unknown, or not embedded yet)",
        )
    return rocchio(base, [vectors[i] for i in positive], [vectors[i] for i in negative])


def rocchio(base: np.ndarray | None, positive: list[np.ndarray], negative: list[np.ndarray]) -> np.ndarray:
    """Rocchio's rule on unit vectors (no Django; the benchmark uses it too): a (1, d) float32 unit query."""
    dim = np.asarray(base).size if base is not None else np.asarray(positive[0]).size
    query = np.zeros(dim, dtype=np.float64)
    if base is not None:
        query += ALPHA * np.asarray(base, dtype=np.float64).ravel()
    if positive:
        query += BETA * np.mean(np.asarray(positive, dtype=np.float64), axis=0)
    if negative:
        query -= GAMMA * np.mean(np.asarray(negative, dtype=np.float64), axis=0)
    norm = np.linalg.norm(query)
    if not np.isfinite(norm) or norm < 1e-6:
        raise FeedbackError("negative", "the marked images cancel the query out; mark fewer images as less like")
    return (query / norm).astype(np.float32).reshape(1, -1)


def _stored_vectors(ids: list[int], model_version_id: int) -> dict[int, np.ndarray]:
    rows = Embedding.objects.filter(image_id__in=ids, model_version_id=model_version_id).values_list(
        "image_id", "vector"
    )
    return {image_id: np.frombuffer(bytes(vector), dtype="<f4").astype(np.float64) for image_id, vector in rows}


def search_with_feedback(
    *,
    data: bytes | None = None,
    image_id: int | None = None,
    base: np.ndarray | None = None,
    positive: list[int],
    negative: list[int],
    k: int,
    label: str | None = None,
    filters=None,
):
    """Search with the refined query; the query image (``image_id``), if any, is left out of the results.

    The query is an uploaded image (``data``), a collection image (``image_id``), a saved query's vector
    (``base``), or nothing but the positive images.
    """
    loaded = live_index.current()
    model_version = loaded.version.model_version
    if data is not None:
        picture = decode_image(data, max_pixels=settings.GEOSIM_MAX_PIXELS, max_bytes=settings.GEOSIM_MAX_UPLOAD_BYTES)
        base = embedder.embed_images(model_version, [picture.image])
    elif image_id is not None:
        stored = _stored_vectors([image_id], model_version.pk)
        if image_id not in stored:
            raise FeedbackError("image", f"image #{image_id} has no stored embedding yet")
        base = stored[image_id]
    vector = refined_query(base, positive=positive, negative=negative, model_version_id=model_version.pk)
    extra = 1 if image_id is not None else 0
    answer = engine.search_by_vector(
        vector, model_version_id=model_version.pk, k=min(k + extra, MAX_K), label=label, filters=filters or NO_FILTER
    )
    answer.hits = [hit for hit in answer.hits if hit.image.pk != image_id][:k]
    return answer
