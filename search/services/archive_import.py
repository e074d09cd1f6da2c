"""Importing an uploaded archive as a background job, so the upload's page answers at once.

The admin stores the uploaded archive in the media storage under ``imports/`` (the local disk, or the
object store with ``GEOSIM_STORAGE_URL``: either way the workers can read it; ``/media/`` never serves
that folder) and queues an IMPORT job. The job copies it to a local temporary file (archives need
seeking), imports it exactly as ``manage.py import_images`` does (same service, same checks, its root
``metadata.csv`` applied), reports progress per file on the job row, records the summary as the job's
result and deletes the stored archive. Its processing jobs follow as usual.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

from django.core.files.storage import default_storage

from search.archives import ARCHIVE_SUFFIXES, count_files
from search.models import Job
from search.services.ingestion import ImportSummary
from search.services.jobs import JobProgress, job_create
from search.services.metadata import images_import_path_with_metadata

MAX_REJECTED_IN_RESULT = 50


IMPORTS_PREFIX = "imports/"


def _known_suffix(name: str) -> str:
    name = name.lower()
    return next((s for s in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")


def archive_store(upload) -> str:
    """Store an uploaded archive (a Django UploadedFile) under a random name; returns its storage name."""
    return default_storage.save(f"{IMPORTS_PREFIX}{secrets.token_hex(8)}{_known_suffix(upload.name or '')}", upload)


def archive_import_request(*, stored_name: str, label: str | None, source: str, uploaded_by=None) -> Job:
    """Queue the import of a stored archive (the job deletes it when done)."""
    params = {"stored_name": stored_name, "label": label, "source": source[:255]}
    return job_create(kind=Job.Kind.IMPORT, params=params, created_by=uploaded_by)


def archive_import(job: Job, progress: JobProgress) -> dict:
    """Handle an IMPORT job: import the archive, progress per file, the summary as the result."""
    stored_name = job.params["stored_name"]
    with tempfile.TemporaryDirectory(prefix="geosim-import-") as workdir:
        path = Path(workdir) / f"archive{_known_suffix(stored_name)}"
        with default_storage.open(stored_name, "rb") as source, path.open("wb") as local:
            shutil.copyfileobj(source, local)
        summary, metadata = _import(path, job, progress)
    default_storage.delete(stored_name)
    return {
        "line": summary.line(),
        "added": summary.added,
        "duplicates": summary.duplicates,
        "rejected": [f"{name}: {reason}" for name, reason in summary.rejected[:MAX_REJECTED_IN_RESULT]],
        "rejected_count": len(summary.rejected),
        "processing_jobs": summary.job_ids,
        "metadata": metadata.line() if metadata is not None else None,
    }


def _import(path: Path, job: Job, progress: JobProgress):
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
    except Exception:
        default_storage.delete(job.params["stored_name"])  # a rejected archive is not kept either
        raise
    return summary, metadata
