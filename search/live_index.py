"""The index this process searches: the active index version, loaded once and kept up to date.

Each search asks :func:`current` for the index. At most every GEOSIM_INDEX_CHECK_MS milliseconds that
costs one indexed query for the active :class:`~search.models.IndexVersion` row. When it names another
version (a rebuild or a compaction), the new base and its segments are loaded and validated (manifest,
checksums, model version, dimension) before they replace the old ones, so a process never serves a
half-written or mismatched index. When it names the same version with more segments (uploads,
deletions), only the new segment files are read (:func:`vectorindex.read_new_segments`).

A process keeps serving the version it loaded from memory even if that version's files are later
deleted or damaged on disk; but other processes could not load it and incremental updates would fail.
:func:`files_damage` (asked by ``/healthz``) notices: it compares the base file's identity, size and
modification time with what was loaded (one ``stat`` call), validates the files fully only when those
changed, and reports a damage once per change to the injected handler, which requests a rebuild.
A new segment that cannot be read is reported the same way, and the process keeps serving what it has.

With object storage (``GEOSIM_STORAGE_URL=s3://...``) the files read are this machine's copy of the
version, brought up to date from the bucket first (:mod:`search.object_sync`); a store that cannot be
reached makes the index unavailable for now (or keeps the loaded one serving) without counting as damage.
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
from django.db.models import F

from search import object_sync, selectors
from search.models import Image, IndexVersion
from vectorindex import (
    INDEX_FILENAME,
    IndexLoadError,
    SegmentedIndex,
    load,
    read_new_segments,
)

logger = logging.getLogger(__name__)


class IndexUnavailable(Exception):
    """No usable index: none built yet, or its files are missing or damaged. Searches answer 503."""


FileSignature = tuple[int, ...] | None  # identity, size and mtime of the base index file


@dataclass
class LoadedIndex:
    version: IndexVersion
    index: SegmentedIndex
    files: FileSignature = None  # the base file as it was when loaded
    labels_changed: int = 0  # the version row's counter the cached label ids belong to
    _label_ids: dict[str, np.ndarray] = field(default_factory=dict)

    def ids_with_label(self, label: str) -> np.ndarray:
        """Image ids carrying a rock type (cached until a rock type changes, see :func:`labels_changed`)."""
        ids = self._label_ids.get(label)
        if ids is None:
            ids = np.fromiter(
                Image.objects.filter(label=label).values_list("pk", flat=True),
                dtype=np.int64,
            )
            self._label_ids[label] = ids
        return ids

    def forget_label_ids(self, labels_changed: int) -> None:
        self._label_ids = {}
        self.labels_changed = labels_changed


def labels_changed() -> None:
    """Call when rock types of existing images change: every process's cached label ids are dropped.

    This process forgets them at once; the others when they next check the active version row (at most
    GEOSIM_INDEX_CHECK_MS later), which carries the counter bumped here. Inside a transaction the bump
    becomes visible with the label change itself.
    """
    IndexVersion.objects.filter(is_active=True).update(labels_changed=F("labels_changed") + 1)
    loaded = _state.loaded
    if loaded is not None:
        # A value no check can read (the counter only grows): the next check drops them again, in case another
        # thread refilled them before this transaction committed.
        loaded.forget_label_ids(loaded.labels_changed - 1)


def load_index_version(version: IndexVersion) -> SegmentedIndex:
    """Load an index version: its base and recorded segments, checked against its model (raises IndexLoadError).

    With object storage the files are this machine's copy, fetched first when missing or behind (raises
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


def _load_files(version: IndexVersion) -> SegmentedIndex:
    return load(
        _local_files(version),
        segments=version.segments,
        expected_model_version=str(version.model_version_id),
        expected_dim=version.model_version.embedding_dim,
    )


def _local_files(version: IndexVersion) -> Path:
    """The version's directory on this machine, up to date with the bucket (object storage) or as recorded."""
    return object_sync.index_version_local(version.version, version.path)


def _files_path(version: IndexVersion) -> Path:
    return object_sync.index_version_path(version.version, version.path)


def _is_state_of(loaded: LoadedIndex | None, version: IndexVersion) -> bool:
    return loaded is not None and loaded.version.pk == version.pk and loaded.index.segment_count == version.segments


def _catch_up(loaded: LoadedIndex | None, version: IndexVersion) -> LoadedIndex:
    """``version`` loaded: only its new segments when ``loaded`` has its base, else base and all (IndexLoadError)."""
    if loaded is not None and loaded.version.pk == version.pk and loaded.index.segment_count < version.segments:
        index = read_new_segments(_local_files(version), loaded.index, segments=version.segments)
        return LoadedIndex(
            version=version,
            index=index,
            files=loaded.files,
            labels_changed=version.labels_changed,
        )
    index = load_index_version(version)
    return LoadedIndex(
        version=version,
        index=index,
        files=_signature(_files_path(version)),
        labels_changed=version.labels_changed,
    )


@dataclass
class _Failure:
    version_pk: int
    segments: int
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
    """The live index (caught up if a newer version or segment is active); raises IndexUnavailable."""
    loaded = _state.loaded
    now = time.monotonic()
    if loaded is not None and now - _state.checked_at < settings.GEOSIM_INDEX_CHECK_SECONDS:
        return loaded
    active = selectors.active_index_version()
    if active is None:
        raise IndexUnavailable("No index has been built yet: import images, then run `manage.py rebuild_index`.")
    if _is_state_of(loaded, active):
        if loaded.labels_changed != active.labels_changed:
            loaded.forget_label_ids(active.labels_changed)
        _state.checked_at = now
        return loaded
    same_base = loaded is not None and loaded.version.pk == active.pk
    failure = _state.failure
    failed_here = failure and (failure.version_pk, failure.segments) == (
        active.pk,
        active.segments,
    )
    if failed_here and now - failure.at < _RETRY_FAILED_SECONDS:
        if same_base:
            return loaded  # a newer segment is unreadable: keep serving what this process has
        raise IndexUnavailable(failure.message)
    with _lock:
        loaded = _state.loaded
        error = None
        if not _is_state_of(loaded, active):
            try:
                loaded = _catch_up_live(loaded, active)
            except object_sync.SyncFailed as exc:  # the store or the disk, not the index: no rebuild
                message = f"The search index (version {active.version}) cannot be fetched yet. {exc}"
                _state.failure = _Failure(active.pk, active.segments, now, message)
                if same_base and loaded is not None:
                    return loaded
                raise IndexUnavailable(message) from exc
            except IndexLoadError as exc:
                error = exc
                message = f"The search index (version {active.version}) is unusable; a rebuild has been started. {exc}"
                _state.failure = _Failure(active.pk, active.segments, now, message)
            else:
                _state.loaded, _state.failure, _state.damage = loaded, None, None
                object_sync.index_versions_prune_local(loaded.version.version)
        _state.checked_at = now
    if error is None:
        return loaded
    if not failed_here:
        logger.error("%s", message)
        # Outside the lock: in the embedded mode the rebuild, and the jobs it retries, run right here.
        _request_rebuild()
    if same_base and loaded is not None:
        return loaded  # a newer segment is unreadable: keep serving what this process has
    raise IndexUnavailable(message) from error


def _catch_up_live(loaded: LoadedIndex | None, active: IndexVersion) -> LoadedIndex:
    """:func:`_catch_up` to the active version; one superseded (and pruned) while loading gives way to the live one."""
    while True:
        try:
            return _catch_up(loaded, active)
        except IndexLoadError:
            newer = selectors.active_index_version()
            if newer is None or newer.pk == active.pk:
                raise
            # A busy process read the row just before newer versions went live and pruned this one:
            # not a damage; the live version is the one to load.
            active = newer


def index_for_update(version: IndexVersion) -> SegmentedIndex:
    """The index exactly as ``version`` records it (base and segments), to save a segment after; IndexLoadError.

    For writers holding the index lock, who read ``version`` under it. Reuses this process's loaded
    index (reading only segments it lacks), and keeps what it loads as this process's live index.
    """
    with _lock:
        loaded = _state.loaded
        if not _is_state_of(loaded, version):
            loaded = _catch_up(loaded, version)
            _state.loaded, _state.failure, _state.damage = loaded, None, None
            _state.checked_at = time.monotonic()
        return loaded.index


def install(version: IndexVersion, index: SegmentedIndex) -> None:
    """Serve ``index`` (a segment just committed by this process) without reading it back from disk."""
    with _lock:
        loaded = _state.loaded
        if loaded is not None and loaded.version.pk == version.pk and loaded.index.segment_count < index.segment_count:
            _state.loaded = LoadedIndex(
                version=version,
                index=index,
                files=loaded.files,
                labels_changed=version.labels_changed,
            )


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
            loaded.files, _state.damage = (
                files,
                None,
            )  # changed, but sound (e.g. restored from a backup)
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
    # The base file only: the manifest is rewritten by every segment, and each segment is checked when read.
    try:
        stat = (directory / INDEX_FILENAME).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


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
