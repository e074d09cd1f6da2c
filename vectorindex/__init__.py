"""GeoSim's vector index: FAISS over L2-normalised embeddings keyed by int64 ids, without Django.

Like :mod:`training`, this package imports only numpy and faiss, so it can be used, tested and
benchmarked without a database (tests/vectorindex/, bench/bench_index.py). The Django app keeps what
needs Django — which version is live, locks, jobs (search/live_index.py, search/services/indexing.py).

The interface:

``build_index(ids, vectors, *, exact_limit=…) -> VectorIndex``
    Exact (``"flat"``) up to ``exact_limit`` vectors, approximate (``"ivf_sq8"``) above.
``VectorIndex.add(ids, vectors)`` / ``VectorIndex.remove(ids)``
    In-memory updates; re-adding an id replaces its vector.
``VectorIndex.search(queries, k, *, allowed_ids=None, exclude_ids=None) -> (scores, ids)``
    Top-k by cosine; filters run inside FAISS, rows padded with id -1 / score -inf.
``VectorIndex.save(directory, *, index_version, model_version)`` / ``VectorIndex.load(directory, …)``
    Atomic writes (temp file, fsync, rename, manifest last) and validated reads that raise an
    ``IndexLoadError`` subclass (missing, corrupt, mismatch) rather than return a bad index.
``saved_files(directory)``
    The files a saved index consists of, the manifest last: what to copy to keep or ship it whole.

Updates without rewriting the index (:mod:`vectorindex.segments`):

``segments.load(directory, *, segments=None, …) -> SegmentedIndex``
    A base and the segments saved after it, searched as one index (same ``search`` as above).
``segments.save_segment(directory, index, Segment.adding(ids, vectors) | Segment.removing(ids, dim=…))``
    Writes one small segment file and then the manifest that lists it; returns the updated index.
``segments.read_new_segments(directory, index, *, segments=None)``
    Catches a loaded index up by reading only the segment files it has not seen.
``SegmentedIndex.compacted() -> VectorIndex`` and ``segments.compaction_due(index)``
    Folds the segments into a new base (saved as a new version by the caller), and says when;
    ``read_segments`` and ``Segment.apply_to`` bring segments saved meanwhile into that new base.

Modules: :mod:`vectorindex.index` (the FAISS index and its design note), :mod:`vectorindex.files`
(the on-disk format), :mod:`vectorindex.segments` (base + segments, compaction).
"""

from vectorindex.files import (
    INDEX_FILENAME,
    INDEX_FORMAT_VERSION,
    MANIFEST_FILENAME,
    IndexCorruptError,
    IndexLoadError,
    IndexManifest,
    IndexMismatchError,
    IndexMissingError,
    read_manifest,
    saved_files,
)
from vectorindex.index import (
    KIND_APPROX,
    KIND_EXACT,
    VectorIndex,
    build_index,
    search_threads,
    set_search_threads,
)
from vectorindex.segments import (
    Segment,
    SegmentedIndex,
    compaction_due,
    load,
    read_new_segments,
    read_segments,
    save_segment,
)

__all__ = [
    "INDEX_FILENAME",
    "INDEX_FORMAT_VERSION",
    "KIND_APPROX",
    "KIND_EXACT",
    "MANIFEST_FILENAME",
    "IndexCorruptError",
    "IndexLoadError",
    "IndexManifest",
    "IndexMismatchError",
    "IndexMissingError",
    "Segment",
    "SegmentedIndex",
    "VectorIndex",
    "build_index",
    "compaction_due",
    "load",
    "read_manifest",
    "read_new_segments",
    "read_segments",
    "save_segment",
    "saved_files",
    "search_threads",
    "set_search_threads",
]
