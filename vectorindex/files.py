"""Index files on disk: the manifest, atomic writes and validated reads of a saved FAISS index and its segments.

A saved index is a directory holding ``index.faiss`` (the base) and ``manifest.json``, and after the
base possibly segment files ``segment-NNNNNN.npz`` (the changes made since: see
:mod:`vectorindex.segments`). Each file is written to a temp file in the same directory, fsynced and
moved into place with ``os.replace``, then the directory is fsynced; the manifest, written last,
carries every file's sha256, so a valid manifest always describes complete files. A segment is
referenced from the manifest only once its file is complete: a crash before the manifest's rename
leaves the previous manifest, which does not know the new segment. Reads check the manifest, its
format version, the checksums and (when asked) the model version and dimension, and raise an
``IndexLoadError`` subclass rather than ever hand back a bad index. Only a crash between the two
renames of a base save can pair an old manifest with a new file; the checksum then refuses it.
GeoSim writes each base (index version) to its own directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

# 2: the manifest lists segments. Version 1 manifests (no segments) are still read.
INDEX_FORMAT_VERSION = 2
_READABLE_FORMAT_VERSIONS = (1, 2)
INDEX_FILENAME = "index.faiss"
MANIFEST_FILENAME = "manifest.json"
_SEGMENT_NAME = re.compile(r"segment-[0-9]{6}\.npz")
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
class SegmentEntry:
    """One segment file as the manifest records it: name, checksum, sizes, and the index's count after it."""

    name: str
    sha256: str
    added: int
    removed: int
    count: int

    @classmethod
    def from_dict(cls, data: object) -> SegmentEntry:
        """Build an entry from parsed JSON; ``ValueError`` if a field is missing or mistyped."""
        if not isinstance(data, dict):
            raise ValueError("a segment entry is not a JSON object")
        types = {"name": str, "sha256": str, "added": int, "removed": int, "count": int}
        for name, expected in types.items():
            value = data.get(name)
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ValueError(f"segment field {name!r} is {value!r}, expected {expected.__name__}")
        if not _SEGMENT_NAME.fullmatch(data["name"]):
            raise ValueError(f"segment name {data['name']!r} is not segment-NNNNNN.npz")
        return cls(**{name: data[name] for name in types})


@dataclass(frozen=True)
class IndexManifest:
    """What ``manifest.json`` records about the base index file beside it, and the segments saved after it."""

    format_version: int
    index_version: int
    model_version: str
    dim: int
    count: int
    kind: str
    sha256: str
    recall_at_10: float | None
    created_at: str
    segments: tuple[SegmentEntry, ...] = field(default=())

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
        segments = data.get("segments", [])
        if not isinstance(segments, list):
            raise ValueError(f"field 'segments' is {segments!r}, expected a list")
        return cls(
            **{name: data[name] for name in types},
            recall_at_10=None if recall is None else float(recall),
            segments=tuple(SegmentEntry.from_dict(entry) for entry in segments),
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
    if isinstance(data, dict) and "format_version" in data and data["format_version"] not in _READABLE_FORMAT_VERSIONS:
        raise IndexMismatchError(
            f"index manifest {path} has format version {data['format_version']!r}, "
            f"this code reads versions {', '.join(map(str, _READABLE_FORMAT_VERSIONS))}; rebuild the index"
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
    manifest = read_manifest(directory)
    return [
        directory / INDEX_FILENAME,
        *(directory / entry.name for entry in manifest.segments),
        directory / MANIFEST_FILENAME,
    ]


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
    data = _read_verified(path, manifest.sha256, "index file", "its manifest exists")
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (RuntimeError, ValueError) as exc:
        raise IndexCorruptError(f"index file {path} cannot be read as a GeoSim index: {exc}") from exc
    return index, manifest, path


def _read_verified(path: Path, expected_sha256: str, what: str, listed_by: str) -> bytes:
    """The bytes of a file the manifest lists, checked against its recorded SHA-256."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexMissingError(f"{what} {path} is missing ({listed_by})") from None
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {what} {path}: {exc}") from exc
    found_sha = hashlib.sha256(data).hexdigest()
    if found_sha != expected_sha256:
        raise IndexCorruptError(f"{what} {path} is corrupt: sha256 {found_sha}, manifest expects {expected_sha256}")
    return data


def segment_name(number: int) -> str:
    """The file name of the ``number``-th segment after a base (1-based)."""
    return f"segment-{number:06d}.npz"


def write_segment_file(
    directory: Path,
    number: int,
    *,
    added_ids: np.ndarray,
    added_vectors: np.ndarray,
    removed_ids: np.ndarray,
    count: int,
) -> SegmentEntry:
    """Write segment ``number`` atomically (temp file, fsync, rename, fsync the directory); return its entry.

    The manifest does not know it yet: :func:`write_manifest` with the entry added publishes it. A file
    of the same name left by a crash before that is simply replaced.
    """
    directory = Path(directory)
    buffer = io.BytesIO()
    np.savez(buffer, added_ids=added_ids, added_vectors=added_vectors, removed_ids=removed_ids)
    data = buffer.getvalue()
    name = segment_name(number)
    sha256 = _replace_atomically(directory, name, data)
    return SegmentEntry(name=name, sha256=sha256, added=len(added_ids), removed=len(removed_ids), count=int(count))


def read_segment_file(directory: Path, entry: SegmentEntry, *, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read and check one segment: (added ids int64, added vectors float32 n×dim, removed ids int64)."""
    path = Path(directory) / entry.name
    data = _read_verified(path, entry.sha256, "segment file", "the manifest lists it")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            added_ids, vectors, removed_ids = arrays["added_ids"], arrays["added_vectors"], arrays["removed_ids"]
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorruptError(f"segment file {path} cannot be read: {exc}") from exc
    if (
        added_ids.dtype != np.int64
        or removed_ids.dtype != np.int64
        or vectors.dtype != np.float32
        or added_ids.ndim != 1
        or removed_ids.ndim != 1
        or vectors.shape != (len(added_ids), dim)
        or (len(added_ids), len(removed_ids)) != (entry.added, entry.removed)
    ):
        raise IndexCorruptError(f"segment file {path} disagrees with its manifest entry or the index's dimension {dim}")
    return added_ids, vectors, removed_ids


def write_manifest(directory: Path, manifest: IndexManifest) -> None:
    """Replace ``manifest.json`` atomically (temp file, fsync, rename, fsync the directory)."""
    directory = Path(directory)
    text = manifest.to_json().encode()
    _replace_atomically(directory, MANIFEST_FILENAME, text)


def _replace_atomically(directory: Path, name: str, data: bytes) -> str:
    """Write ``directory/name`` as a whole or not at all (temp file, fsync, rename, fsync the directory);
    returns the bytes' SHA-256."""
    tmp, sha256 = _write_temp(directory, name, lambda f: _write_bytes(f, data))
    try:
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    return sha256


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
