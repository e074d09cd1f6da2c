"""Index files on disk: the manifest, atomic writes and validated reads of a saved FAISS index.

A saved index is a directory holding ``index.faiss`` and ``manifest.json``. Each is written to a temp
file in the same directory, fsynced and moved into place with ``os.replace``, then the directory is
fsynced; the manifest, written last, carries the index file's sha256, so a valid manifest always
describes a complete file. Reads check the manifest, its format version, the checksum and (when
asked) the model version and dimension, and raise an ``IndexLoadError`` subclass rather than ever
hand back a bad index. Only a crash between the two renames can pair an old manifest with a new
file; the checksum then refuses it. GeoSim writes each index version to its own directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

INDEX_FORMAT_VERSION = 1
INDEX_FILENAME = "index.faiss"
MANIFEST_FILENAME = "manifest.json"
_WRITE_SLICE = 16 << 20


class IndexLoadError(Exception):
    """An index directory could not be loaded; the message names the path and what was wrong."""


class IndexMissingError(IndexLoadError):
    """The directory, its manifest or its index file does not exist."""


class IndexCorruptError(IndexLoadError):
    """The manifest or the index file is unreadable or disagrees with itself (checksum, count, dim)."""


class IndexMismatchError(IndexLoadError):
    """A sound index that is not the one asked for: another format version, model version or dim."""


@dataclass(frozen=True)
class IndexManifest:
    """What ``manifest.json`` records about the index file beside it."""

    format_version: int
    index_version: int
    model_version: str
    dim: int
    count: int
    kind: str
    sha256: str
    recall_at_10: float | None
    created_at: str

    def to_json(self) -> str:
        """The manifest as pretty JSON text."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: object) -> IndexManifest:
        """Build a manifest from parsed JSON; ``ValueError`` if a field is missing or mistyped."""
        if not isinstance(data, dict):
            raise ValueError("manifest is not a JSON object")
        types = {
            "format_version": int,
            "index_version": int,
            "model_version": str,
            "dim": int,
            "count": int,
            "kind": str,
            "sha256": str,
            "created_at": str,
        }
        for name, expected in types.items():
            value = data.get(name)
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ValueError(f"field {name!r} is {value!r}, expected {expected.__name__}")
        recall = data.get("recall_at_10")
        if recall is not None and (isinstance(recall, bool) or not isinstance(recall, int | float)):
            raise ValueError(f"field 'recall_at_10' is {recall!r}, expected a number or null")
        return cls(
            **{name: data[name] for name in types},
            recall_at_10=None if recall is None else float(recall),
        )


def read_manifest(directory: Path) -> IndexManifest:
    """Read and check ``manifest.json`` in ``directory`` (format version included)."""
    path = Path(directory) / MANIFEST_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IndexMissingError(f"no index manifest at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"cannot read index manifest {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IndexCorruptError(f"index manifest {path} is not valid JSON: {exc}") from exc
    # The format version is checked first: a manifest from another format may have other fields.
    if isinstance(data, dict) and "format_version" in data and data["format_version"] != INDEX_FORMAT_VERSION:
        raise IndexMismatchError(
            f"index manifest {path} has format version {data['format_version']!r}, "
            f"this code reads version {INDEX_FORMAT_VERSION}; rebuild the index"
        )
    try:
        return IndexManifest.from_dict(data)
    except ValueError as exc:
        raise IndexCorruptError(f"index manifest {path} is invalid: {exc}") from exc


def saved_files(directory: Path) -> list[Path]:
    """The files of the index saved in ``directory``, the manifest last (raises IndexLoadError if unreadable).

    Copying them in this order (e.g. to object storage) never publishes a manifest before the file it describes.
    """
    directory = Path(directory)
    read_manifest(directory)
    return [directory / INDEX_FILENAME, directory / MANIFEST_FILENAME]


def write_index_files(
    index: faiss.Index,
    directory: Path,
    *,
    index_version: int,
    model_version: str,
    kind: str,
    recall_at_10: float | None,
) -> IndexManifest:
    """Write ``index`` and its manifest atomically into ``directory``; return the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index_tmp = manifest_tmp = None
    try:
        index_tmp, sha256 = _write_temp(directory, INDEX_FILENAME, lambda f: _write_index(index, f))
        manifest = IndexManifest(
            format_version=INDEX_FORMAT_VERSION,
            index_version=int(index_version),
            model_version=str(model_version),
            dim=index.d,
            count=index.ntotal,
            kind=kind,
            sha256=sha256,
            recall_at_10=recall_at_10,
            created_at=datetime.now(UTC).isoformat(),
        )
        text = manifest.to_json().encode()
        manifest_tmp, _ = _write_temp(directory, MANIFEST_FILENAME, lambda f: _write_bytes(f, text))
        # Both temp files are complete and on disk; only two renames remain.
        os.replace(index_tmp, directory / INDEX_FILENAME)
        index_tmp = None
        _fsync_directory(directory)
        os.replace(manifest_tmp, directory / MANIFEST_FILENAME)
        manifest_tmp = None
        _fsync_directory(directory)
    finally:
        for leftover in (index_tmp, manifest_tmp):
            if leftover is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
    return manifest


def read_index_files(
    directory: Path, *, expected_model_version: str | None = None, expected_dim: int | None = None
) -> tuple[faiss.Index, IndexManifest, Path]:
    """Read and check a saved index: (faiss index, its manifest, the index file's path)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if expected_model_version is not None and manifest.model_version != expected_model_version:
        raise IndexMismatchError(
            f"index in {directory} was built for model version {manifest.model_version!r}, "
            f"expected {expected_model_version!r}"
        )
    if expected_dim is not None and manifest.dim != expected_dim:
        raise IndexMismatchError(f"index in {directory} has dimension {manifest.dim}, expected {expected_dim}")

    path = directory / INDEX_FILENAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexMissingError(f"index file {path} is missing (its manifest exists)") from None
    except OSError as exc:
        raise IndexCorruptError(f"cannot read index file {path}: {exc}") from exc
    found_sha = hashlib.sha256(data).hexdigest()
    if found_sha != manifest.sha256:
        raise IndexCorruptError(f"index file {path} is corrupt: sha256 {found_sha}, manifest expects {manifest.sha256}")
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (RuntimeError, ValueError) as exc:
        raise IndexCorruptError(f"index file {path} cannot be read as a GeoSim index: {exc}") from exc
    return index, manifest, path


def _write_index(index: faiss.Index, file) -> None:
    """Write the serialized index into an open binary file, in slices."""
    data = memoryview(faiss.serialize_index(index))
    for begin in range(0, len(data), _WRITE_SLICE):
        file.write(data[begin : begin + _WRITE_SLICE])


def _write_bytes(file, data: bytes) -> None:
    file.write(data)


class _HashingFile:
    """A binary file wrapper that hashes what is written through it."""

    def __init__(self, file) -> None:
        self._file = file
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self._file.write(data)


def _write_temp(directory: Path, name: str, write: Callable[[_HashingFile], None]) -> tuple[Path, str]:
    """Write a temp file beside ``name`` with ``write``, fsync it; return its path and sha256."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingFile(raw)
            write(hashing)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp), hashing.sha256.hexdigest()


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows, where directories cannot be opened
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
