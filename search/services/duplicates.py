"""Near-duplicates: re-encoded, resized, slightly cropped, brightened or recoloured copies of one image.

Exact copies are stored once (content hash); near-copies are found here and reviewed by a curator.

The rule, chosen on measured data (bench/bench_duplicates.py, docs/PERFORMANCE.md "Near-duplicates"):
two images are near-duplicates when their pixel fingerprints (:func:`search.imaging.pixel_fingerprint`,
an 8×8 greyscale layout, zero-mean and unit-length) correlate at least ``MIN_CORRELATION`` **and** their
embeddings' cosine is at least ``MIN_COSINE``. The embedding cannot decide alone: the shipped model maps
distinct rocks of one type to cosines of 0.98–1.0 (the median distinct nearest neighbour is at 1.000),
so at any cosine threshold most proposed pairs are merely the same rock type (precision ≤ 0.18). The
fingerprint separates copies from look-alikes; the cosine floor only vetoes pixel coincidences between
images the model sees as different rocks, low enough to keep recoloured copies (whose cosine can fall
to ~0.3 because colour matters to the model).

A duplicates job (``Job.Kind.DUPLICATES``) finds every pair above the fingerprint threshold among the
live index's images, exactly (all pairs: N²/2 inner products of 64 floats as blocked matrix products,
seconds at 30k images, an hour or more at a million), keeps those above the cosine
floor and not already decided, and groups them into connected components. Each component is an open
:class:`~search.models.DuplicateGroup`; the job replaces the open groups of the previous run (a group
with the same members keeps its id). A curator resolves a group (:func:`group_resolve`): keep one
(delete the others), keep all (not duplicates), or delete the selected ones. Pairs of images kept
together are recorded as :class:`~search.models.DistinctPair` and never proposed again.

Uploads are checked at once (:func:`upload_near_duplicates`) against every stored fingerprint, held in
memory per process and refreshed incrementally; the in-memory copy only proposes candidates, the
database rows decide.
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from search import embedder, live_index
from search.imaging import decode_image
from search.models import DistinctPair, DuplicateGroup, DuplicateMember, Embedding, Image, Job
from search.services.fingerprints import (
    FINGERPRINT_DIM,
    fingerprint_table,
    fingerprints_fill,
    fingerprints_of,
    fingerprints_save,
)
from search.services.indexing import stored_vectors
from search.services.jobs import JobProgress, job_create

logger = logging.getLogger(__name__)

MIN_CORRELATION = 0.9
"""Pixel-fingerprint correlation at or above which two images may be near-duplicates."""
MIN_COSINE = 0.2
"""Embedding cosine below which two images are never near-duplicates, whatever their pixels."""
_PAIR_BLOCK = 1024  # rows per matrix product in close_pairs: 1024 × N scores (115 MB at 28k images)
_FLOAT16_SLACK = 0.01  # the in-memory fingerprints are float16: propose a little below, decide exactly


class UnknownGroup(LookupError):
    """No open duplicate group has that id (never existed, already resolved, or replaced by a newer job)."""


class ReviewRejected(ValueError):
    """A review decision that cannot apply to the group; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# -- the rule -----------------------------------------------------------------------------------------


def close_pairs(fingerprints: np.ndarray, min_correlation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of rows (i < j) whose fingerprints correlate ≥ ``min_correlation``: (i, j, correlation).

    Exact: blocks of rows times the rows after them, one matrix product each (BLAS), so the work is half
    the N² inner products and the memory one block's scores. (FAISS's flat range search was ~15× slower
    here: it does not batch inner products into matrix products.)
    """
    data = np.ascontiguousarray(fingerprints, dtype=np.float32)
    firsts, seconds, scores = [], [], []
    for start in range(0, len(data), _PAIR_BLOCK):
        block = data[start : start + _PAIR_BLOCK] @ data[start:].T
        rows, cols = np.nonzero(block >= min_correlation)
        later = cols > rows  # the block's own diagonal and below are pairs seen already (or an image with itself)
        rows, cols = rows[later], cols[later]
        firsts.append(rows + start)
        seconds.append(cols + start)
        scores.append(block[rows, cols])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (
        np.concatenate(firsts).astype(np.int64),
        np.concatenate(seconds).astype(np.int64),
        np.concatenate(scores).astype(np.float32),
    )


def connected_groups(pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of the graph the pairs draw (union-find), each sorted, largest first."""
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    components: dict[int, list[int]] = {}
    for node in parent:
        components.setdefault(root(node), []).append(node)
    return sorted((sorted(c) for c in components.values()), key=lambda c: (-len(c), c[0]))


def decided_pairs() -> set[tuple[int, int]]:
    """Pairs a curator kept as not duplicates (first id < second id)."""
    return set(DistinctPair.objects.values_list("first_id", "second_id"))


# -- the job ------------------------------------------------------------------------------------------


def duplicates_request(*, created_by=None, min_correlation: float | None = None, min_cosine: float | None = None):
    """Start a duplicates job, or join the one already pending or running."""
    with transaction.atomic():
        open_job = (
            Job.objects.select_for_update()
            .filter(kind=Job.Kind.DUPLICATES, status__in=[Job.Status.PENDING, Job.Status.RUNNING])
            .first()
        )
        if open_job:
            return open_job
        params = {
            "min_correlation": MIN_CORRELATION if min_correlation is None else float(min_correlation),
            "min_cosine": MIN_COSINE if min_cosine is None else float(min_cosine),
        }
        return job_create(kind=Job.Kind.DUPLICATES, params=params, created_by=created_by)


def duplicates_find(job: Job, progress: JobProgress) -> dict:
    """Handle a DUPLICATES job: group the live index's images into near-duplicate groups (see the module doc)."""
    min_correlation = float(job.params.get("min_correlation", MIN_CORRELATION))
    min_cosine = float(job.params.get("min_cosine", MIN_COSINE))
    model_version = live_index.current().version.model_version
    ids, vectors = stored_vectors(model_version)
    progress.set_total(len(ids))
    fingerprints_fill(ids, progress)
    by_id = fingerprints_of(None)  # all of them: the index holds nearly every image
    usable = np.array([int(i) in by_id for i in ids], dtype=bool)
    ids, vectors = ids[usable], vectors[usable]
    fingerprints = np.stack([by_id[int(i)] for i in ids]) if len(ids) else np.zeros((0, FINGERPRINT_DIM), np.float32)
    first, second, correlation = close_pairs(fingerprints, min_correlation)
    cosine = np.einsum("ij,ij->i", vectors[first], vectors[second]) if len(first) else np.zeros(0, np.float32)
    decided = decided_pairs()
    scores: dict[tuple[int, int], tuple[float, float]] = {}
    for i, j, corr, cos in zip(first, second, correlation, cosine, strict=True):
        pair = (min(int(ids[i]), int(ids[j])), max(int(ids[i]), int(ids[j])))
        if cos >= min_cosine and pair not in decided:
            scores[pair] = (float(corr), float(cos))
    groups = connected_groups(list(scores))
    kept, created = _replace_open_groups(groups, scores, job)
    progress.advance(0, force=True)
    return {
        "groups": len(groups),
        "images": sum(len(g) for g in groups),
        "pairs": len(scores),
        "new_groups": created,
        "unchanged_groups": kept,
        "min_correlation": min_correlation,
        "min_cosine": min_cosine,
        "note": f"{len(groups)} group(s) of near-duplicates to review at /duplicates/",
    }


def _replace_open_groups(groups: list[list[int]], scores: dict, job: Job) -> tuple[int, int]:
    """Make the open groups exactly ``groups``: same members keep their group, the rest are replaced."""
    best: dict[int, tuple[float, float]] = {}
    for (a, b), score in scores.items():
        for image_id in (a, b):
            if image_id not in best or score > best[image_id]:
                best[image_id] = score
    with transaction.atomic():
        existing = {}
        for group in DuplicateGroup.objects.filter(status=DuplicateGroup.Status.OPEN).prefetch_related("members"):
            existing[frozenset(m.image_id for m in group.members.all())] = group
        wanted = {frozenset(g): g for g in groups}
        stale = [group.pk for members, group in existing.items() if members not in wanted]
        DuplicateGroup.objects.filter(pk__in=stale).delete()
        created = 0
        for members, group_ids in wanted.items():
            if members in existing:
                continue
            group = DuplicateGroup.objects.create(job=job)
            DuplicateMember.objects.bulk_create(
                DuplicateMember(group=group, image_id=i, correlation=best[i][0], cosine=best[i][1]) for i in group_ids
            )
            created += 1
    return len(wanted) - created, created


# -- uploads ------------------------------------------------------------------------------------------


def upload_near_duplicates(image: Image, data: bytes) -> list[int]:
    """Ids of the collection's near-duplicates of an uploaded image (its bytes), sorted.

    Compared with every stored fingerprint, then with the embeddings under the live index's model where
    both are embedded (an image not embedded yet, or no index at all, is judged on its pixels alone).
    Pairs a curator kept as distinct are left out.
    """
    picture = None
    query = fingerprints_of([image.pk]).get(image.pk)
    if query is None:  # an image stored before fingerprints existed, uploaded again
        picture = _decoded(data)
        fingerprints_save([(image.pk, picture)])
        query = fingerprints_of([image.pk])[image.pk]
    ids, vectors = fingerprint_table()
    proposed = ids[_correlations(vectors, query) >= MIN_CORRELATION - _FLOAT16_SLACK]
    proposed = [int(i) for i in proposed if int(i) != image.pk]
    decided = {a if b == image.pk else b for a, b in _decided_with(image.pk)}
    close = [
        i
        for i, vector in fingerprints_of(proposed).items()
        if float(vector @ query) >= MIN_CORRELATION and i not in decided
    ]
    if not close:
        return []
    return sorted(_above_cosine_floor(picture or _decoded(data), close))


MAX_STORED_CHECK = 500
"""Images checked at most by :func:`stored_near_duplicates` (a bulk upload's report; the job does the rest)."""


def stored_near_duplicates(image_ids: list[int]) -> dict[int, list[int]]:
    """For just-stored images (the admin's bulk upload): image id → its near-duplicates among the others.

    The same rule as uploads, on the stored fingerprints; the cosine floor applies where both images
    are embedded under the live model (new images usually are not yet). At most MAX_STORED_CHECK images.
    """
    fingerprints = fingerprints_of(list(image_ids[:MAX_STORED_CHECK]))
    if not fingerprints:
        return {}
    ids, vectors = fingerprint_table()
    found: dict[int, list[int]] = {}
    for image_id, query in fingerprints.items():
        proposed = [int(i) for i in ids[_correlations(vectors, query) >= MIN_CORRELATION - _FLOAT16_SLACK]]
        exact = fingerprints_of([i for i in proposed if i != image_id])
        close = sorted(i for i, vector in exact.items() if float(vector @ query) >= MIN_CORRELATION)
        close = _stored_above_cosine_floor(image_id, close)
        if close:
            found[image_id] = close
    return found


def _stored_above_cosine_floor(image_id: int, candidate_ids: list[int]) -> list[int]:
    if not candidate_ids:
        return []
    try:
        model_version = live_index.current().version.model_version
    except live_index.IndexUnavailable:
        return candidate_ids
    rows = Embedding.objects.filter(model_version=model_version, image_id__in=[image_id, *candidate_ids])
    vectors = {i: np.frombuffer(bytes(v), dtype="<f4") for i, v in rows.values_list("image_id", "vector")}
    if image_id not in vectors:
        return candidate_ids
    query = vectors[image_id]
    return [i for i in candidate_ids if i not in vectors or float(vectors[i] @ query) >= MIN_COSINE]


def _correlations(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float16 rows · query, in float32 a chunk at a time (no float32 copy of the whole table)."""
    out = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), 65536):
        out[start : start + 65536] = vectors[start : start + 65536].astype(np.float32) @ query
    return out


def _decoded(data: bytes):
    return decode_image(data, max_pixels=settings.GEOSIM_MAX_PIXELS).image


def _decided_with(image_id: int) -> set[tuple[int, int]]:
    rows = DistinctPair.objects.filter(Q(first_id=image_id) | Q(second_id=image_id))
    return set(rows.values_list("first_id", "second_id"))


def _above_cosine_floor(picture, candidate_ids: list[int]) -> list[int]:
    try:
        model_version = live_index.current().version.model_version
    except live_index.IndexUnavailable:
        return candidate_ids
    query = embedder.embed_images(model_version, [picture])[0]
    stored = Embedding.objects.filter(model_version=model_version, image_id__in=candidate_ids)
    cosines = {
        i: float(np.frombuffer(bytes(v), dtype="<f4") @ query) for i, v in stored.values_list("image_id", "vector")
    }
    return [i for i in candidate_ids if cosines.get(i, 1.0) >= MIN_COSINE]


# -- review -------------------------------------------------------------------------------------------

ACTIONS = ("keep_one", "keep_all", "delete_selected")


def open_groups() -> QuerySet[DuplicateGroup]:
    """Open groups that still have two or more images, oldest first, members and their images prefetched."""
    return (
        DuplicateGroup.objects.filter(status=DuplicateGroup.Status.OPEN)
        .annotate(size=Count("members"))
        .filter(size__gte=2)
        .prefetch_related("members__image")
        .order_by("id")
    )


def group_resolve(group_id: int, *, action: str, keep: int | None = None, delete=(), user=None) -> DuplicateGroup:
    """Apply a curator's decision to an open group; UnknownGroup or ReviewRejected leave everything as it was.

    - ``keep_one``: keep ``keep``, delete the group's other images;
    - ``keep_all``: not duplicates, delete nothing;
    - ``delete_selected``: delete the images in ``delete`` (not all of them).
    The images kept together are recorded as distinct pairs, so no later job proposes them again.
    """
    if action not in ACTIONS:
        raise ReviewRejected("action", f"Unknown action {action!r}: choose one of {', '.join(ACTIONS)}.")
    with transaction.atomic():
        group = DuplicateGroup.objects.select_for_update().filter(pk=group_id, status=DuplicateGroup.Status.OPEN)
        group = group.first()
        if group is None:
            raise UnknownGroup(
                f"No open duplicate group #{group_id}: it was resolved already, or a newer job replaced it."
            )
        members = list(group.members.values_list("image_id", flat=True))
        doomed = _doomed(action, members, keep=keep, delete=delete)
        survivors = [i for i in members if i not in doomed]
        DistinctPair.objects.bulk_create(
            [
                DistinctPair(first_id=a, second_id=b, decided_by=user)
                for n, a in enumerate(survivors)
                for b in survivors[n + 1 :]
            ],
            ignore_conflicts=True,
        )
        group.status = DuplicateGroup.Status.RESOLVED
        group.resolution = action
        group.resolved_at = timezone.now()
        group.resolved_by = user
        group.save(update_fields=["status", "resolution", "resolved_at", "resolved_by"])
        for image in Image.objects.filter(pk__in=doomed):
            image.delete()  # one by one: the deletion signal removes files and queues the index update
    return group


def _doomed(action: str, members: list[int], *, keep, delete) -> set[int]:
    if action == "keep_all":
        return set()
    if action == "keep_one":
        if keep is None or keep not in members:
            raise ReviewRejected("keep", f"Choose the image to keep among the group's images ({_ids(members)}).")
        return set(members) - {keep}
    chosen = set(delete)
    if not chosen:
        raise ReviewRejected("delete", "Select the images to delete.")
    if not chosen <= set(members):
        raise ReviewRejected("delete", f"Only the group's images can be deleted ({_ids(members)}).")
    if chosen == set(members):
        raise ReviewRejected("delete", "Keep at least one image of the group (or delete them in the admin).")
    return chosen


def _ids(ids: list[int]) -> str:
    return ", ".join(f"#{i}" for i in ids)
