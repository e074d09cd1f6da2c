"""Embeddings and the live FAISS index: embed what is missing, add/remove as segments, compact, rebuild and swap.

The database is the source of truth: every image's vector is stored per model version
(:class:`~search.models.Embedding`), and the live index is a saved base plus segments
(:mod:`vectorindex.segments`) and an active :class:`~search.models.IndexVersion` row. Every change
to the index happens under one lock (a Postgres advisory lock; SQLite's write lock in the embedded
mode). Adding new images or removing deleted ones writes one small segment file beside the base and
then counts it on the active row (``segments``) in the same transaction: that row is the commit
point, so a segment a crash left unrecorded is never read, and the next one overwrites it. When the
segments grow past their limits a COMPACT_INDEX job folds them into a new base version, built
outside the lock and swapped in under it; a full rebuild writes a new base from the stored
embeddings. Processes notice both through :mod:`search.live_index` (reading only new segment files
for the former) and never see a half-written file; searches keep answering meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from search import embedder, live_index, object_sync, selectors
from search.imaging import decode_image
from search.models import Embedding, Image, IndexVersion, Job, ModelVersion
from search.services.jobs import JobNeedsRebuild, JobProgress, job_create, jobs_retry_after_rebuild
from search.services.model_versions import model_version_ensure_active, model_version_make_active
from vectorindex import (
    IndexLoadError,
    Segment,
    SegmentedIndex,
    VectorIndex,
    build_index,
    compaction_due,
    read_segments,
    save_segment,
    search_threads,
)

logger = logging.getLogger(__name__)

_INDEX_LOCK_KEY = 0x6E05_1D01  # arbitrary, constant: the advisory lock guarding index changes
_REINDEX_KINDS = (Job.Kind.REINDEX, Job.Kind.ACTIVATE_MODEL)
_INDEX_WRITING_KINDS = (*_REINDEX_KINDS, Job.Kind.COMPACT_INDEX)
_OPEN = (Job.Status.PENDING, Job.Status.RUNNING)


@contextlib.contextmanager
def index_lock() -> Iterator[None]:
    """A transaction holding the cluster-wide index lock (released at commit or rollback)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_INDEX_LOCK_KEY])
        yield


def index_model_version() -> ModelVersion:
    """The model whose vectors the live index holds; the active model when there is no index yet."""
    active = selectors.active_index_version()
    return active.model_version if active else model_version_ensure_active()


# -- embeddings ----------------------------------------------------------------------------------


def embed_missing(
    model_version: ModelVersion, *, image_ids: list[int] | None = None, on_batch: Callable[[int], None] | None = None
) -> int:
    """Embed the images (all, or ``image_ids``) that have no vector under ``model_version``; return how many."""
    pending = Image.objects.exclude(embeddings__model_version=model_version)
    if image_ids is not None:
        pending = pending.filter(pk__in=image_ids)
    ids = list(pending.order_by("pk").values_list("pk", flat=True))
    done = 0
    for start in range(0, len(ids), settings.GEOSIM_BATCH_SIZE):
        chunk = ids[start : start + settings.GEOSIM_BATCH_SIZE]
        loaded_ids, pictures = [], []
        for image in Image.objects.filter(pk__in=chunk).only("pk", "file").order_by("pk"):
            try:
                with image.file.open("rb") as handle:
                    pictures.append(decode_image(handle.read(), max_pixels=settings.GEOSIM_MAX_PIXELS).image)
                loaded_ids.append(image.pk)
            except Exception as exc:  # a file lost from disk must not stop the other images
                logger.warning("Image %s cannot be embedded: %s", image.pk, exc)
        if pictures:
            vectors = embedder.embed_images(model_version, pictures)
            Embedding.objects.bulk_create(
                [
                    Embedding(image_id=pk, model_version=model_version, vector=vector.astype("<f4").tobytes())
                    for pk, vector in zip(loaded_ids, vectors, strict=True)
                ],
                ignore_conflicts=True,
            )
        done += len(loaded_ids)
        if on_batch:
            on_batch(len(chunk))
    return done


def stored_vectors(model_version: ModelVersion, *, image_ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64, vectors float32 N×D) of the stored embeddings of a model version."""
    rows = Embedding.objects.filter(model_version=model_version)
    if image_ids is not None:
        rows = rows.filter(image_id__in=image_ids)
    pairs = list(rows.order_by("image_id").values_list("image_id", "vector"))
    ids = np.fromiter((pk for pk, _ in pairs), dtype=np.int64, count=len(pairs))
    data = b"".join(bytes(vector) for _, vector in pairs)
    vectors = np.frombuffer(data, dtype="<f4").reshape(len(pairs), model_version.embedding_dim).astype(np.float32)
    return ids, vectors


# -- incremental changes ---------------------------------------------------------------------------


def index_add_images(image_ids: list[int]) -> IndexVersion:
    """Make images searchable now: save their stored vectors as a segment of the live index version.

    Raises JobNeedsRebuild when the live version's files are damaged or gone: the rebuild it asks for
    includes these images, and runs the job again once it is live.
    """
    with _rebuild_if_damaged(), index_lock():
        active = selectors.active_index_version()
        if active is None:
            return _build_and_activate(index_model_version())
        # Normally a no-op: the job embedded them already. But if a model switch went live after that,
        # the images need vectors of the live index's model too, or they would silently stay unindexed.
        embed_missing(active.model_version, image_ids=image_ids)
        ids, vectors = stored_vectors(active.model_version, image_ids=image_ids)
        if not len(ids):
            return active
        return _save_segment(active, Segment.adding(ids, vectors))


def index_remove_images(image_ids: list[int]) -> IndexVersion | None:
    """Take deleted images out of the live index (a segment); None when there is no index.

    Raises JobNeedsRebuild when the live version's files are damaged or gone (see index_add_images).
    """
    with _rebuild_if_damaged(), index_lock():
        active = selectors.active_index_version()
        if active is None:
            return None
        index = live_index.index_for_update(active)
        present = [image_id for image_id in image_ids if index.contains(image_id)]
        if not present:
            return active
        return _save_segment(active, Segment.removing(present, dim=index.dim), index=index)


def _save_segment(active: IndexVersion, segment: Segment, *, index: SegmentedIndex | None = None) -> IndexVersion:
    """Save a segment after the active version's and count it on its row (the caller holds the index lock).

    This process serves the new segment once the transaction commits; others read just its file.
    """
    index = index or live_index.index_for_update(active)
    directory = object_sync.index_version_local(active.version, active.path)
    updated = save_segment(directory, index, segment)
    # With object storage the new segment and manifest go to the bucket before the row counts them.
    object_sync.index_version_publish(active.version, directory)
    IndexVersion.objects.filter(pk=active.pk).update(segments=updated.segment_count, vector_count=updated.ntotal)
    active.segments, active.vector_count = updated.segment_count, updated.ntotal
    transaction.on_commit(lambda: live_index.install(active, updated))
    if compaction_due(updated, max_segments=settings.GEOSIM_INDEX_MAX_SEGMENTS):
        index_compaction_request()
    return active


@contextlib.contextmanager
def _rebuild_if_damaged() -> Iterator[None]:
    # Outside the index lock's transaction: the rebuild job must not be rolled back with the change.
    try:
        yield
    except IndexLoadError as exc:
        raise JobNeedsRebuild(
            f"The live index's files are unusable, so a rebuild was requested; this job runs again once it is "
            f"live. {exc}",
            request_rebuild=reindex_request,
        ) from exc


# -- full rebuilds -----------------------------------------------------------------------------------


def reindex_request(*, created_by=None, model_version: ModelVersion | None = None) -> Job:
    """Ask for a full rebuild (optionally onto another model); joins a pending or running one for the same model."""
    target = model_version or model_version_ensure_active()
    kind = Job.Kind.ACTIVATE_MODEL if model_version and not model_version.is_active else Job.Kind.REINDEX
    with index_lock():
        for job in Job.objects.filter(kind__in=_REINDEX_KINDS, status__in=_OPEN):
            if job.params.get("model_version_id") == target.pk:
                return job
        return job_create(kind=kind, params={"model_version_id": target.pk}, created_by=created_by)


def index_compaction_request() -> Job:
    """Ask for the live version's segments to be folded into a new base; joins any open rebuild or compaction."""
    with index_lock():
        job = Job.objects.filter(kind__in=_INDEX_WRITING_KINDS, status__in=_OPEN).order_by("pk").first()
        return job or job_create(kind=Job.Kind.COMPACT_INDEX)


def model_version_activate(version: ModelVersion, *, created_by=None) -> Job:
    """Start switching searches to another model: a job re-embeds everything and builds its index.

    The current model and index keep answering until the new index is complete; then both switch in
    one transaction, so no search ever embeds a query with one model and searches another's vectors.
    """
    return reindex_request(created_by=created_by, model_version=version)


def index_rebuild(job: Job, progress: JobProgress) -> dict:
    """Handle a REINDEX / ACTIVATE_MODEL job: embed what is missing, build a new index, swap it in."""
    target = ModelVersion.objects.get(pk=job.params["model_version_id"])
    missing = Image.objects.exclude(embeddings__model_version=target).count()
    total_images = Image.objects.count()
    progress.set_total(total_images)
    progress.advance(total_images - missing, force=True)
    embedded = embed_missing(target, on_batch=progress.advance)

    ids, vectors = stored_vectors(target)
    with search_threads(settings.GEOSIM_BUILD_THREADS):
        index = build_index(ids, vectors, exact_limit=settings.GEOSIM_EXACT_INDEX_LIMIT)

    with index_lock():
        # Images added or deleted while the index was being built.
        late = embed_missing(target)
        known = np.fromiter(Image.objects.values_list("pk", flat=True), dtype=np.int64)
        late_ids = np.setdiff1d(known, index.ids())
        if len(late_ids):
            index.add(*stored_vectors(target, image_ids=late_ids.tolist()))
        gone = np.setdiff1d(index.ids(), known)
        if len(gone):
            index.remove(gone)
        version = _save_and_activate(index, target)
        if not target.is_active:
            model_version_make_active(target)
    progress.advance(0, force=True)
    jobs_retry_after_rebuild()  # jobs that failed on a damaged index
    return {
        "index_version": version.version,
        "model_version": target.name,
        "vectors": version.vector_count,
        "kind": version.kind,
        "recall_at_10": version.recall_at_10,
        "embedded": embedded + late,
    }


def index_compact(job: Job, progress: JobProgress) -> dict:
    """Handle a COMPACT_INDEX job: fold the live version's segments into a new base version.

    The merge runs outside the index lock, so uploads keep adding segments meanwhile; under the lock
    the segments saved since are applied to the new base too, then it is saved and activated. A crash
    before that leaves base + segments serving (the half-written directory is never activated).
    """
    snapshot = selectors.active_index_version()
    if snapshot is None or snapshot.segments == 0:
        return {"compacted": False, "reason": "no segments to compact"}
    progress.set_total(snapshot.segments)
    with _rebuild_if_damaged():
        index = live_index.index_for_update(snapshot)
        with search_threads(settings.GEOSIM_BUILD_THREADS):
            base = index.compacted()
        with index_lock():
            active = selectors.active_index_version()
            if active is None or active.pk != snapshot.pk:
                return {"compacted": False, "reason": "a rebuild replaced the index meanwhile"}
            for segment in read_segments(
                object_sync.index_version_local(active.version, active.path),
                start=index.segment_count,
                stop=active.segments,
                dim=index.dim,
            ):  # saved while the merge ran: few, and cheap to apply
                segment.apply_to(base)
            version = _save_and_activate(base, active.model_version)
    progress.advance(snapshot.segments, force=True)
    return {
        "index_version": version.version,
        "compacted_segments": active.segments,
        "vectors": version.vector_count,
        "kind": version.kind,
    }


# -- internals -----------------------------------------------------------------------------------------


def _build_and_activate(model_version: ModelVersion) -> IndexVersion:
    ids, vectors = stored_vectors(model_version)
    index = build_index(ids, vectors, exact_limit=settings.GEOSIM_EXACT_INDEX_LIMIT)
    return _save_and_activate(index, model_version)


def _save_and_activate(index: VectorIndex, model_version: ModelVersion) -> IndexVersion:
    """Write a new version directory, then make it the active row (the caller holds the index lock)."""
    last = IndexVersion.objects.order_by("-version").values_list("version", flat=True).first() or 0
    number = last + 1
    directory = object_sync.index_directory(number)
    try:
        index.save(directory, index_version=number, model_version=str(model_version.pk))
        # With object storage, every machine's copy comes from the bucket: upload before the row exists.
        object_sync.index_version_publish(number, directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # e.g. a full disk: the active version is untouched
        raise
    IndexVersion.objects.filter(is_active=True).update(is_active=False)
    version = IndexVersion.objects.create(
        version=number,
        model_version=model_version,
        path=str(directory),
        kind=index.kind,
        vector_count=index.ntotal,
        recall_at_10=index.recall_at_10,
        is_active=True,
    )
    transaction.on_commit(_prune_old_versions)
    return version


def _prune_old_versions() -> None:
    """Delete all but the newest GEOSIM_INDEX_KEEP inactive versions (processes may still read those)."""
    old = IndexVersion.objects.filter(is_active=False).order_by("-version")[settings.GEOSIM_INDEX_KEEP :]
    for version in list(old):
        object_sync.index_version_delete(version.version, version.path)
        version.delete()
