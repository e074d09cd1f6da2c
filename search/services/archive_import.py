"""Importing an uploaded archive as a background job, so the upload's page answers at once.

The admin stores the uploaded archive under ``GEOSIM_DATA_DIR/imports/`` (shared with the workers)
and queues an IMPORT job; the job imports it exactly as ``manage.py import_images`` does (same
service, same checks, its root ``metadata.csv`` applied), reports progress per file on the job row,
records the summary as the job's result and deletes the archive. Its processing jobs follow as usual.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings

from search.archives import ARCHIVE_SUFFIXES, count_files
from search.models import Job
from search.services.ingestion import ImportSummary
from search.services.jobs import JobProgress, job_create
from search.services.metadata import images_import_path_with_metadata

MAX_REJECTED_IN_RESULT = 50


def imports_dir() -> Path:
    return Path(settings.GEOSIM_DATA_DIR) / "imports"


def archive_store(upload) -> Path:
    """Write an uploaded archive (a Django UploadedFile) under a random name; the name's suffix is kept if known."""
    name = (upload.name or "").lower()
    suffix = next((s for s in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")
    directory = imports_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{secrets.token_hex(8)}{suffix}"
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return path


def archive_import_request(*, path: Path, label: str | None, source: str, uploaded_by=None) -> Job:
    """Queue the import of a stored archive (the job deletes it when done)."""
    params = {"path": str(path), "label": label, "source": source[:255]}
    return job_create(kind=Job.Kind.IMPORT, params=params, created_by=uploaded_by)


def archive_import(job: Job, progress: JobProgress) -> dict:
    """Handle an IMPORT job: import the archive, progress per file, the summary as the result."""
    path = Path(job.params["path"])
    try:
        progress.set_total(count_files(path))

        def on_progress(summary: ImportSummary) -> None:
            progress.advance(summary.files - progress.job.done)

        summary, metadata = images_import_path_with_metadata(
            path,
            label=job.params.get("label"),
            source=job.params.get("source", ""),
            uploaded_by=job.created_by,
            on_progress=on_progress,
        )
    finally:
        path.unlink(missing_ok=True)
    return {
        "line": summary.line(),
        "added": summary.added,
        "duplicates": summary.duplicates,
        "rejected": [f"{name}: {reason}" for name, reason in summary.rejected[:MAX_REJECTED_IN_RESULT]],
        "rejected_count": len(summary.rejected),
        "processing_jobs": summary.job_ids,
        "metadata": metadata.line() if metadata is not None else None,
    }
