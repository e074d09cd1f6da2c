"""Similarity search: a query image (bytes or an indexed image) → the K most similar images.

One code path serves the web page, the REST API and ``manage.py search_similar``. The query is
embedded with the model the live index was built with (so a model change can never mix vector
spaces), searched with one FAISS thread (fastest for single queries). Each result's cosine (``score``)
is turned into ``similarity``, the probability that it shows the query's rock type, by the model's own
calibration (``training.calibration``); the rock type is predicted by a similarity-weighted vote of the
nearest neighbours.

A query may be a ``region`` of the image (:mod:`search.regions`). A result larger than the model's
input gets a ``match_box``: the crop of it that best matches the query (``Embedder.locate``), computed
for the K results only, never for the whole index.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from search import embedder, live_index, selectors
from search.filters import NO_FILTER, ImageFilter
from search.imaging import ImageRejected, decode_image
from search.limits import k_error
from search.live_index import IndexUnavailable  # noqa: F401 — re-exported for callers
from search.models import Embedding, Image
from search.regions import InvalidRegion, Region, check_region  # noqa: F401 — InvalidRegion re-exported
from vectorindex import set_search_threads

logger = logging.getLogger(__name__)

VOTE_NEIGHBOURS = 10


class UnknownImage(LookupError):
    """The image id does not exist."""


class QueryOutdated(ValueError):
    """A saved query's embedding belongs to a model that no longer serves the index."""


class UnknownLabel(ValueError):
    """No image of the collection carries that rock type."""


class ImageUnreadable(RuntimeError):
    """A collection image has no embedding yet and its stored file cannot be read or decoded."""


@dataclass(frozen=True)
class SearchHit:
    image: Image
    score: float
    """Cosine of the query and result embeddings (the ranking)."""
    similarity: float
    """Calibrated probability, in [0, 1], that the result shows the query's rock type."""
    match_box: tuple[int, int, int, int] | None = None
    """For a result larger than the model's input: where in it the query matches best (x, y, w, h)."""


@dataclass
class SearchAnswer:
    hits: list[SearchHit]
    predicted_label: str | None
    vote: dict[str, float]  # rock type → share of the neighbours' similarity
    model_version: str
    index_version: int
    took_ms: float = 0.0
    query_image: Image | None = field(default=None)
    query_vector: np.ndarray | None = field(default=None, repr=False)  # to search again (K, rock type)
    model_version_id: int | None = None
    vote_size: int = 0  # how many nearest images (any rock type, whatever the filter) the vote counts


def search_by_bytes(
    data: bytes,
    *,
    k: int = 5,
    label: str | None = None,
    filters: ImageFilter = NO_FILTER,
    region: Region | None = None,
) -> SearchAnswer:
    """Search with an uploaded image, or a region of it.

    Raises ImageRejected for bad bytes, InvalidRegion for a region outside the image, IndexUnavailable,
    UnknownLabel.
    """
    started = time.perf_counter()
    picture = decode_image(data, max_pixels=settings.GEOSIM_MAX_PIXELS, max_bytes=settings.GEOSIM_MAX_UPLOAD_BYTES)
    loaded = live_index.current()
    vector = _query_vector(loaded.version.model_version, picture.image, region)
    return _answer(loaded, vector, k=k, label=label, filters=filters, exclude=None, started=started)


def search_by_vector(
    vector: np.ndarray,
    *,
    model_version_id: int,
    k: int = 5,
    label: str | None = None,
    filters: ImageFilter = NO_FILTER,
):
    """Search again with a query's embedding (see search.query_tokens); QueryOutdated if the model changed."""
    started = time.perf_counter()
    loaded = live_index.current()
    if loaded.version.model_version_id != model_version_id:
        raise QueryOutdated("The search index now uses another model: choose the file again to search with it.")
    return _answer(loaded, vector.reshape(1, -1), k=k, label=label, filters=filters, exclude=None, started=started)


def search_by_image(
    image_id: int,
    *,
    k: int = 5,
    label: str | None = None,
    filters: ImageFilter = NO_FILTER,
    region: Region | None = None,
    match_boxes: bool = True,
) -> SearchAnswer:
    """Search with an image of the collection, or a region of it; the image itself is excluded from the results.

    ``match_boxes=False`` skips locating the match in large results (the image page's "most similar",
    which draws no boxes: locating costs about one embedding per result).
    """
    started = time.perf_counter()
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        raise UnknownImage(f"No image with id {image_id}.")
    loaded = live_index.current()
    model_version = loaded.version.model_version
    stored = Embedding.objects.filter(image=image, model_version=model_version).values_list("vector", flat=True)
    if stored and region is None:
        vector = np.frombuffer(bytes(stored[0]), dtype="<f4").reshape(1, -1).astype(np.float32)
    else:  # a region, or not embedded yet (its job is still queued): embed it now
        vector = _query_vector(model_version, _stored_picture(image), region)
    answer = _answer(
        loaded, vector, k=k, label=label, filters=filters, exclude=image.pk, started=started, match_boxes=match_boxes
    )
    answer.query_image = image
    return answer


def _query_vector(model_version, picture, region: Region | None) -> np.ndarray:
    """The query's 1×D vector: the whole picture, or the region of it (InvalidRegion when not inside it)."""
    if region is None:
        return embedder.embed_images(model_version, [picture])
    check_region(picture, region)
    return embedder.embed_region(model_version, picture, region.as_tuple())


def _stored_picture(image: Image):
    """The decoded file of a collection image, or ImageUnreadable (a server-side problem, logged)."""
    try:
        with image.file.open("rb") as handle:
            return decode_image(handle.read(), max_pixels=settings.GEOSIM_MAX_PIXELS).image
    except (OSError, ImageRejected) as exc:
        logger.warning("Image #%s: stored file %s cannot be used: %s", image.pk, image.file.name, exc)
        raise ImageUnreadable(
            f"Image #{image.pk} cannot be searched with yet: it has no embedding and its stored file cannot be read."
        ) from None


def _answer(
    loaded,
    vector: np.ndarray,
    *,
    k: int,
    label: str | None,
    filters: ImageFilter,
    exclude: int | None,
    started,
    match_boxes: bool = True,
):
    if k_error(k):
        raise ValueError(k_error(k))
    exclude_ids = None if exclude is None else np.array([exclude], dtype=np.int64)
    if label:
        filters = ImageFilter(**{**filters.as_dict(), "label": label})
    allowed = None
    if filters.only_label:
        allowed = loaded.ids_with_label(filters.label)
        if not len(allowed):
            raise UnknownLabel(f"No image of the collection has the rock type {filters.label!r}.")
    elif filters:
        allowed = filters.matching_ids()  # exact among them, however few: see VectorIndex.search
    _use_search_threads()
    neighbours = max(k, VOTE_NEIGHBOURS)
    scores, ids = loaded.index.search(vector, neighbours, exclude_ids=exclude_ids)
    if allowed is not None:
        hit_scores, hit_ids = loaded.index.search(vector, k, allowed_ids=allowed, exclude_ids=exclude_ids)
    else:
        hit_scores, hit_ids = scores[:, :k], ids[:, :k]
    wanted = {int(i) for i in np.concatenate([ids[0], hit_ids[0]]) if i >= 0}
    images = selectors.images_for_answer(wanted)
    calibration = embedder.calibration(loaded.version.model_version)
    vote = _vote(calibration.similarity(scores[0]), ids[0], images)
    hits = [
        SearchHit(image=images[int(i)], score=float(s), similarity=float(p))
        for s, p, i in zip(hit_scores[0], calibration.similarity(hit_scores[0]), hit_ids[0], strict=True)
        if i >= 0 and int(i) in images  # an image deleted since the index version was built is skipped
    ]
    if match_boxes:
        hits = _with_match_boxes(loaded.version.model_version, hits, vector[0])
    return SearchAnswer(
        hits=hits,
        predicted_label=max(vote, key=vote.get) if vote else None,
        vote=vote,
        model_version=loaded.version.model_version.name,
        index_version=loaded.version.version,
        took_ms=(time.perf_counter() - started) * 1000,
        query_vector=vector[0],
        model_version_id=loaded.version.model_version_id,
        vote_size=int((ids[0] >= 0).sum()),
    )


def _with_match_boxes(model_version, hits: list[SearchHit], query: np.ndarray) -> list[SearchHit]:
    """Hits, those larger than the model's input with the box of their crop that best matches the query."""
    model = embedder.get_embedder(model_version)
    out = []
    for hit in hits:
        box = None
        if max(hit.image.width, hit.image.height) > model.input_size:
            box = _locate(model, hit.image, query)
        out.append(dataclasses.replace(hit, match_box=box) if box else hit)
    return out


def _locate(model, image: Image, query: np.ndarray) -> tuple[int, int, int, int] | None:
    try:
        with image.file.open("rb") as handle:
            picture = decode_image(handle.read(), max_pixels=settings.GEOSIM_MAX_PIXELS).image
    except Exception:  # a file lost from disk: the hit is still an answer, only without its box
        logger.warning("Image %s could not be read to locate the match.", image.pk, exc_info=True)
        return None
    found = model.locate(picture, query)
    if found is None:
        return None
    (x, y, w, h), _cosine = found
    return int(x), int(y), int(w), int(h)


_search_threads = threading.local()


def _use_search_threads() -> None:
    # Once per OS thread, not per request and not once per process: OpenMP keeps the thread count per
    # calling thread, so a second server thread (gunicorn --threads) that never set it searched on every
    # core and left an OpenMP team spin-waiting after each query, burning CPU the other requests needed.
    # One thread is fastest for single queries (see docs/PERFORMANCE.md, "FAISS index").
    if getattr(_search_threads, "count", None) != settings.GEOSIM_SEARCH_THREADS:
        set_search_threads(settings.GEOSIM_SEARCH_THREADS)
        _search_threads.count = settings.GEOSIM_SEARCH_THREADS


def _vote(similarities: np.ndarray, ids: np.ndarray, images: dict[int, Image]) -> dict[str, float]:
    """Similarity-weighted k-NN vote over labelled neighbours: rock type → share of the weight.

    Weighting by the calibrated probability rather than the cosine lets a neighbour that is probably of
    another type count for little, where cosines of 0.97 and 0.999 would weigh almost the same.
    """
    weights: dict[str, float] = defaultdict(float)
    for similarity, image_id in zip(similarities, ids, strict=True):
        image = images.get(int(image_id))
        if image_id >= 0 and image is not None and image.label:
            weights[image.label] += float(similarity)
    total = sum(weights.values())
    if total <= 0:
        return {}
    ranked = sorted(weights.items(), key=lambda kv: -kv[1])
    return {label: round(weight / total, 4) for label, weight in ranked if weight > 0}


def answer_payload(answer: SearchAnswer, *, absolute_url=lambda url: url) -> dict:
    """The JSON shape shared by POST /api/v1/search/, the similar-images endpoint and search_similar --json."""
    return {
        "results": [_hit_payload(hit, absolute_url) for hit in answer.hits],
        "predicted_label": answer.predicted_label,
        "vote": answer.vote,
        "model_version": answer.model_version,
        "index_version": answer.index_version,
        "took_ms": round(answer.took_ms, 3),
    }


def _hit_payload(hit: SearchHit, absolute_url) -> dict:
    payload = {
        "id": hit.image.pk,
        "score": round(hit.score, 6),
        "similarity": round(hit.similarity, 4),
        "label": hit.image.label,
        "image_url": absolute_url(hit.image.file.url),
    }
    if hit.match_box is not None:
        payload["match_box"] = list(hit.match_box)
    return payload
