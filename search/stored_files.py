"""Writing content-addressed media files (originals, thumbnails) so that a name never holds a partial file.

A file's name is derived from its content, so a file already at that name is normally the same
bytes — but not after a full disk or a crash cut a write short. So an existing file is trusted only
when its size and SHA-256 match the bytes to store, and a new one is written to a temporary name in
the same directory, fsynced, checked, and only then renamed into place (``os.replace`` is atomic).
A failed write leaves the final name untouched and the temporary file removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from geosim_site.storage import is_local

logger = logging.getLogger(__name__)
_READ_CHUNK = 1 << 20


class StorageFailed(Exception):
    """The file could not be stored (a full disk, an I/O error); nothing was recorded."""


def store_verified(name: str, data: bytes) -> str:
    """Store ``data`` under ``name`` in the media storage unless an intact copy is there; return ``name``."""
    if not is_local(default_storage):
        return _store_in_object_store(name, data)
    path = Path(default_storage.path(name))  # media on the local disk (GEOSIM_DATA_DIR/media)
    try:
        if path.exists():
            if _holds(path, data):
                return name
            logger.warning("Replacing %s: the stored copy is damaged (size or SHA-256 differ).", name)
        _write_atomically(path, data)
    except OSError as exc:
        raise StorageFailed(f"The file could not be stored ({exc.strerror or exc}); nothing was added.") from exc
    return name


def _store_in_object_store(name: str, data: bytes) -> str:
    """``GEOSIM_STORAGE_URL=s3://...``: an object store writes each object whole or not at all, and every
    write is verified (geosim_site/s3_storage.py), so an object already under the content address is
    checked by its size (one HEAD) rather than by reading it back; one of another size is replaced.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stored = default_storage.stored_size(name)
        if stored == len(data):
            return name
        if stored is not None:
            logger.warning("Replacing %s in the object store: its size differs from the upload's.", name)
        default_storage.save(name, ContentFile(data))
    except (OSError, BotoCoreError, ClientError) as exc:
        raise StorageFailed(f"The file could not be stored in the object store ({exc}); nothing was added.") from exc
    return name


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` is exactly ``data`` (the size first: a truncated file fails cheaply)."""
    if path.stat().st_size != len(data):
        return False
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_READ_CHUNK), b""):
            digest.update(block)
    return digest.digest() == hashlib.sha256(data).digest()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not _holds(temp, data):
            raise OSError(f"the written copy of {path.name} does not match what was sent")
        os.chmod(temp, settings.FILE_UPLOAD_PERMISSIONS or 0o644)  # mkstemp makes 0600; proxies must read it
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
