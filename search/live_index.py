"""The index this process searches: the active index version, loaded once and swapped when a newer one is live.

Each search asks :func:`current` for the index. At most every GEOSIM_INDEX_CHECK_MS milliseconds that
costs one indexed query for the active :class:`~search.models.IndexVersion` row; when it names another
version, the new files are loaded and validated (manifest, checksum, model version, dimension) before
they replace the old ones, so a process never serves a half-written or mismatched index.

A process keeps serving the version it loaded from memory even if that version's files are later
deleted or damaged on disk; but other processes could not load it and incremental updates would fail.
:func:`files_damage` (asked by ``/healthz``) notices: it compares the files' identity, size and
modification time with what was loaded (two ``stat`` calls), validates them fully only when those
changed, and reports a damage once per change to the injected handler, which requests a rebuild.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from search import object_sync, selectors
from search.models import Image, IndexVersion
from vectorindex import INDEX_FILENAME, MANIFEST_FILENAME, IndexLoadError, VectorIndex

logger = logging.getLogger(__name__)


class IndexUnavailable(Exception):
    """No usable index: none built yet, or its files are missing or damaged. Searches answer 503."""


FileSignature = tuple[int, ...] | None  # identity, size and mtime of the index and manifest files


@dataclass
class LoadedIndex:
    version: IndexVersion
    index: VectorIndex
    files: FileSignature = None  # the files as they were when loaded
    _label_ids: dict[str, np.ndarray] = field(default_factory=dict)

    def ids_with_label(self, label: str) -> np.ndarray:
        """Image ids carrying a rock type (cached for the life of this index version)."""
        ids = self._label_ids.get(label)
        if ids is None:
            ids = np.fromiter(Image.objects.filter(label=label).values_list("pk", flat=True), dtype=np.int64)
            self._label_ids[label] = ids
        return ids


def load_index_version(version: IndexVersion) -> VectorIndex:
    """Load a saved index version, checking it belongs to its model (raises IndexLoadError).

    With object storage the files are this machine's copy, fetched first when missing (raises
    object_sync.SyncFailed when that fails); a damaged copy is fetched again once before the version
    counts as unusable.
    """
    try:
        return _load_files(version)
    except IndexLoadError:
        if not object_sync.enabled():
            raise
        object_sync.index_version_forget_local(version.version)
        return _load_files(version)


def _load_files(version: IndexVersion) -> VectorIndex:
    return VectorIndex.load(
        object_sync.index_version_local(version.version, version.path),
        expected_model_version=str(version.model_version_id),
        expected_dim=version.model_version.embedding_dim,
    )


def _files_path(version: IndexVersion) -> Path:
    return object_sync.index_version_path(version.version, version.path)


@dataclass
class _Failure:
    version_pk: int
    at: float
    message: str


@dataclass
class _Damage:
    version_pk: int
    files: FileSignature
    message: str
    rebuild_job: int | None


@dataclass
class _State:
    loaded: LoadedIndex | None = None
    checked_at: float = 0.0
    failure: _Failure | None = None
    damage: _Damage | None = None


_lock = threading.Lock()
_state = _State()
_RETRY_FAILED_SECONDS = 5.0
_damage_handler: Callable[[], object] | None = None


@dataclass(frozen=True)
class FilesDamage:
    """The loaded version's files on disk are unusable; ``rebuild_job``: the job rebuilding it, if known."""

    message: str
    rebuild_job: int | None


def on_index_damaged(handler: Callable[[], object]) -> None:
    """Set what to do when the live index's files prove unusable (wired in search/apps.py: request a rebuild).

    Injected rather than imported, so this low-level module does not depend on the services above it.
    """
    global _damage_handler
    _damage_handler = handler


def current() -> LoadedIndex:
    """The live index (reloaded if a newer version is active); raises IndexUnavailable."""
    loaded = _state.loaded
    now = time.monotonic()
    if loaded is not None and now - _state.checked_at < settings.GEOSIM_INDEX_CHECK_SECONDS:
        return loaded
    active = selectors.active_index_version()
    if active is None:
        raise IndexUnavailable("No index has been built yet: import images, then run `manage.py rebuild_index`.")
    if loaded is not None and loaded.version.pk == active.pk:
        _state.checked_at = now
        return loaded
    failure = _state.failure
    if failure and failure.version_pk == active.pk and now - failure.at < _RETRY_FAILED_SECONDS:
        raise IndexUnavailable(failure.message)
    with _lock:
        loaded = _state.loaded
        if loaded is None or loaded.version.pk != active.pk:
            loaded = _load_live(active, failure, now)
        _state.checked_at = now
    return loaded


def _load_live(active: IndexVersion, failure: _Failure | None, now: float) -> LoadedIndex:
    """Load the active version and make it this process's index (the caller holds the lock)."""
    while True:
        try:
            index = load_index_version(active)
        except object_sync.SyncFailed as exc:  # the store or the disk, not the index: no rebuild
            message = f"The search index (version {active.version}) cannot be fetched yet. {exc}"
            _state.failure = _Failure(active.pk, now, message)
            raise IndexUnavailable(message) from exc
        except IndexLoadError as exc:
            newer = selectors.active_index_version()
            if newer is not None and newer.pk != active.pk:
                # Superseded, and pruned, while this process was still loading it (a busy machine):
                # not a damage; the live version is the one to load.
                active = newer
                continue
            message = f"The search index (version {active.version}) is unusable; a rebuild has been started. {exc}"
            first_failure = failure is None or failure.version_pk != active.pk
            _state.failure = _Failure(active.pk, now, message)
            if first_failure:
                _request_rebuild()
            raise IndexUnavailable(message) from exc
        loaded = LoadedIndex(version=active, index=index, files=_signature(_files_path(active)))
        _state.loaded, _state.failure, _state.damage = loaded, None, None
        object_sync.index_versions_prune_local(active.version)
        return loaded


def files_damage() -> FilesDamage | None:
    """Whether the files of the index this process serves are still sound on disk (raises IndexUnavailable).

    Cheap while they are unchanged; a change is validated in full, and a damage newly found asks the
    injected handler for a rebuild (which joins one already running).
    """
    loaded = current()
    files = _signature(_files_path(loaded.version))
    if files is not None and files == loaded.files:
        return None
    with _lock:
        damage = _state.damage
        if damage and damage.version_pk == loaded.version.pk and damage.files == files and damage.rebuild_job:
            return FilesDamage(damage.message, damage.rebuild_job)
        try:
            load_index_version(loaded.version)
            files = _signature(_files_path(loaded.version))  # a copy fetched again is sound, not damage
        except object_sync.SyncFailed:
            return None  # the store is unreachable: that says nothing about the index itself
        except IndexLoadError as exc:
            message = (
                f"The files of the live index (version {loaded.version.version}) are unusable; searches are served "
                f"from memory until the rebuild that was requested is live. {exc}"
            )
        else:
            loaded.files, _state.damage = files, None  # changed, but sound (e.g. restored from a backup)
            return None
    logger.error("%s", message)
    # Outside the lock: in the embedded mode the rebuild runs right here, in this thread.
    rebuild_job = _request_rebuild()
    _state.damage = _Damage(loaded.version.pk, files, message, rebuild_job)
    return FilesDamage(message, rebuild_job)


def reset() -> None:
    """Forget the loaded index (tests, or after the data dir changed)."""
    global _state
    with _lock:
        _state = _State()


def _signature(directory: Path) -> FileSignature:
    signature: list[int] = []
    for name in (INDEX_FILENAME, MANIFEST_FILENAME):
        try:
            stat = (directory / name).stat()
        except OSError:
            return None
        signature += [stat.st_ino, stat.st_size, stat.st_mtime_ns]
    return tuple(signature)


def _request_rebuild() -> int | None:
    """Ask the injected handler for a rebuild; the id of the job it returns, if any."""
    # A damaged or mismatched index is rebuilt from the stored embeddings, never served.
    if _damage_handler is None:
        logger.error("The live index is unusable and no damage handler is wired to rebuild it.")
        return None
    try:
        job = _damage_handler()
    except Exception:  # the database may be what is failing; the next check will try again
        logger.exception("Could not request a rebuild of the damaged index.")
        return None
    return getattr(job, "pk", None)
