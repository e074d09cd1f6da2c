"""Ingestion: the one way an image file becomes an Image row — CLI import, admin upload and API alike.

Each file is validated (:func:`search.imaging.decode_image`), deduplicated by SHA-256 of its bytes,
stored under a content-addressed path and recorded; then a processing job is queued for the new rows
(thumbnails, embedding, adding to the live index); its pixel fingerprint, for near-duplicate checks, is
stored with the row from the picture already decoded. A rejected file leaves nothing behind: it is
rejected before any byte is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction

from search.archives import SourceFile, iter_source_files
from search.imaging import DecodedImage, ImageRejected, decode_image
from search.labels import normalize_label
from search.models import Image, Job
from search.services.fingerprints import fingerprints_save
from search.services.jobs import QUEUE_UNREACHABLE, job_create
from search.stored_files import store_verified


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    sha256: str
    decoded: DecodedImage
    label: str | None
    original_name: str


@dataclass
class ImportSummary:
    added: int = 0
    duplicates: int = 0
    files: int = 0  # files read so far
    to_commit: int = 0  # valid and new to this import, waiting for their batch's commit
    rejected: list[tuple[str, str]] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    job_ids: list[int] = field(default_factory=list)
    metadata_csv: bytes | None = None  # a metadata.csv found at the root of the imported folder or archive

    def line(self) -> str:
        return f"added {self.added}, duplicates {self.duplicates}, rejected {len(self.rejected)}"

    def counts(self) -> dict[str, int]:
        """The running counts, named as in :meth:`line` (plus what waits for its batch's commit)."""
        counts = {"added": self.added, "duplicates": self.duplicates, "rejected": len(self.rejected)}
        return {**counts, "to_commit": self.to_commit} if self.to_commit else counts

    def jobs_waiting_for_queue(self) -> int:
        """Processing jobs that could not be sent because the task queue was unreachable."""
        return Job.objects.filter(pk__in=self.job_ids, status=Job.Status.PENDING, error=QUEUE_UNREACHABLE).count()


def prepare_image(data: bytes, *, label: str | None, original_name: str = "") -> PreparedImage:
    """Validate bytes and label; raises ImageRejected with a reason a user understands."""
    decoded = decode_image(data, max_pixels=settings.GEOSIM_MAX_PIXELS, max_bytes=settings.GEOSIM_MAX_UPLOAD_BYTES)
    return PreparedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        decoded=decoded,
        label=normalize_label(label),
        original_name=original_name[-255:],
    )


def image_ingest(
    *, data: bytes, label: str | None = None, original_name: str = "", source: str = "", uploaded_by=None
) -> tuple[Image, bool]:
    """Add one image; returns (image, created). An exact duplicate returns the existing row."""
    prepared = prepare_image(data, label=label, original_name=original_name)
    existing = Image.objects.filter(sha256=prepared.sha256).first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            image = _image_from(prepared, source=source, uploaded_by=uploaded_by)
            image.save()
            fingerprints_save([(image.pk, prepared.decoded.image)])
            job_create(kind=Job.Kind.PROCESS, total=1, params={"image_ids": [image.pk]}, created_by=uploaded_by)
    except IntegrityError:  # the same bytes arrived concurrently and won the race
        return Image.objects.get(sha256=prepared.sha256), False
    return image, True


def images_import(
    files: Iterable[SourceFile],
    *,
    label: str | None = None,
    source: str = "",
    uploaded_by=None,
    batch_size: int = 1000,
    on_progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Import many files; ``label`` overrides each file's folder label. Returns the summary.

    Files are committed in batches, each with its own processing job, so a large import becomes
    searchable progressively and an interruption loses at most the batch in flight.
    ``on_progress(summary)`` is called after every file and after every batch commit: the summary is
    the one record of the counts, so a progress bar can never disagree with the final line (a file is
    only known to be new or a duplicate of the collection when its batch is committed; until then it
    is counted in ``summary.to_commit``).
    """
    summary = ImportSummary()
    forced_label = normalize_label(label)
    batch: dict[str, PreparedImage] = {}
    for source_file in files:
        summary.files += 1
        try:
            if source_file.data is None:
                raise ImageRejected(source_file.problem or "could not be read")
            prepared = prepare_image(
                source_file.data, label=forced_label or source_file.label, original_name=source_file.name
            )
            if prepared.sha256 in batch:
                summary.duplicates += 1
            else:
                batch[prepared.sha256] = prepared
        except ImageRejected as exc:
            summary.rejected.append((source_file.name, str(exc)))
        summary.to_commit = len(batch)
        if len(batch) >= batch_size:
            _commit_batch(batch, summary, source=source, uploaded_by=uploaded_by)
            batch = {}
        if on_progress:
            on_progress(summary)
    if batch:
        _commit_batch(batch, summary, source=source, uploaded_by=uploaded_by)
        if on_progress:
            on_progress(summary)
    return summary


def _commit_batch(batch: dict[str, PreparedImage], summary: ImportSummary, *, source: str, uploaded_by) -> None:
    existing = set(Image.objects.filter(sha256__in=batch.keys()).values_list("sha256", flat=True))
    new = [prepared for sha, prepared in batch.items() if sha not in existing]
    summary.duplicates += len(existing)
    summary.to_commit = 0
    if not new:
        return
    with transaction.atomic():
        Image.objects.bulk_create(
            [_image_from(p, source=source, uploaded_by=uploaded_by) for p in new], ignore_conflicts=True
        )
        stored = dict(Image.objects.filter(sha256__in=[p.sha256 for p in new]).values_list("sha256", "pk"))
        ids = sorted(stored.values())
        fingerprints_save((stored[p.sha256], p.decoded.image) for p in new if p.sha256 in stored)
        job = job_create(kind=Job.Kind.PROCESS, total=len(ids), params={"image_ids": ids}, created_by=uploaded_by)
    summary.added += len(ids)
    summary.duplicates += len(new) - len(ids)
    summary.image_ids.extend(ids)
    summary.job_ids.append(job.pk)


def _image_from(prepared: PreparedImage, *, source: str, uploaded_by) -> Image:
    """An unsaved Image row whose file is already stored (content-addressed, so storing twice is harmless)."""
    return Image(
        file=store_bytes(prepared),
        sha256=prepared.sha256,
        label=prepared.label,
        width=prepared.decoded.width,
        height=prepared.decoded.height,
        format=prepared.decoded.format,
        byte_size=len(prepared.data),
        original_name=prepared.original_name,
        source=source[:255],
        uploaded_by=uploaded_by,
    )


def store_bytes(prepared: PreparedImage) -> str:
    """Store the original bytes under images/ab/cd/<sha256>.<ext> (verified, atomic); return the name.

    Raises StorageFailed (a full disk…) before any row is written.
    """
    sha = prepared.sha256
    return store_verified(f"images/{sha[:2]}/{sha[2:4]}/{sha}.{prepared.decoded.extension}", prepared.data)


def images_import_path(
    path, *, label: str | None = None, source: str = "", uploaded_by=None, on_progress=None
) -> ImportSummary:
    """Import a class-per-folder tree or an archive of one (see :mod:`search.archives` for the safety rules)."""
    files = iter_source_files(
        path,
        max_file_bytes=settings.GEOSIM_MAX_UPLOAD_BYTES,
        max_total_bytes=settings.GEOSIM_MAX_ARCHIVE_BYTES,
        max_members=settings.GEOSIM_MAX_ARCHIVE_MEMBERS,
    )
    found: list[bytes] = []
    summary = images_import(
        _without_metadata_csv(files, found),
        label=label,
        source=source,
        uploaded_by=uploaded_by,
        on_progress=on_progress,
    )
    summary.metadata_csv = found[0] if found else None
    return summary


METADATA_CSV = "metadata.csv"


def _without_metadata_csv(files: Iterable[SourceFile], found: list[bytes]) -> Iterable[SourceFile]:
    """Set aside a ``metadata.csv`` at the root (or in the single top folder, like the image folders'
    parent) instead of importing it as a bad image; the caller applies it once the images exist."""
    for source_file in files:
        parts = source_file.name.split("/")
        if parts[-1].lower() == METADATA_CSV and len(parts) <= 2 and source_file.data is not None:
            found.append(source_file.data)
            continue
        yield source_file
