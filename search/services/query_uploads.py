"""Uploaded query images, kept for an hour so the search page can re-run a query (another region, K, rock type).

The upload of a search is not part of the collection; it is kept under GEOSIM_DATA_DIR/queries/ by its
SHA-256 (the page's token: unguessable without the image itself), never listed, and deleted after
QUERY_KEEP_SECONDS. API and CLI searches keep nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

from django.conf import settings

QUERY_KEEP_SECONDS = 3600
_TOKEN = re.compile(r"^[0-9a-f]{64}$")


def _folder() -> Path:
    return Path(settings.GEOSIM_DATA_DIR) / "queries"


def query_keep(data: bytes) -> str:
    """Keep an uploaded query image; return its token. Expired queries are deleted on the way."""
    token = hashlib.sha256(data).hexdigest()
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / token
    if target.exists():
        os.utime(target)  # used again: keep it another hour
    else:
        handle, temp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, target)
    _prune(folder)
    return token


def query_bytes(token: str) -> bytes | None:
    """The kept query image of a token; None when the token is malformed, unknown or expired."""
    if not _TOKEN.match(token or ""):
        return None
    path = _folder() / token
    try:
        if time.time() - path.stat().st_mtime > QUERY_KEEP_SECONDS:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _prune(folder: Path) -> None:
    cutoff = time.time() - QUERY_KEEP_SECONDS
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass  # deleted meanwhile by another process
