"""Index versions and model checkpoints in the object store, with a local copy on every machine that reads them.

With ``GEOSIM_STORAGE_URL=s3://bucket/prefix`` no machine's disk is the shared one: the worker that
writes an index version or registers a checkpoint *publishes* it to the bucket, and any web process
or worker that needs it *fetches* it into its own ``GEOSIM_DATA_DIR`` first. Without it (the default)
every function here leaves the local disk as the only copy and moves nothing.

Index versions (a directory, whatever files the :mod:`vectorindex` package saves in it)
    Published under ``index/vNNNNNNN/``: every file, as ``<sha256>-<name>`` (so publishing again never
    overwrites an object a listing names), in the order ``vectorindex.saved_files`` gives (the
    package's manifest last), then ``.published.json`` listing each file's name, size and SHA-256. That
    listing is written last, so a version without it — a worker killed during the upload — is never
    read; and the ``IndexVersion`` row that makes a version live is written only after it, so no
    process ever learns of a version before all its bytes are in the bucket.
    Fetched into ``GEOSIM_INDEX_DIR/vNNNNNNN/`` on first use: downloaded into a temporary directory
    beside it, each file checked against the listing, the listing copied in last, then renamed into
    place (atomic), so a local directory holding ``.published.json`` is a complete copy. A version
    published again under the same number (a segment added) sends only the files that changed, and its
    listing carries the next serial number, so a slow fetch never replaces a copy brought further
    meanwhile by another process of the machine. The writer's own
    directory gets the listing too, so the machine that built a version never downloads it. A file
    already cached under another version with the same SHA-256 (a base index next to new segments) is
    hard-linked instead of downloaded. Copies older than the live version are pruned, keeping the
    ``GEOSIM_INDEX_KEEP`` newest (other processes on the machine may still be switching).

Checkpoints (one file, named by its SHA-256, never changed)
    Published as ``models/<sha256>.pt`` when registered; fetched into ``GEOSIM_MODEL_DIR`` and checked
    against the SHA-256 the database records.

Errors: a version or checkpoint missing from the bucket, or whose bytes disagree with the listing,
raises ``vectorindex.IndexMissingError``/``IndexCorruptError`` (the index is lost: rebuild it);
an unreachable or failing store, or a full local disk, raises :class:`SyncFailed` (try again later).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from geosim_site.storage import is_local
from vectorindex import INDEX_FILENAME, IndexCorruptError, IndexMissingError, read_manifest, saved_files

logger = logging.getLogger(__name__)

LISTING = ".published.json"  # written last, in the bucket and in each local copy: "this copy is complete"
_LISTING_FORMAT = 1
_READ_CHUNK = 1 << 20


class SyncFailed(Exception):
    """Copying to or from the object store failed (unreachable store, full disk); nothing was changed: try again."""


def enabled() -> bool:
    """Whether index versions and checkpoints are shared through the object store (GEOSIM_STORAGE_URL=s3://...)."""
    return not is_local(default_storage)


# -- index versions ------------------------------------------------------------------------------------


def index_directory(number: int) -> Path:
    """Where index version ``number`` is written (and, with object storage, cached) on this machine."""
    return Path(settings.GEOSIM_INDEX_DIR) / f"v{number:07d}"


def index_version_publish(number: int, directory: Path) -> None:
    """Upload the index version saved in ``directory`` (the listing last); no-op on the local disk.

    On a failure the partial upload is removed (best effort: without its listing it is never read) and
    SyncFailed is raised; the caller must not activate the version.
    """
    if not enabled():
        return
    prefix = _index_prefix(number)
    files = saved_files(directory)
    previous = _local_listing(Path(directory))  # the bucket's, when published before (a segment was added since)
    # Publishers hold the index lock, so each listing of a version is numbered after the one it follows.
    serial = (previous or {}).get("serial", 0) + 1
    # The package's manifest records the checksum of every file it lists, so only the manifest is read again.
    known = _manifest_checksums(Path(directory))
    described = [_describe(path, known.get(path.name)) for path in files]
    listing = {"format": _LISTING_FORMAT, "serial": serial, "files": described}
    try:
        sent = _entries(previous)  # only the files that changed are sent
        for path, entry in zip(files, listing["files"], strict=True):
            if (entry["name"], entry["sha256"], entry["size"]) not in sent:
                default_storage.upload_path(_object_name(prefix, entry), path)
        default_storage.save(f"{prefix}/{LISTING}", ContentFile(_json(listing)))
    except (OSError, BotoCoreError, ClientError) as exc:
        if previous is None:  # a first upload, which nothing reads yet; a live version's objects stay
            with contextlib.suppress(OSError, BotoCoreError, ClientError):
                default_storage.delete_prefix(f"{prefix}/")
        raise SyncFailed(f"index version {number} could not be uploaded to the object store: {exc}") from exc
    _write_atomically(Path(directory) / LISTING, _json(listing))


def index_version_path(number: int, recorded_path: str) -> Path:
    """Where this machine keeps index version ``number``: the path the database recorded, or with object
    storage this machine's copy (which may not exist yet: see :func:`index_version_local`)."""
    return index_directory(number) if enabled() else Path(recorded_path)


def index_version_local(number: int, recorded_path: str) -> Path:
    """The directory this machine reads index version ``number`` from, fetched from the bucket first if needed.

    A local copy is used when its listing is the bucket's (one small GET): a copy left by a worker
    killed before its version was committed may carry the same number as another version built later.
    With the bucket unreachable, a complete local copy is used as it is.
    """
    directory = index_version_path(number, recorded_path)
    if not enabled():
        return directory
    try:
        listing = _read_listing(_index_prefix(number), number)
    except SyncFailed:
        if _local_listing(directory) is None:
            raise
        logger.warning("Index version %s: the object store is unreachable; using this machine's copy.", number)
        return directory
    if _local_listing(directory) != listing:
        _fetch_index_version(number, directory, listing)
    return directory


def index_version_forget_local(number: int) -> None:
    """Drop this machine's copy of a version (a damaged cache), so the next read fetches it again."""
    if enabled():
        shutil.rmtree(index_directory(number), ignore_errors=True)


def index_version_delete(number: int, recorded_path: str) -> None:
    """Delete an index version everywhere it is kept: the local directory and, with object storage, the bucket."""
    shutil.rmtree(recorded_path, ignore_errors=True)
    if enabled():
        shutil.rmtree(index_directory(number), ignore_errors=True)
        try:
            default_storage.delete_prefix(f"{_index_prefix(number)}/")
        except (BotoCoreError, ClientError) as exc:  # left behind: costs space, never read (no row names it)
            logger.warning("Index version %s stays in the object store: %s", number, exc)


def index_versions_prune_local(live: int) -> None:
    """Remove this machine's copies of versions older than ``live``, keeping the GEOSIM_INDEX_KEEP newest."""
    if not enabled():
        return
    root = Path(settings.GEOSIM_INDEX_DIR)
    older = sorted((n for n in _cached_numbers(root) if n < live), reverse=True)
    for number in older[settings.GEOSIM_INDEX_KEEP :]:
        shutil.rmtree(index_directory(number), ignore_errors=True)


def _fetch_index_version(number: int, directory: Path, listing: dict) -> None:
    prefix = _index_prefix(number)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".fetch"))
    try:
        cached = _cached_files()
        for entry in listing["files"]:
            target = staging / entry["name"]
            source = cached.get((entry["name"], entry["sha256"], entry["size"]))
            if source is not None:
                with contextlib.suppress(OSError):
                    os.link(source, target)
            if target.exists():
                continue  # a complete copy's file, checked when that copy was fetched or written
            try:
                default_storage.download_path(_object_name(prefix, entry), target)
            except FileNotFoundError:
                raise IndexMissingError(f"index version {number}: {entry['name']} is not in the object store") from None
            if _sha256(target) != entry["sha256"]:
                raise IndexCorruptError(
                    f"index version {number}: {entry['name']} from the object store does not match its SHA-256"
                )
        (staging / LISTING).write_bytes(_json(listing))
        _fsync_tree(staging)
        try:
            os.rename(staging, directory)
        except OSError:  # a directory is there: another process's copy, possibly newer, or a stale one
            if _is_older(_local_listing(directory), listing):
                aside = directory.with_name(f".{directory.name}.stale-{os.getpid()}")
                os.rename(directory, aside)
                shutil.rmtree(aside, ignore_errors=True)
                os.rename(staging, directory)
    except (OSError, BotoCoreError, ClientError) as exc:
        raise SyncFailed(f"index version {number} could not be fetched from the object store: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Fetched index version %s from the object store into %s.", number, directory)


def _read_listing(prefix: str, number: int) -> dict:
    try:
        with default_storage.open(f"{prefix}/{LISTING}") as handle:
            listing = json.loads(handle.read())
    except FileNotFoundError:
        raise IndexMissingError(f"index version {number} is not in the object store (no {prefix}/{LISTING})") from None
    except (OSError, BotoCoreError, ClientError) as exc:
        raise SyncFailed(f"index version {number}: the object store could not be read: {exc}") from exc
    except ValueError as exc:
        raise IndexCorruptError(f"index version {number}: its listing in the object store is not JSON ({exc})") from exc
    if not isinstance(listing, dict) or listing.get("format") != _LISTING_FORMAT:
        raise IndexCorruptError(f"index version {number}: its listing in the object store has an unknown format")
    return listing


def _local_listing(directory: Path) -> dict | None:
    """The listing of a complete local copy, None when there is no complete copy."""
    try:
        return json.loads((directory / LISTING).read_bytes())
    except (OSError, ValueError):
        return None


def _is_older(existing: dict | None, fetched: dict) -> bool:
    """Whether a local copy's listing should give way to ``fetched`` (a copy already brought further stays)."""
    if existing is None or existing == fetched:
        return existing is None
    return existing.get("serial", 0) <= fetched.get("serial", 0)


def _entries(listing: dict | None) -> set[tuple[str, str, int]]:
    return {(entry["name"], entry["sha256"], entry["size"]) for entry in (listing or {}).get("files", [])}


def _cached_numbers(root: Path) -> list[int]:
    numbers = []
    for path in root.glob("v*"):
        if path.is_dir() and path.name[1:].isdigit():
            numbers.append(int(path.name[1:]))
    return numbers


def _cached_files() -> dict[tuple[str, str, int], Path]:
    """Files of complete local copies, by (name, SHA-256, size) as their listings record them."""
    found = {}
    root = Path(settings.GEOSIM_INDEX_DIR)
    for number in _cached_numbers(root):
        directory = index_directory(number)
        listing = _local_listing(directory) or {}
        for entry in listing.get("files", []):
            found[(entry["name"], entry["sha256"], entry["size"])] = directory / entry["name"]
    return found


def _index_prefix(number: int) -> str:
    return f"index/v{number:07d}"


def _object_name(prefix: str, entry: dict) -> str:
    """A file's object, named by its content: publishing again never overwrites what a listing names."""
    return f"{prefix}/{entry['sha256']}-{entry['name']}"


# -- checkpoints ---------------------------------------------------------------------------------------


def checkpoint_publish(path: Path, sha256: str) -> None:
    """Upload a registered checkpoint as ``models/<sha256>.pt`` unless it is there; no-op on the local disk."""
    if not enabled():
        return
    name = _checkpoint_name(sha256)
    try:
        if default_storage.stored_size(name) != Path(path).stat().st_size:
            default_storage.upload_path(name, Path(path))
    except (OSError, BotoCoreError, ClientError) as exc:
        raise SyncFailed(f"the checkpoint could not be uploaded to the object store: {exc}") from exc


def checkpoint_local(recorded_path: str, sha256: str) -> Path:
    """The checkpoint file this machine reads, fetched from the bucket and checked first if needed.

    On the local disk that is the path the database recorded, untouched.
    """
    if not enabled():
        return Path(recorded_path)
    target = Path(settings.GEOSIM_MODEL_DIR) / f"{sha256}.pt"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".fetch")
    os.close(descriptor)
    temp = Path(temp_name)
    try:
        default_storage.download_path(_checkpoint_name(sha256), temp)
        if _sha256(temp) != sha256:
            raise SyncFailed(f"the checkpoint {sha256} in the object store does not match its SHA-256")
        os.replace(temp, target)
    except (OSError, BotoCoreError, ClientError) as exc:
        raise SyncFailed(f"the checkpoint {sha256} could not be fetched from the object store: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)
    return target


def _checkpoint_name(sha256: str) -> str:
    return f"models/{sha256}.pt"


# -- helpers -------------------------------------------------------------------------------------------


def _describe(path: Path, sha256: str | None = None) -> dict:
    return {"name": path.name, "size": path.stat().st_size, "sha256": sha256 or _sha256(path)}


def _manifest_checksums(directory: Path) -> dict[str, str]:
    """The SHA-256 the index manifest records for the base and each segment, by file name."""
    manifest = read_manifest(directory)
    return {INDEX_FILENAME: manifest.sha256, **{entry.name: entry.sha256 for entry in manifest.segments}}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_READ_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _json(data: dict) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _write_atomically(path: Path, data: bytes) -> None:
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp_name, path)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
