"""The index this process searches: the active index version, loaded once and swapped when a newer one is live.

Each search asks :func:`current` for the index. At most every GEOSIM_INDEX_CHECK_MS milliseconds that
costs one indexed query for the active :class:`~search.models.IndexVersion` row; when it names another
version, the new files are loaded and validated (manifest, checksum, model version, dimension) before
they replace the old ones, so a process never serves a half-written or mismatched index.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from search.index import IndexLoadError, VectorIndex
from search.models import Image, IndexVersion

logger = logging.getLogger(__name__)


class IndexUnavailable(Exception):
    """No usable index: none built yet, or its files are missing or damaged. Searches answer 503."""


@dataclass
class LoadedIndex:
    version: IndexVersion
    index: VectorIndex
    _label_ids: dict[str, np.ndarray] = field(default_factory=dict)

    def ids_with_label(self, label: str) -> np.ndarray:
        """Image ids carrying a rock type (cached for the life of this index version)."""
        ids = self._label_ids.get(label)
        if ids is None:
            ids = np.fromiter(Image.objects.filter(label=label).values_list("pk", flat=True), dtype=np.int64)
            self._label_ids[label] = ids
        return ids


_lock = threading.Lock()
_state: dict[str, object] = {"loaded": None, "checked_at": 0.0, "failed": None}
_RETRY_FAILED_SECONDS = 5.0


def current() -> LoadedIndex:
    """The live index (reloaded if a newer version is active); raises IndexUnavailable."""
    loaded: LoadedIndex | None = _state["loaded"]  # type: ignore[assignment]
    now = time.monotonic()
    if loaded is not None and now - _state["checked_at"] < settings.GEOSIM_INDEX_CHECK_SECONDS:  # type: ignore[operator]
        return loaded
    active = IndexVersion.objects.filter(is_active=True).select_related("model_version").first()
    if active is None:
        raise IndexUnavailable("No index has been built yet: import images, then run `manage.py rebuild_index`.")
    if loaded is not None and loaded.version.pk == active.pk:
        _state["checked_at"] = now
        return loaded
    failed = _state["failed"]
    if failed and failed[0] == active.pk and now - failed[1] < _RETRY_FAILED_SECONDS:  # type: ignore[index]
        raise IndexUnavailable(failed[2])  # type: ignore[index]
    with _lock:
        loaded = _state["loaded"]  # type: ignore[assignment]
        if loaded is None or loaded.version.pk != active.pk:
            try:
                index = VectorIndex.load(
                    Path(active.path),
                    expected_model_version=str(active.model_version_id),
                    expected_dim=active.model_version.embedding_dim,
                )
            except IndexLoadError as exc:
                message = f"The search index (version {active.version}) is unusable; a rebuild has been started. {exc}"
                first_failure = not failed or failed[0] != active.pk  # type: ignore[index]
                _state["failed"] = (active.pk, now, message)
                if first_failure:
                    _request_rebuild()
                raise IndexUnavailable(message) from exc
            loaded = LoadedIndex(version=active, index=index)
            _state.update(loaded=loaded, failed=None)
        _state["checked_at"] = now
    return loaded


def reset() -> None:
    """Forget the loaded index (tests, or after the data dir changed)."""
    with _lock:
        _state.update(loaded=None, checked_at=0.0, failed=None)


def _request_rebuild() -> None:
    # A damaged or mismatched index is rebuilt from the stored embeddings, never served.
    from search.services.indexing import reindex_request

    try:
        reindex_request()
    except Exception:  # the database may be what is failing; the next search will try again
        logger.exception("Could not request a rebuild of the damaged index.")
