"""Updates without rewriting the index: a base plus small segments, searched as one, compacted later.

Saving the whole index for every upload costs bytes in proportion to the collection (15.6 MB at 30k
vectors, ~137 MB at 1M with IVF-SQ8), and every reader must load all of it again. Instead an update
is a *segment*: a small file next to the base holding the vectors added and the ids removed. The
manifest lists the segments after the base (:mod:`vectorindex.files`), so a reader that has the base
loaded reads only the new segment files.

:class:`SegmentedIndex` is what searches run on: the base :class:`~vectorindex.index.VectorIndex`
plus, merged from all its segments, a *delta* (the vectors added since the base, searched exactly
with one matrix product) and the *hidden* base ids (removed, or replaced by a newer vector). A search
asks the base for its top-k with the hidden ids excluded (inside FAISS, like any filter) and the delta
for its top-k under the same filters, then merges the two lists by score. With the exact base kind
the answer is exactly what one index over the same vectors gives; with the approximate kind the
delta part is exact and the base part as good as the base's recall. Updates never mutate a
``SegmentedIndex``: :meth:`SegmentedIndex.with_segment` returns a new one sharing the base, so
searches running meanwhile keep a consistent view.

**Compaction** folds the segments into a new base (:meth:`SegmentedIndex.compacted`: a copy of the
base with the hidden ids removed and the delta added — no retraining, so for the exact kind it equals
a rebuild) that the caller saves as a new version. :func:`compaction_due` says when, by two limits:

* the delta (vectors added + ids hidden) exceeds ``max_delta_fraction`` (5 %) of the base, at least
  ``min_delta`` (1,000) and at most ``max_delta`` (50,000). Every query scans the delta exactly and
  excludes the hidden ids, so this bounds the extra work per query to a few per cent of the base (at
  most ~50k dot products, ~1 ms). Tied to the base's size, it also keeps the compaction's cost per
  added vector constant: writing a base of N vectors once per ~N/20 changes is ~20 base vectors'
  bytes per change, whatever N — until the 50k cap, which at 10M trades that for query speed.
* the number of segments reaches ``max_segments`` (256): each is a file a fresh process reads at
  start and an entry the manifest rewrites on every update, so their count is bounded too (the
  manifest stays under ~50 kB).

Crash safety: a segment file is complete and fsynced before the manifest that lists it replaces the
old one; a crash before leaves a file no manifest names (the next write of that number replaces it).
Compaction writes a whole new base elsewhere; until its caller activates it, base + segments serve.

One writer at a time per directory (the caller holds a lock); readers need no lock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from vectorindex.files import (
    INDEX_FILENAME,
    MANIFEST_FILENAME,
    IndexCorruptError,
    IndexManifest,
    IndexMissingError,
    SegmentEntry,
    read_manifest,
    read_segment_file,
    write_manifest,
    write_segment_file,
)
from vectorindex.index import VectorIndex, _check_ids_vectors, _padded

DEFAULT_MAX_SEGMENTS = 256
DEFAULT_MAX_DELTA_FRACTION = 0.05
DEFAULT_MIN_DELTA = 1_000
DEFAULT_MAX_DELTA = 50_000

_EMPTY_IDS = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Segment:
    """One update: vectors added (an id already present is replaced) and ids removed (removals apply first)."""

    added_ids: np.ndarray
    added_vectors: np.ndarray
    removed_ids: np.ndarray

    @classmethod
    def adding(cls, ids: np.ndarray, vectors: np.ndarray) -> Segment:
        """A segment that adds (or replaces) ``vectors`` under ``ids``."""
        ids = np.asarray(ids)
        vectors = np.asarray(vectors, dtype=np.float32)
        ids, vectors = _check_ids_vectors(ids, vectors, vectors.shape[1] if vectors.ndim == 2 else -1)
        return cls(ids, vectors, _EMPTY_IDS)

    @classmethod
    def removing(cls, ids: np.ndarray, *, dim: int) -> Segment:
        """A segment that removes ``ids``."""
        return cls(_EMPTY_IDS, np.empty((0, dim), dtype=np.float32), np.unique(np.asarray(ids, dtype=np.int64)))

    def apply_to(self, index: VectorIndex) -> None:
        """Make this change to an in-memory index (e.g. a new base that must also hold later segments)."""
        index.remove(self.removed_ids)
        index.add(self.added_ids, self.added_vectors)


class SegmentedIndex:
    """A base index plus the segments saved after it, searched as one index; see the module docstring."""

    def __init__(
        self,
        base: VectorIndex,
        manifest: IndexManifest,
        *,
        delta_ids: np.ndarray | None = None,
        delta_vectors: np.ndarray | None = None,
        hidden: np.ndarray | None = None,
    ) -> None:
        """Wrap a base and the state its segments left; use :func:`load` or :meth:`from_base`."""
        self.base = base
        self.manifest = manifest
        self._delta_ids = _EMPTY_IDS if delta_ids is None else delta_ids
        self._delta_vectors = np.empty((0, base.dim), np.float32) if delta_vectors is None else delta_vectors
        self._hidden = _EMPTY_IDS if hidden is None else hidden
        self._sorted_ids: np.ndarray | None = None

    @classmethod
    def from_base(cls, base: VectorIndex, manifest: IndexManifest) -> SegmentedIndex:
        """A base with no segments (just saved or loaded)."""
        return cls(base, dataclasses.replace(manifest, segments=()))

    # -- what it holds ----------------------------------------------------------------------------

    @property
    def segment_count(self) -> int:
        """Segments applied after the base."""
        return len(self.manifest.segments)

    @property
    def delta_size(self) -> int:
        """Vectors added since the base plus base ids hidden: the extra work each query does."""
        return len(self._delta_ids) + len(self._hidden)

    @property
    def ntotal(self) -> int:
        """Number of vectors searchable."""
        return self.base.ntotal - len(self._hidden) + len(self._delta_ids)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.base.dim

    @property
    def kind(self) -> str:
        """The base's kind: ``"flat"`` (exact) or ``"ivf_sq8"`` (approximate)."""
        return self.base.kind

    @property
    def recall_at_10(self) -> float | None:
        """The base's recall@10 measured at build time (``None`` for the exact kind)."""
        return self.base.recall_at_10

    def __repr__(self) -> str:
        return (
            f"SegmentedIndex(base={self.base!r}, segments={self.segment_count}, "
            f"delta={len(self._delta_ids)}, hidden={len(self._hidden)})"
        )

    def ids(self) -> np.ndarray:
        """All searchable ids, sorted (int64)."""
        if self._sorted_ids is None:
            kept = np.setdiff1d(self.base.ids(), self._hidden, assume_unique=True)
            self._sorted_ids = np.union1d(kept, self._delta_ids)
        return self._sorted_ids.copy()

    def contains(self, image_id: int) -> bool:
        """Whether ``image_id`` is searchable."""
        return bool(self._present(np.array([image_id], dtype=np.int64))[0])

    def _present(self, ids: np.ndarray) -> np.ndarray:
        in_delta = np.isin(ids, self._delta_ids)
        in_base = _members(self.base.ids(), ids) & ~np.isin(ids, self._hidden)
        return in_delta | in_base

    # -- updates (each returns a new index; this one is unchanged) -----------------------------------

    def with_segment(self, segment: Segment, entry: SegmentEntry | None = None) -> SegmentedIndex:
        """This index with ``segment`` applied (``entry``: its manifest entry, when saved)."""
        if segment.added_vectors.shape[1:] != (self.dim,):
            raise ValueError(f"segment vectors have shape {segment.added_vectors.shape}, index has dim {self.dim}")
        touched = np.concatenate([segment.removed_ids, segment.added_ids])
        keep = ~np.isin(self._delta_ids, touched)
        delta_ids = np.concatenate([self._delta_ids[keep], segment.added_ids])
        delta_vectors = np.concatenate([self._delta_vectors[keep], segment.added_vectors])
        hidden = np.union1d(self._hidden, touched[_members(self.base.ids(), touched)])
        segments = self.manifest.segments if entry is None else (*self.manifest.segments, entry)
        return SegmentedIndex(
            self.base,
            dataclasses.replace(self.manifest, segments=segments),
            delta_ids=delta_ids,
            delta_vectors=delta_vectors,
            hidden=hidden,
        )

    def compacted(self) -> VectorIndex:
        """A new base holding exactly what this index holds (the base is copied, not changed)."""
        index = VectorIndex(faiss.clone_index(self.base._index), recall_at_10=self.base.recall_at_10)
        index.remove(self._hidden)
        index.add(self._delta_ids, self._delta_vectors)
        return index

    # -- search ------------------------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed_ids: np.ndarray | None = None,
        exclude_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` over base and segments, as :meth:`VectorIndex.search` (same filters, padding, errors)."""
        if not len(self._hidden) and not len(self._delta_ids):
            return self.base.search(queries, k, allowed_ids=allowed_ids, exclude_ids=exclude_ids)
        excluded = None if exclude_ids is None else np.asarray(exclude_ids, np.int64).ravel()
        hide = self._hidden if excluded is None else np.concatenate([self._hidden, excluded])
        scores, ids = self.base.search(
            queries, k, allowed_ids=allowed_ids, exclude_ids=hide if len(hide) else None
        )  # validates queries and k
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        delta_scores, delta_ids = self._search_delta(queries, int(k), allowed_ids, excluded)
        merged_scores = np.concatenate([scores, delta_scores], axis=1)
        merged_ids = np.concatenate([ids, delta_ids], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, : int(k)]
        return np.take_along_axis(merged_scores, order, axis=1), np.take_along_axis(merged_ids, order, axis=1)

    def _search_delta(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None, excluded: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among the delta's vectors that pass the filters."""
        eligible = None
        if allowed_ids is not None:
            eligible = np.isin(self._delta_ids, np.asarray(allowed_ids, np.int64).ravel())
        if excluded is not None and len(excluded):
            kept = ~np.isin(self._delta_ids, excluded)
            eligible = kept if eligible is None else eligible & kept
        candidates = self._delta_ids if eligible is None else self._delta_ids[eligible]
        scores, ids = _padded(len(queries), k)
        if not len(candidates):
            return scores, ids
        vectors = self._delta_vectors if eligible is None else self._delta_vectors[eligible]
        similarity = queries @ vectors.T
        top = min(k, len(candidates))
        if top < len(candidates):
            best = np.argpartition(-similarity, top - 1, axis=1)[:, :top]
        else:
            best = np.broadcast_to(np.arange(top), similarity.shape)
        best_scores = np.take_along_axis(similarity, best, axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")
        scores[:, :top] = np.take_along_axis(best_scores, order, axis=1)
        ids[:, :top] = candidates[np.take_along_axis(best, order, axis=1)]
        return scores, ids


# -- on disk -----------------------------------------------------------------------------------------------


def save_segment(directory: Path, index: SegmentedIndex, segment: Segment) -> SegmentedIndex:
    """Save ``segment`` after the segments ``index`` holds, publish it in the manifest; return the updated index.

    ``index`` must be the directory's current state as the caller knows it (its base and its first
    ``index.segment_count`` segments). A manifest listing more (a writer that crashed before its caller
    recorded the segment) is overwritten: the segments after ``index``'s are dropped.
    ``IndexMissingError`` when the directory's base files are gone (the caller should rebuild).
    """
    directory = Path(directory)
    for name in (INDEX_FILENAME, MANIFEST_FILENAME):
        if not (directory / name).is_file():
            raise IndexMissingError(f"cannot add a segment to {directory}: its {name} is missing")
    for leftover in directory.glob(".*.tmp"):  # a crashed writer's; one writer at a time, so not in use
        leftover.unlink(missing_ok=True)
    updated = index.with_segment(segment)
    entry = write_segment_file(
        directory,
        index.segment_count + 1,
        added_ids=segment.added_ids,
        added_vectors=segment.added_vectors,
        removed_ids=segment.removed_ids,
        count=updated.ntotal,
    )
    updated.manifest = dataclasses.replace(index.manifest, segments=(*index.manifest.segments, entry))
    write_manifest(directory, updated.manifest)  # the commit point of the segment
    return updated


def load(
    directory: Path,
    *,
    segments: int | None = None,
    expected_model_version: str | None = None,
    expected_dim: int | None = None,
) -> SegmentedIndex:
    """Load a base and its first ``segments`` segments (all that the manifest lists when ``None``).

    Raises an ``IndexLoadError`` subclass when a file is missing, corrupt or not the one expected.
    """
    directory = Path(directory)
    base = VectorIndex.load(directory, expected_model_version=expected_model_version, expected_dim=expected_dim)
    manifest = read_manifest(directory)
    index = SegmentedIndex.from_base(base, manifest)
    return read_new_segments(directory, index, segments=segments, manifest=manifest)


def read_new_segments(
    directory: Path,
    index: SegmentedIndex,
    *,
    segments: int | None = None,
    manifest: IndexManifest | None = None,
) -> SegmentedIndex:
    """``index`` with the directory's segments after its own applied, up to ``segments`` in all.

    Reads the manifest and only the new segment files: what a process that has the base loaded
    does to catch up. ``IndexCorruptError`` if the manifest no longer describes ``index``'s base or
    lists fewer segments than asked for.
    """
    directory = Path(directory)
    manifest = manifest or read_manifest(directory)
    if manifest.sha256 != index.manifest.sha256:
        raise IndexCorruptError(f"the manifest in {directory} now describes another base index file")
    wanted = len(manifest.segments) if segments is None else segments
    if wanted > len(manifest.segments):
        raise IndexCorruptError(
            f"index manifest in {directory} lists {len(manifest.segments)} segments, expected at least {wanted}"
        )
    for entry in manifest.segments[index.segment_count : wanted]:
        index = index.with_segment(_read_segment(directory, entry, dim=index.dim), entry)
        if index.ntotal != entry.count:
            raise IndexCorruptError(
                f"segment {entry.name} in {directory} leaves {index.ntotal} vectors, "
                f"its manifest entry says {entry.count}"
            )
    return index


def read_segments(directory: Path, *, start: int, stop: int, dim: int) -> list[Segment]:
    """Segments ``start`` up to ``stop`` (0-based, as the manifest lists them), checked; an IndexLoadError otherwise."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if stop > len(manifest.segments):
        raise IndexCorruptError(
            f"index manifest in {directory} lists {len(manifest.segments)} segments, expected at least {stop}"
        )
    return [_read_segment(directory, entry, dim=dim) for entry in manifest.segments[start:stop]]


def _read_segment(directory: Path, entry: SegmentEntry, *, dim: int) -> Segment:
    return Segment(*read_segment_file(directory, entry, dim=dim))


def compaction_due(
    index: SegmentedIndex,
    *,
    max_segments: int = DEFAULT_MAX_SEGMENTS,
    max_delta_fraction: float = DEFAULT_MAX_DELTA_FRACTION,
    min_delta: int = DEFAULT_MIN_DELTA,
    max_delta: int = DEFAULT_MAX_DELTA,
) -> bool:
    """Whether the segments should be folded into a new base (the limits are explained in the module docstring)."""
    limit = min(max_delta, max(min_delta, max_delta_fraction * index.base.ntotal))
    return index.segment_count >= max_segments or index.delta_size >= limit


def _members(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` are in ``sorted_ids`` (binary search, no copy of the big array)."""
    positions = np.searchsorted(sorted_ids, ids)
    inside = positions < len(sorted_ids)
    found = np.zeros(len(ids), dtype=bool)
    found[inside] = sorted_ids[positions[inside]] == ids[inside]
    return found
