"""The FAISS vector index behind similarity search: build, search, update, save and load.

Part of the Django-free :mod:`vectorindex` package (numpy + faiss only), so it can be tested and
benchmarked without a database.

Vectors are the 128-d, L2-normalised image embeddings; the metric is inner product, which on unit
vectors is cosine similarity (higher is more similar). Ids are the caller's int64 image ids (GeoSim's
image primary keys), never positions: results carry them, and ``add``/``remove`` take them.

Two kinds of index, chosen by ``build_index`` from the number of vectors:

``"flat"`` (exact)
    ``IndexIDMap2(IndexFlatIP)``: every query is compared with every vector, results are exact.
    ``IndexIDMap2`` maps the caller's ids onto the flat index's positions and supports removal.
    A query over 30k vectors costs ~0.3 ms; memory is 512 bytes + ~24 bytes of id bookkeeping per vector.

``"ivf_sq8"`` (approximate, above ``exact_limit`` vectors)
    ``IndexIVFScalarQuantizer``: an inverted file of ``nlist`` spherical k-means cells, each vector
    stored as its residual to the cell centre, 8 bits per dimension (128 bytes) plus its 8-byte id:
    ~137 MB for 1M vectors instead of 512 MB once saved and loaded (a freshly built index holds
    ~30% more: spare capacity from growing the lists). A query scans only the ``nprobe`` nearest cells.
    The IVF stores the caller's ids natively (``add_with_ids``) and removes them with ``remove_ids``
    (a scan of all inverted lists, ~20 ms at 1M), so no id map is needed. ``nprobe`` is tuned at
    build time: it doubles until recall@10 against exact search, measured on a sample of the build's
    own vectors, reaches ``target_recall`` or stops improving; that recall is kept as ``recall_at_10``.
    Vectors added after the build are encoded against the build's cells and value ranges: vectors
    unlike the training data (e.g. from another model) lose accuracy to clipping, so rebuild after
    the collection has changed a lot (the recorded recall describes the build).
    Why this index and not HNSW or PQ: docs/PERFORMANCE.md, "FAISS index".

Search results are ``(scores, ids)`` arrays of shape ``(n, k)``, best first. Where fewer than ``k``
vectors are eligible (a small index, or a filter that admits fewer) a row is padded at the end with
id ``-1`` and score ``-inf``. Filters (``allowed_ids``, ``exclude_ids``) run inside FAISS through an
``IDSelector``, so a filtered search still returns exactly ``k`` results whenever ``k`` eligible
vectors exist: the exact kind sees every vector anyway (and for a selective filter skips the scan:
it gathers the allowed ids' vectors and takes their dot products directly). The approximate kind scales ``nprobe`` by
``ntotal / len(allowed_ids)`` so that it sees as many eligible vectors as an unfiltered query (a very
selective filter becomes a scan of every cell, exhaustive over the allowed ids' compressed codes),
and widens ``nprobe`` again, up to all cells, for any row that still came back short.

Threads: FAISS parallelises over queries, and waking an OpenMP team for a single query costs more
than it saves (1 thread is 3-5x faster for one query on a 2-core host). OpenMP keeps the count per OS
thread, so a threaded web server calls ``set_search_threads(1)`` once in each thread that searches (a
thread that never did searches on every core); batch jobs can use ``search_threads(n)`` around their work.

Concurrency: searches may run in parallel threads; ``add``/``remove``/``save`` must not overlap with
them (guard with a lock, or build a new index and swap the reference).

Files: ``save`` and ``load`` live in :mod:`vectorindex.files` (atomic writes, validated reads,
manifest); they are re-exported here with their errors.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np

from vectorindex.files import (  # noqa: F401 — the persistence API is re-exported from here
    INDEX_FILENAME,
    INDEX_FORMAT_VERSION,
    MANIFEST_FILENAME,
    IndexCorruptError,
    IndexLoadError,
    IndexManifest,
    IndexMismatchError,
    IndexMissingError,
    read_index_files,
    read_manifest,
    write_index_files,
)

KIND_EXACT = "flat"
KIND_APPROX = "ivf_sq8"

DEFAULT_TARGET_RECALL = 0.95
RECALL_SAMPLE_SIZE = 1000
_START_NPROBE = 8
_TRAIN_POINTS_PER_CELL = 64
_ADD_CHUNK = 100_000
# Above this many ids (and with ids small enough) a bitmap selector beats a hash set to build.
_BITMAP_MIN_IDS = 4096
_BITMAP_MAX_ID = 1 << 26
# The exact kind gathers the vectors of a filter's ids itself when it admits at most 1/_SUBSET_RATIO of
# the index (measured crossover with a selector scan: bench/bench_filters.py, docs/PERFORMANCE.md).
_SUBSET_RATIO = 50


def set_search_threads(n: int) -> int:
    """Set the calling thread's number of FAISS (OpenMP) threads (kept per OS thread); return the previous one."""
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    return previous


@contextlib.contextmanager
def search_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` FAISS threads, then restore the previous count (in the calling thread)."""
    previous = set_search_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class VectorIndex:
    """A FAISS inner-product index keyed by the caller's int64 ids; see the module docstring."""

    def __init__(self, index: faiss.Index, *, recall_at_10: float | None = None) -> None:
        """Wrap an index made by ``build_index`` or ``load``; not meant to be called directly."""
        self._index = index
        self._kind = _kind_of(index)
        self._recall_at_10 = recall_at_10
        self._sorted_ids: np.ndarray | None = None

    # -- properties -------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"ivf_sq8"`` (approximate)."""
        return self._kind

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._index.d)

    @property
    def ntotal(self) -> int:
        """Number of vectors in the index."""
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    @property
    def recall_at_10(self) -> float | None:
        """Recall@10 vs exact search measured at build time; ``None`` for the exact kind."""
        return self._recall_at_10

    @property
    def nprobe(self) -> int | None:
        """Cells scanned per query by the approximate kind (``None`` for exact)."""
        return int(self._index.nprobe) if self._kind == KIND_APPROX else None

    @property
    def nlist(self) -> int | None:
        """Number of IVF cells of the approximate kind (``None`` for exact)."""
        return int(self._index.nlist) if self._kind == KIND_APPROX else None

    def __repr__(self) -> str:
        extra = f", nlist={self.nlist}, nprobe={self.nprobe}" if self._kind == KIND_APPROX else ""
        return f"VectorIndex(kind={self._kind!r}, dim={self.dim}, ntotal={self.ntotal}{extra})"

    # -- ids ----------------------------------------------------------------------------------

    def ids(self) -> np.ndarray:
        """All ids in the index, sorted (int64); for consistency checks against the database."""
        if self._sorted_ids is None:
            if self._kind == KIND_EXACT:
                found = faiss.vector_to_array(self._index.id_map)
            else:
                invlists = self._index.invlists
                parts = [
                    faiss.rev_swig_ptr(invlists.get_ids(cell), invlists.list_size(cell)).copy()
                    for cell in range(invlists.nlist)
                    if invlists.list_size(cell)
                ]
                found = np.concatenate(parts) if parts else np.empty(0, np.int64)
            self._sorted_ids = np.sort(found.astype(np.int64, copy=False))
        return self._sorted_ids.copy()

    def contains(self, image_id: int) -> bool:
        """Whether ``image_id`` is in the index (binary search over a cached id list)."""
        if self._sorted_ids is None:
            self.ids()
        ids = self._sorted_ids
        pos = int(np.searchsorted(ids, image_id))
        return pos < len(ids) and int(ids[pos]) == int(image_id)

    # -- updates -------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids``; an id already present is replaced (removed, then added)."""
        ids, vectors = _check_ids_vectors(ids, vectors, self.dim)
        if not len(ids):
            return
        self._index.remove_ids(faiss.IDSelectorBatch(ids))
        self._index.add_with_ids(vectors, ids)
        self._sorted_ids = None

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (absent ones are ignored); return how many vectors were removed."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).ravel())
        if not len(ids) or not self.ntotal:
            return 0
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        if removed:
            self._sorted_ids = None
        return removed

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed_ids: np.ndarray | None = None,
        exclude_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of each query row: ``(scores float32 (n,k), ids int64 (n,k))``.

        ``allowed_ids`` restricts results to those ids; ``exclude_ids`` removes ids (e.g. the query
        image itself); both may be given. Rows with fewer than ``k`` eligible vectors are padded with
        id ``-1`` and score ``-inf``. ``ValueError`` on a wrong shape or dimension or ``k < 1``.
        """
        queries = self._check_queries(queries)
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        n = len(queries)

        allowed = None if allowed_ids is None else np.asarray(allowed_ids, np.int64).ravel()
        excluded = None if exclude_ids is None else np.asarray(exclude_ids, np.int64).ravel()
        if n == 0 or self.ntotal == 0:
            return _padded(n, k)

        keep_alive: list[object] = []
        n_allowed = None
        if allowed is not None:
            selector, n_allowed = _id_selector(allowed, keep_alive, minus=excluded)
            if not n_allowed:
                return _padded(n, k)
        elif excluded is not None and len(excluded):
            selector = faiss.IDSelectorNot(_id_selector(excluded, keep_alive)[0])
        else:
            selector = None

        if self._kind == KIND_EXACT and n_allowed is not None and n_allowed * _SUBSET_RATIO <= self.ntotal:
            scores, ids = self._search_subset(queries, k, allowed, excluded)
        elif self._kind == KIND_EXACT:
            params = None if selector is None else faiss.SearchParameters(sel=selector)
            scores, ids = _faiss_search(self._index, queries, k, params)
        else:
            scores, ids = self._search_ivf(queries, k, selector, n_allowed)
        del keep_alive

        scores = scores.astype(np.float32, copy=False)
        ids = ids.astype(np.int64, copy=False)
        scores[ids < 0] = -np.inf
        return scores, ids

    def _search_subset(
        self, queries: np.ndarray, k: int, allowed: np.ndarray, excluded: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search among a few ids: gather their vectors and take dot products.

        A selector costs one membership test per stored vector (~1 ms at 100k); a filter that admits
        a few per cent of them is answered faster by reconstructing just those vectors.
        Ids not in the index (not embedded yet, or deleted) are skipped.
        """
        candidates = np.unique(allowed)
        if excluded is not None and len(excluded):
            candidates = np.setdiff1d(candidates, excluded, assume_unique=False)
        if self._sorted_ids is None:
            self.ids()
        present = self._sorted_ids
        positions = np.searchsorted(present, candidates)
        inside = positions < len(present)
        inside[inside] = present[positions[inside]] == candidates[inside]
        candidates = candidates[inside]
        scores, ids = _padded(len(queries), k)
        if not len(candidates):
            return scores, ids
        vectors = self._index.reconstruct_batch(candidates)
        similarity = queries @ vectors.T
        top = min(k, len(candidates))
        for row in range(len(queries)):
            best = np.argpartition(-similarity[row], top - 1)[:top] if top < len(candidates) else np.arange(top)
            best = best[np.argsort(-similarity[row, best], kind="stable")]
            scores[row, :top] = similarity[row, best]
            ids[row, :top] = candidates[best]
        return scores, ids

    def _search_ivf(
        self, queries: np.ndarray, k: int, selector: faiss.IDSelector | None, n_allowed: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """IVF search that widens ``nprobe`` for rows that came back with fewer than ``k`` results."""
        index = self._index
        nlist = int(index.nlist)
        nprobe = int(index.nprobe)
        if n_allowed is not None and n_allowed < self.ntotal:
            # The k best allowed vectors lie ~ntotal/n_allowed times deeper in the ranking than
            # the k best overall, so scan that many more cells: the same number of *eligible*
            # vectors as an unfiltered query sees. A very selective filter thus becomes a scan of
            # every cell, which costs one selector check per stored id and one distance per allowed id.
            nprobe = max(nprobe, math.ceil(nprobe * self.ntotal / n_allowed))
        nprobe = min(nprobe, nlist)
        # Unfiltered, every vector is eligible; filtered, the eligible count is unknown, and a
        # scan of all cells is what proves a row short.
        wanted = min(k, self.ntotal) if selector is None else k

        scores, ids = _ivf_search(index, queries, k, nprobe, selector)
        while nprobe < nlist:
            short = np.flatnonzero((ids >= 0).sum(axis=1) < wanted)
            if not len(short):
                break
            nprobe = min(nlist, nprobe * 4)
            scores[short], ids[short] = _ivf_search(index, queries[short], k, nprobe, selector)
        return scores, ids

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        queries = np.asarray(queries)
        if queries.ndim != 2:
            raise ValueError(f"queries must be a 2-D array (n, {self.dim}), got shape {queries.shape}")
        if queries.shape[1] != self.dim:
            raise ValueError(f"query dimension mismatch: index has dim {self.dim}, queries have dim {queries.shape[1]}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if not np.isfinite(queries).all():
            raise ValueError("queries contain NaN or infinity")
        return queries

    # -- persistence ---------------------------------------------------------------------------

    def save(self, directory: Path, *, index_version: int, model_version: str) -> IndexManifest:
        """Write ``index.faiss`` and then ``manifest.json`` atomically into ``directory``.

        See :func:`vectorindex.files.write_index_files`: temp files, fsync, ``os.replace``, the
        manifest (with the file's checksum) last; a failure (a full disk) leaves an earlier save intact.
        """
        return write_index_files(
            self._index,
            Path(directory),
            index_version=index_version,
            model_version=model_version,
            kind=self._kind,
            recall_at_10=self._recall_at_10,
        )

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        expected_model_version: str | None = None,
        expected_dim: int | None = None,
    ) -> VectorIndex:
        """Load and validate an index saved by ``save``; raise an ``IndexLoadError`` subclass if unsound."""
        index, manifest, path = read_index_files(
            Path(directory), expected_model_version=expected_model_version, expected_dim=expected_dim
        )
        vector_index = cls(index, recall_at_10=manifest.recall_at_10)
        for what, expected, found in (
            ("kind", manifest.kind, vector_index.kind),
            ("dimension", manifest.dim, vector_index.dim),
            ("count", manifest.count, vector_index.ntotal),
        ):
            if expected != found:
                raise IndexCorruptError(
                    f"index file {path} disagrees with its manifest: {what} is {found!r}, manifest says {expected!r}"
                )
        return vector_index


def build_index(
    ids: np.ndarray,
    vectors: np.ndarray,
    *,
    exact_limit: int = 200_000,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    target_recall: float = DEFAULT_TARGET_RECALL,
) -> VectorIndex:
    """Build an index over ``vectors`` (n, d) float32, L2-normalised, keyed by unique int64 ``ids``.

    Up to ``exact_limit`` vectors: the exact ``"flat"`` kind. Above it: the approximate ``"ivf_sq8"``
    kind with ``nlist`` ~ sqrt(n) (a power of two), trained on a seeded sample, and ``nprobe`` tuned
    until recall@10 on a sample of the vectors reaches ``target_recall`` (or stops improving).
    ``progress``, if given, is called with the fraction done (0..1) as the build goes.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[1] < 1:
        raise ValueError(f"vectors must be a 2-D array (n, d), got shape {vectors.shape}")
    ids, vectors = _check_ids_vectors(ids, vectors, vectors.shape[1])
    report = progress or (lambda fraction: None)
    n, dim = vectors.shape
    report(0.0)

    if n <= exact_limit:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        _add_in_chunks(index, ids, vectors, report, 0.0, 1.0)
        report(1.0)
        return VectorIndex(index)

    nlist = _choose_nlist(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.spherical = True
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    n_train = min(n, nlist * _TRAIN_POINTS_PER_CELL)
    train = vectors if n_train == n else vectors[np.sort(rng.choice(n, n_train, replace=False))]
    index.train(train)
    report(0.3)
    _add_in_chunks(index, ids, vectors, report, 0.3, 0.8)

    vector_index = VectorIndex(index)
    sample = np.sort(rng.choice(n, min(n, RECALL_SAMPLE_SIZE), replace=False))
    truth = ids[faiss.knn(vectors[sample], vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)[1]]
    report(0.9)
    vector_index._recall_at_10 = _tune_nprobe(vector_index, vectors[sample], truth, target_recall)
    report(1.0)
    return vector_index


# -- helpers -----------------------------------------------------------------------------------


def _faiss_search(index: faiss.Index, queries: np.ndarray, k: int, params) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` with SearchParameters, robust to ``faiss.contrib.torch_utils``.

    Importing torch_utils (pytorch-metric-learning does, for its accuracy calculator) replaces
    ``Index.search`` with a torch-aware wrapper that drops the ``params`` argument and keeps FAISS's
    own numpy method as ``search_numpy``; call that one when it exists.
    """
    search = getattr(index, "search_numpy", None) or index.search
    return search(queries, k, params=params)


def _kind_of(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexIDMap2) and isinstance(faiss.downcast_index(index.index), faiss.IndexFlatIP):
        return KIND_EXACT
    if isinstance(index, faiss.IndexIVFScalarQuantizer) and index.metric_type == faiss.METRIC_INNER_PRODUCT:
        return KIND_APPROX
    raise ValueError(f"unsupported FAISS index type {type(index).__name__}")


def _check_ids_vectors(ids: np.ndarray, vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids)
    vectors = np.asarray(vectors)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D array, got shape {ids.shape}")
    if len(ids) and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"vector dimension mismatch: expected (n, {dim}), got shape {vectors.shape}")
    if len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
    if len(ids) and ids.min() < 0:
        raise ValueError("ids must be >= 0 (-1 marks padding in results)")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("ids must be unique within one call")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinity")
    return ids, vectors


def _add_in_chunks(
    index: faiss.Index,
    ids: np.ndarray,
    vectors: np.ndarray,
    report: Callable[[float], None],
    start: float,
    end: float,
) -> None:
    n = len(ids)
    for begin in range(0, n, _ADD_CHUNK):
        stop = min(n, begin + _ADD_CHUNK)
        index.add_with_ids(vectors[begin:stop], ids[begin:stop])
        report(start + (end - start) * stop / n)


def _choose_nlist(n: int) -> int:
    """About sqrt(n) cells (a power of two), with at least ~39 training points per cell."""
    nlist = 2 ** round(math.log2(math.sqrt(n)))
    return int(max(1, min(nlist, 8192, n // 39)))


def _tune_nprobe(index: VectorIndex, queries: np.ndarray, truth: np.ndarray, target: float) -> float:
    """Double ``nprobe`` until recall@10 reaches ``target`` or stops improving; return the recall."""
    ivf = index._index
    nprobe = min(_START_NPROBE, int(ivf.nlist))
    best = None
    while True:
        ivf.nprobe = nprobe
        recall = _recall(index.search(queries, truth.shape[1])[1], truth)
        if best is not None and recall < best[1] + 0.002:
            ivf.nprobe, recall = best
            break
        best = (nprobe, recall)
        if recall >= target or nprobe >= ivf.nlist:
            break
        nprobe = min(int(ivf.nlist), nprobe * 2)
    return float(recall)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(found, truth, strict=True))
    return hits / truth.size


def _id_selector(
    ids: np.ndarray, keep_alive: list[object], *, minus: np.ndarray | None = None
) -> tuple[faiss.IDSelector, int]:
    """A selector admitting ``ids`` but not ``minus``, and how many distinct ids it admits.

    Many small ids (Django primary keys) get a bitmap, built without sorting; others a hash set.
    ``keep_alive`` holds what FAISS only points to until the search is done.
    """
    if len(ids) >= _BITMAP_MIN_IDS and ids.min() >= 0 and ids.max() < _BITMAP_MAX_ID:
        mask = np.zeros(int(ids.max()) + 1, dtype=bool)
        mask[ids] = True
        if minus is not None:
            mask[minus[(minus >= 0) & (minus < len(mask))]] = False
        count = int(np.count_nonzero(mask))
        bitmap = np.packbits(mask, bitorder="little")
        keep_alive.append(bitmap)
        selector = faiss.IDSelectorBitmap(bitmap)
    else:
        ids = np.unique(ids) if minus is None else np.setdiff1d(ids, minus)
        count = len(ids)
        selector = faiss.IDSelectorBatch(ids)
    keep_alive.append(selector)
    return selector, count


def _ivf_search(
    index: faiss.Index, queries: np.ndarray, k: int, nprobe: int, selector: faiss.IDSelector | None
) -> tuple[np.ndarray, np.ndarray]:
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    if selector is not None:
        params.sel = selector
    return _faiss_search(index, np.ascontiguousarray(queries), k, params)


def _padded(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)
