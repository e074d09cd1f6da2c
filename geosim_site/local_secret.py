"""The secret key of one checkout: ``GEOSIM_DATA_DIR/secret_key``, written once by ``make demo``.

A deployment sets ``SECRET_KEY`` in its environment, which always wins. This file only lets the
README's commands (``manage.py search_similar``, ``create_api_token`` …) run after ``make demo`` in
the same checkout without ``DEBUG=1``: the demo writes a random key here, readable by its owner only,
and the settings read it when the environment has none. Django-free, so the settings can use it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_KEY_FILE = "secret_key"


def data_dir(base_dir: Path) -> Path:
    """GEOSIM_DATA_DIR as an absolute path (relative values are relative to the checkout), created if missing."""
    path = Path(os.environ.get("GEOSIM_DATA_DIR", "var")).expanduser()
    if not path.is_absolute():
        path = (base_dir / path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_secret_key(directory: Path) -> str | None:
    """The key stored in ``directory/secret_key``, or None when there is none."""
    try:
        key = (directory / SECRET_KEY_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return key or None


def ensure_secret_key(directory: Path) -> str:
    """The stored key, creating the file with a fresh random key (mode 0600) when it is missing."""
    existing = read_secret_key(directory)
    if existing:
        return existing
    key = secrets.token_urlsafe(50)
    path = directory / SECRET_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first (or it was empty): use what is there
        return read_secret_key(directory) or _replace_empty(path, key)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def _replace_empty(path: Path, key: str) -> str:
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key
