"""FAISS index kinds at 1M and 10M vectors shaped like GeoSim's real embeddings.

    python bench/bench_scale.py --quick                 # 100k vectors, under a minute
    python bench/bench_scale.py --n 1000000             # a few minutes
    nohup python bench/bench_scale.py --n 10000000 --threads 2 > /tmp/scale_10m.log 2>&1 &

Measured per index kind: memory (file size, and the RSS growth of loading the file in a fresh process),
build time (train + add), recall@10 against exact search, the share of the top 10 with the query's rock
type, and single-query p50/p95 latency at one search thread, over a sweep of ``nprobe``.

Kinds:

``flat``
    Exact float32 inner product (``faiss.knn`` over the base array, what ``IndexFlatIP`` computes):
    the reference; its memory is computed (512 B per vector plus ids), not measured.
``ivf_sq8``
    GeoSim's own approximate kind, built by the project's ``build_index`` (``nlist`` ~ sqrt(n), 8-bit
    residuals, ``nprobe`` tuned at build time); its operating point is measured through
    ``VectorIndex.search``, the product's search path, and the sweep on the FAISS index inside it.
``ivf_sqfp16``, ``ivf_flat``, ``ivf_pq32`` (``--pq 32 16`` adds ``ivf_pq16``)
    On the same cells as ``ivf_sq8`` (its trained coarse quantizer, and every vector's cell computed
    once): residuals as 16-bit floats (256 B per vector); float32 vectors (512 B, up to
    ``--ivf-flat-max-n``: a second copy of the base in RAM); 8-bit PQ codes of 4-d (32 B) or 8-d (16 B)
    sub-vectors, codebooks trained on 256 x ``--pq-train-per-centroid`` vectors.
``ivf_sq8+rerank``, ``ivf_pq…+rerank``
    The same index asked for ``--rerank-factor`` x 10 candidates, re-scored exactly with the float
    originals: the codes stay in RAM, the originals (512 B per vector) may live on SSD (memory-mapped).

Data (``--noise``): the 28,498 real images are embedded once with the shipped model
(``training/weights/default.pt``) and cached in ``--cache`` (under /tmp, never in the repository).
``--queries`` of them, drawn at random, are held out as queries; the base set is generated from the
rest: each base vector is a random real embedding plus Gaussian noise with its rock type's own
covariance scaled by ``--noise`` (so the noise has the real within-class shape, ~2 effective
dimensions, and 5 % of its spread), re-normalised. Each base vector carries its seed's label.

Exact ground truth: brute force in chunks of 1M vectors (float32 top ``--candidates``), then re-scored in
float64. The real embeddings are tight: neighbours' cosines differ in the 6th-7th decimal, near float32's
resolution, so float32 exact search is not exact in its top-10 order; the float64 re-scoring is the
truth, and ``flat`` gets a recall below 1 against it.

Results are written after every stage to bench/results/scale_<n>.json (``--out``), with the 1-minute load
average sampled at each stage; a recall-latency plot goes beside it as PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_index import machine, rss_bytes  # noqa: E402

from vectorindex import build_index, search_threads  # noqa: E402

RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_CACHE = Path("/tmp/geosim-scalebench/real_embeddings.npz")
DEFAULT_DATA = Path("/tmp/geosim-data/geological_similarity")
DEFAULT_CHECKPOINT = ROOT / "training" / "weights" / "default.pt"
K = 10
GT_CHUNK = 1_000_000
GENERATE_CHUNK = 500_000
NPROBES = (1, 2, 4, 8, 16, 32, 64)
TARGET_RECALL = 0.95


# -- data ----------------------------------------------------------------------------------------


def real_embeddings(cache: Path, data_dir: Path, checkpoint: Path) -> tuple[np.ndarray, np.ndarray]:
    """The real images' embeddings and labels, embedded once and cached as npz."""
    if not cache.exists():
        from training.embed import embed_folder
        from training.inference import Embedder

        arrays = embed_folder(Embedder.from_checkpoint(checkpoint), data_dir)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "wb") as stream:
            np.savez(stream, **arrays)
    arrays = np.load(cache)
    return arrays["embeddings"].astype(np.float32), arrays["labels"]


def hold_out(
    embeddings: np.ndarray, labels: np.ndarray, n_queries: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(queries, query_classes, seeds, seed_classes, class_names)``: a random held-out split."""
    class_names, classes = np.unique(labels, return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(embeddings))
    queries, rest = order[:n_queries], order[n_queries:]
    return (
        np.ascontiguousarray(embeddings[queries]),
        classes[queries].astype(np.int8),
        np.ascontiguousarray(embeddings[rest]),
        classes[rest].astype(np.int8),
        [str(name) for name in class_names],
    )


def class_noise_factors(seeds: np.ndarray, seed_classes: np.ndarray) -> list[np.ndarray]:
    """Per class a matrix ``F`` with ``F @ F.T`` = the class's covariance (noise = ``z @ F.T``)."""
    factors = []
    for label in range(int(seed_classes.max()) + 1):
        values, vectors = np.linalg.eigh(np.cov(seeds[seed_classes == label].T))
        factors.append((vectors * np.sqrt(np.clip(values, 0, None))).astype(np.float32))
    return factors


def generate_base(
    n: int,
    seeds: np.ndarray,
    seed_classes: np.ndarray,
    factors: list[np.ndarray],
    *,
    noise: float,
    seed: int,
    progress: Callable[[str], None] = lambda message: None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors: a random seed plus ``noise`` x its class's covariance-shaped Gaussian noise."""
    rng = np.random.default_rng([seed, 1])
    vectors = np.empty((n, seeds.shape[1]), dtype=np.float32)
    classes = np.empty(n, dtype=np.int8)
    for begin in range(0, n, GENERATE_CHUNK):
        stop = min(n, begin + GENERATE_CHUNK)
        picked = rng.integers(0, len(seeds), stop - begin)
        chunk = vectors[begin:stop]
        chunk[:] = seeds[picked]
        classes[begin:stop] = seed_classes[picked]
        z = rng.standard_normal(chunk.shape, dtype=np.float32)
        for label, factor in enumerate(factors):
            rows = np.flatnonzero(seed_classes[picked] == label)
            chunk[rows] += noise * (z[rows] @ factor.T)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        progress(f"generated {stop:,}/{n:,}")
    return vectors, classes


# -- ground truth and quality --------------------------------------------------------------------


def exact_ground_truth(
    queries: np.ndarray, base: np.ndarray, *, candidates: int, progress: Callable[[str], None] = lambda m: None
) -> dict:
    """Exact top-``K`` by brute force: float32 top-``candidates`` in chunks, re-scored in float64.

    Returns ``truth`` (float64 top-K positions), ``float32_top`` (what exact float32 search returns) and
    ``certified``: the share of queries whose float64 10th score beats the float32 score of the last
    candidate by more than float32's error bound, so that no vector outside the candidates can belong.
    """
    n_queries = len(queries)
    best_scores = np.full((n_queries, 0), -np.inf, dtype=np.float32)
    best_ids = np.empty((n_queries, 0), dtype=np.int64)
    for begin in range(0, len(base), GT_CHUNK):
        stop = min(len(base), begin + GT_CHUNK)
        wanted = min(candidates, stop - begin)
        scores, ids = faiss.knn(queries, base[begin:stop], wanted, metric=faiss.METRIC_INNER_PRODUCT)
        best_scores = np.hstack([best_scores, scores])
        best_ids = np.hstack([best_ids, ids + begin])
        keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :candidates]
        best_scores = np.take_along_axis(best_scores, keep, axis=1)
        best_ids = np.take_along_axis(best_ids, keep, axis=1)
        progress(f"ground truth {stop:,}/{len(base):,}")
    exact = exact_scores(queries, base, best_ids)
    order = np.argsort(-exact, axis=1, kind="stable")
    truth = np.take_along_axis(best_ids, order[:, :K], axis=1)
    tenth = np.take_along_axis(exact, order[:, K - 1 : K], axis=1)[:, 0]
    # |float32 dot - exact| <= d * eps32 for unit vectors (a loose bound: the worst case of d roundings).
    bound = queries.shape[1] * np.finfo(np.float32).eps
    certified = float(np.mean(tenth > best_scores[:, -1] + bound)) if best_ids.shape[1] > K else 1.0
    return {"truth": truth, "float32_top": best_ids[:, :K], "certified": certified}


def exact_scores(queries: np.ndarray, base: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """float64 inner products of each query with the base vectors at ``ids`` (same row)."""
    scores = np.empty(ids.shape, dtype=np.float64)
    for row in range(len(queries)):
        scores[row] = base[ids[row]].astype(np.float64) @ queries[row].astype(np.float64)
    return scores


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the exact top-K found in the returned top-K."""
    hits = sum(len(np.intersect1d(a[a >= 0], b)) for a, b in zip(found[:, :K], truth, strict=True))
    return hits / truth.size


def same_label_at_k(found: np.ndarray, base_classes: np.ndarray, query_classes: np.ndarray) -> float:
    """Share of returned top-K results with the query's rock type (what a user sees)."""
    found = found[:, :K]
    same = base_classes[np.clip(found, 0, None)] == query_classes[:, None]
    return float(np.mean(same & (found >= 0)))


# -- index kinds ---------------------------------------------------------------------------------


def ivf_searcher(index: faiss.Index, base: np.ndarray, rerank_factor: int) -> Callable:
    """``search(queries, nprobe) -> ids (n, K)`` on an IVF index; with ``rerank_factor`` > 1 re-scored."""

    def search(queries: np.ndarray, nprobe: int) -> np.ndarray:
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        _, ids = index.search(queries, K * max(1, rerank_factor), params=params)
        if rerank_factor <= 1:
            return ids
        out = np.empty((len(queries), K), dtype=np.int64)
        for row, (query, candidates) in enumerate(zip(queries, ids, strict=True)):
            candidates = candidates[candidates >= 0]
            scores = base[candidates] @ query
            top = np.argsort(-scores)[:K]
            out[row] = np.pad(candidates[top], (0, K - len(top)), constant_values=-1)
        return out

    return search


def latency(search_one: Callable[[np.ndarray], object], queries: np.ndarray) -> dict:
    """p50/p95 in ms of one-query calls at one FAISS thread, after 10 warm-up calls.

    Wall-clock times, and the calling thread's CPU time: on a host shared with other work the wall
    clock includes the time the process waited for a core; the CPU time is what the search costs.
    """
    with search_threads(1):
        for query in queries[:10]:
            search_one(query[None, :])
        wall, cpu = [], []
        for query in queries:
            start, start_cpu = time.perf_counter(), time.thread_time()
            search_one(query[None, :])
            cpu.append(time.thread_time() - start_cpu)
            wall.append(time.perf_counter() - start)
    wall_ms, cpu_ms = np.array(wall) * 1e3, np.array(cpu) * 1e3
    return {
        "latency_queries": len(wall_ms),
        "p50_ms": round(float(np.percentile(wall_ms, 50)), 4),
        "p95_ms": round(float(np.percentile(wall_ms, 95)), 4),
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 4),
        "cpu_p95_ms": round(float(np.percentile(cpu_ms, 95)), 4),
    }


def sweep(
    search: Callable,
    nlist: int,
    queries: np.ndarray,
    latency_queries: np.ndarray,
    truth: np.ndarray,
    quality: Callable,
    nprobes: list[int],
) -> list[dict]:
    """Recall@10 (all queries, batched) and single-query latency (a subset) for each ``nprobe``."""
    points = []
    for nprobe in (p for p in nprobes if p <= nlist):
        found = search(queries, nprobe)
        points.append(
            {
                "nprobe": nprobe,
                "recall_at_10": round(recall_at_k(found, truth), 4),
                "same_label_at_10": round(quality(found), 4),
                **latency(lambda query, nprobe=nprobe: search(query, nprobe), latency_queries),
            }
        )
    return points


def operating_point(points: list[dict]) -> dict:
    """The cheapest ``nprobe`` reaching the target recall, else the one with the best recall."""
    reaching = [point for point in points if point["recall_at_10"] >= TARGET_RECALL]
    return reaching[0] if reaching else max(points, key=lambda point: point["recall_at_10"])


def fresh_process_rss(load_code: str) -> dict:
    """Seconds and RSS growth (MB) of running ``load_code`` (which binds ``index``) in a new process."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / "bench")!r})
import faiss
from bench_index import rss_bytes
before = rss_bytes()
start = time.perf_counter()
{load_code}
seconds = time.perf_counter() - start
print(json.dumps({{"load_s": round(seconds, 2), "rss_delta_mb": round((rss_bytes() - before) / 1e6, 1)}}))
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def fill_on_cells(
    index: faiss.Index, assignments: np.ndarray, vectors: np.ndarray, *, train_points: int, seed: int
) -> dict:
    """Train (codebooks only: the coarse quantizer is trained) and fill an IVF index on known cells.

    ``assignments`` are the vectors' coarse cells, computed once for all kinds that share the cells.
    """
    from faiss.contrib.ivf_tools import add_preassigned

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(vectors), min(len(vectors), train_points), replace=False))
    start = time.perf_counter()
    index.train(vectors[sample])
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    for begin in range(0, len(vectors), GENERATE_CHUNK):
        stop = min(len(vectors), begin + GENERATE_CHUNK)
        chunk_ids = np.arange(begin, stop)  # named: add_preassigned keeps only a raw pointer to it
        add_preassigned(index, vectors[begin:stop], assignments[begin:stop], ids=chunk_ids)
    add_s = time.perf_counter() - start
    return {"codebook_train_s": round(train_s, 2), "encode_add_s": round(add_s, 2)}


def kinds_on_cells(quantizer: faiss.Index, dim: int, args: argparse.Namespace) -> dict[str, tuple[str, int, Callable]]:
    """The kinds built on ivf_sq8's cells: name -> (description, bytes per vector, constructor)."""
    nlist, ip = quantizer.ntotal, faiss.METRIC_INNER_PRODUCT
    kinds = {
        "ivf_sqfp16": (
            "IndexIVFScalarQuantizer QT_fp16 (16-bit floats of the residuals), ivf_sq8's cells",
            2 * dim + 8,
            lambda: faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16, ip),
        )
    }
    if args.n <= args.ivf_flat_max_n:
        kinds["ivf_flat"] = (
            "IndexIVFFlat (float32 vectors in the cells), ivf_sq8's cells",
            4 * dim + 8,
            lambda: faiss.IndexIVFFlat(quantizer, dim, nlist, ip),
        )
    for m in args.pq:
        kinds[f"ivf_pq{m}"] = (
            f"IndexIVFPQ, {m} x 8-bit codes, ivf_sq8's cells",
            m + 8,
            lambda m=m: faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, ip),
        )
    return kinds


def cells_of_vectors(ivf: faiss.Index, n: int) -> np.ndarray:
    """The cell of each id ``0..n-1`` as stored in an IVF index's inverted lists (no search needed)."""
    cells = np.full(n, -1, dtype=np.int64)
    invlists = ivf.invlists
    for cell in range(invlists.nlist):
        size = invlists.list_size(cell)
        if size:
            cells[faiss.rev_swig_ptr(invlists.get_ids(cell), size)] = cell
    if (cells < 0).any():
        raise RuntimeError("some vectors are in no inverted list")
    return cells


def measure_ivf_sq8(
    run: Run, args: argparse.Namespace, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, quality: Callable
) -> tuple[faiss.Index, np.ndarray, float]:
    """GeoSim's own kind: built by ``build_index``, timed by phase through its progress callback.

    Returns the trained coarse quantizer, every vector's cell and the coarse training time: the kinds
    built next reuse the cells.
    """
    ids = np.arange(args.n, dtype=np.int64)
    latency_queries = queries[: args.latency_queries]
    marks: dict[float, float] = {}
    start = time.perf_counter()
    with search_threads(args.threads):
        index = build_index(
            ids, base, exact_limit=0, seed=args.seed, progress=lambda f: marks.setdefault(f, time.perf_counter())
        )
    build_s = time.perf_counter() - start
    phase = {f: round(t - start, 2) for f, t in sorted(marks.items())}
    train_s = phase.get(0.3, 0.0)
    add_end = max((t for f, t in phase.items() if f <= 0.8 + 1e-9), default=build_s)
    with tempfile.TemporaryDirectory(dir=args.cache.parent) as directory:
        index.save(Path(directory), index_version=1, model_version="bench")
        file_bytes = sum(path.stat().st_size for path in Path(directory).iterdir())
        loaded = fresh_process_rss(f"from vectorindex import VectorIndex\nindex = VectorIndex.load({directory!r})")
    faiss_index = index._index  # the FAISS index inside, for the nprobe sweep
    product = latency(lambda query: index.search(query, K), latency_queries)
    product_found = index.search(queries, K)[1]
    sq8 = {
        "description": "GeoSim's build_index (IndexIVFScalarQuantizer QT_8bit, inner product, spherical k-means)",
        "nlist": index.nlist,
        "bytes_per_vector": 128 + 8,
        "file_mb": round(file_bytes / 1e6, 1),
        "fresh_process_load": loaded,
        "build": {
            "total_s": round(build_s, 2),
            "coarse_train_s": train_s,
            "add_s": round(add_end - train_s, 2),
            "nprobe_tuning_s": round(build_s - add_end, 2),
        },
        "geosim_operating_point": {
            "nprobe": index.nprobe,
            "recall_at_10_recorded_at_build": index.recall_at_10,
            "recall_at_10": round(recall_at_k(product_found, truth), 4),
            "same_label_at_10": round(quality(product_found), 4),
            **product,
            "path": "VectorIndex.search",
        },
    }
    run.result["kinds"]["ivf_sq8"] = sq8
    sq8["sweep"] = sweep(
        ivf_searcher(faiss_index, base, 1), index.nlist, queries, latency_queries, truth, quality, args.nprobes
    )
    run.stage("ivf_sq8")
    run.result["kinds"]["ivf_sq8+rerank"] = {
        "description": f"ivf_sq8 asked for {args.rerank_factor}x10 candidates, re-scored with the float originals",
        "bytes_per_vector": 128 + 8,
        "originals_bytes_per_vector": 512,
        "sweep": sweep(
            ivf_searcher(faiss_index, base, args.rerank_factor),
            index.nlist,
            queries,
            latency_queries,
            truth,
            quality,
            args.nprobes,
        ),
    }
    run.stage("ivf_sq8+rerank")

    quantizer = faiss.clone_index(faiss.downcast_index(faiss_index.quantizer))
    return quantizer, cells_of_vectors(faiss_index, args.n), train_s


# -- the run -------------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress on stderr (the JSON goes to the results file)."""
    print(f"  {message}", file=sys.stderr, flush=True)


class Run:
    """The results document, written after every stage, with the load average at each stage."""

    def __init__(self, out: Path, result: dict) -> None:
        self.out = out
        self.result = result
        self.started = time.perf_counter()

    def stage(self, name: str) -> None:
        """Record a stage's end: time since start and the 1-minute load average; save."""
        self.result["stages"].append(
            {
                "stage": name,
                "at_s": round(time.perf_counter() - self.started, 1),
                "utc": datetime.now(UTC).strftime("%H:%M:%S"),
                "load_1m": round(os.getloadavg()[0], 2),
            }
        )
        self.save()
        print(f"[{self.result['stages'][-1]['at_s']:>7.1f} s] {name}", file=sys.stderr, flush=True)

    def save(self) -> None:
        """Write the JSON atomically (a reader never sees half a file)."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        partial = self.out.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.result, indent=2) + "\n")
        os.replace(partial, self.out)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, writing JSON (and a PNG) as it goes."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="base vectors")
    parser.add_argument("--quick", action="store_true", help="100k vectors, 300 queries: a check (< 1 CPU-minute)")
    parser.add_argument("--queries", type=int, default=500, help="held-out real embeddings used as queries")
    parser.add_argument("--latency-queries", type=int, default=200, help="single-query calls timed per point")
    parser.add_argument("--flat-latency-queries", type=int, default=None, help="default: as many as 20 s allow")
    parser.add_argument("--noise", type=float, default=0.05, help="noise scale, in units of the class spread")
    parser.add_argument("--candidates", type=int, default=256, help="float32 candidates re-scored in float64")
    parser.add_argument("--rerank-factor", type=int, default=10, help="candidates per result for +rerank")
    parser.add_argument(
        "--pq-train-per-centroid", type=int, default=40, help="PQ training points per codebook entry (x256)"
    )
    parser.add_argument("--pq", type=int, nargs="*", default=[32], help="IVF-PQ code sizes in bytes (e.g. 32 16)")
    parser.add_argument(
        "--ivf-flat-max-n", type=int, default=2_000_000, help="build ivf_flat (a second float copy) up to this n"
    )
    parser.add_argument("--nprobes", type=int, nargs="*", default=list(NPROBES), help="nprobe values swept")
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads for build and batch search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="npz of the real embeddings")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real images (to fill the cache)")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/scale_<n>.json)")
    parser.add_argument("--report", type=Path, default=None, help="only print a results JSON as a table, and plot it")
    args = parser.parse_args(argv)
    if args.report:
        result = json.loads(args.report.read_text())
        print(summary_table(result))
        plot(result, args.report.with_suffix(".png"))
        return result
    if args.quick:
        args.n, args.queries, args.latency_queries, args.pq_train_per_centroid = 100_000, 300, 100, 16
        args.nprobes = [1, 4, 16, 64]
    faiss.omp_set_num_threads(args.threads)
    out = args.out or RESULTS_DIR / f"scale_{args.n}.json"

    run = Run(
        out,
        {
            "n": args.n,
            "command": "python bench/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "started_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "complete": False,
            "machine": {**machine(), "threads": args.threads, "latency_threads": 1},
            "stages": [],
            "kinds": {},
        },
    )
    run.stage("start")

    embeddings, labels = real_embeddings(args.cache, args.data, args.checkpoint)
    queries, query_classes, seeds, seed_classes, class_names = hold_out(embeddings, labels, args.queries, args.seed)
    factors = class_noise_factors(seeds, seed_classes)
    start = time.perf_counter()
    base, base_classes = generate_base(
        args.n, seeds, seed_classes, factors, noise=args.noise, seed=args.seed, progress=log
    )
    run.result["data"] = {
        "method": "random real embedding + Gaussian noise with its class's covariance x noise, re-normalised",
        "real_embeddings": len(embeddings),
        "seeds": len(seeds),
        "held_out_queries": len(queries),
        "classes": class_names,
        "noise": args.noise,
        "seed": args.seed,
        "generate_s": round(time.perf_counter() - start, 1),
    }
    run.stage("generated")

    start = time.perf_counter()
    gt = exact_ground_truth(queries, base, candidates=args.candidates, progress=log)
    truth = gt["truth"]
    run.result["ground_truth"] = {
        "method": f"brute force in chunks of {GT_CHUNK:,}: float32 top {args.candidates}, re-scored in float64",
        "seconds": round(time.perf_counter() - start, 1),
        "certified_share": round(gt["certified"], 4),
        "exact_same_label_at_10": round(same_label_at_k(truth, base_classes, query_classes), 4),
    }
    run.stage("ground truth")

    def quality(found: np.ndarray) -> float:
        return same_label_at_k(found, base_classes, query_classes)

    latency_queries = queries[: args.latency_queries]

    # flat: the exact float32 search over the base array itself (no copy into an index).
    flat_n = args.flat_latency_queries or int(max(10, min(args.latency_queries, 20 / (args.n * 128 * 4 / 8e9))))
    run.result["kinds"]["flat"] = {
        "description": "exact float32 inner product (IndexFlatIP); memory computed, not measured",
        "bytes_per_vector": 512,
        "index_mb": round(args.n * 512 / 1e6, 1),
        "recall_at_10": round(recall_at_k(gt["float32_top"], truth), 4),
        "same_label_at_10": round(quality(gt["float32_top"]), 4),
        **latency(lambda query: faiss.knn(query, base, K, metric=faiss.METRIC_INNER_PRODUCT), queries[:flat_n]),
    }
    run.stage("flat")

    quantizer, assignments, train_s = measure_ivf_sq8(run, args, base, queries, truth, quality)
    nlist = quantizer.ntotal
    # PQ codebooks have 256 entries each; FAISS wants at least 39 training points per entry.
    train_points = min(args.n, 256 * args.pq_train_per_centroid)

    latency_queries = queries[: args.latency_queries]
    for name, (description, bytes_per_vector, make) in kinds_on_cells(quantizer, base.shape[1], args).items():
        index = make()
        with search_threads(args.threads):
            timings = fill_on_cells(index, assignments, base, train_points=train_points, seed=args.seed)
        with tempfile.TemporaryDirectory(dir=args.cache.parent) as directory:
            path = Path(directory) / "index.faiss"
            faiss.write_index(index, str(path))
            file_bytes = path.stat().st_size
            loaded = fresh_process_rss(f"index = faiss.read_index({str(path)!r})")
        run.result["kinds"][name] = {
            "description": description,
            "nlist": nlist,
            "bytes_per_vector": bytes_per_vector,
            "file_mb": round(file_bytes / 1e6, 1),
            "fresh_process_load": loaded,
            "build": {
                "total_s": round(train_s + timings["codebook_train_s"] + timings["encode_add_s"], 2),
                "coarse_train_s (shared with ivf_sq8)": train_s,
                "note": "cells taken from ivf_sq8; a standalone build adds their assignment (~ivf_sq8's add_s)",
                **timings,
            },
            "sweep": sweep(ivf_searcher(index, base, 1), nlist, queries, latency_queries, truth, quality, args.nprobes),
        }
        run.stage(name)
        if name.startswith("ivf_pq"):
            run.result["kinds"][f"{name}+rerank"] = {
                "description": f"{name} asked for {args.rerank_factor}x10 candidates, re-scored with float originals",
                "bytes_per_vector": bytes_per_vector,
                "originals_bytes_per_vector": 4 * base.shape[1],
                "sweep": sweep(
                    ivf_searcher(index, base, args.rerank_factor),
                    nlist,
                    queries,
                    latency_queries,
                    truth,
                    quality,
                    args.nprobes,
                ),
            }
            run.stage(f"{name}+rerank")
        del index

    for kind in run.result["kinds"].values():
        if "sweep" in kind:
            kind["operating_point"] = operating_point(kind["sweep"])
    run.result["rss_end_mb"] = round(rss_bytes() / 1e6, 1)
    run.result["complete"] = True
    run.stage("done")
    plot(run.result, out.with_suffix(".png"))
    return run.result


def summary_table(result: dict) -> str:
    """A markdown table: each kind at its operating point (GeoSim's tuned ``nprobe`` for ivf_sq8)."""
    lines = [
        "| kind | bytes/vector | file MB | RSS of a fresh load MB | build s | nprobe | recall@10 | same type@10 "
        "| p50 / p95 ms, CPU | p50 / p95 ms, wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, kind in result["kinds"].items():
        point = kind.get("geosim_operating_point") or kind.get("operating_point") or kind
        if "operating_point" not in kind and "sweep" in kind:
            point = operating_point(kind["sweep"])
        memory = f"{kind['bytes_per_vector']}" + (
            f" + {kind['originals_bytes_per_vector']} originals" if "originals_bytes_per_vector" in kind else ""
        )
        load = kind.get("fresh_process_load", {}).get("rss_delta_mb", "")
        build = kind.get("build", {}).get("total_s", "")
        lines.append(
            f"| {name} | {memory} | {kind.get('file_mb', kind.get('index_mb', ''))} | {load} | {build} "
            f"| {point.get('nprobe', '—')} | {point['recall_at_10']:.3f} | {point['same_label_at_10']:.3f} "
            f"| {point['cpu_p50_ms']:.2f} / {point['cpu_p95_ms']:.2f} | {point['p50_ms']:.2f} / {point['p95_ms']:.2f} |"
        )
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """Recall@10 against single-query p50 latency, one line per index kind (nprobe along each line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, kind in result["kinds"].items():
        if "sweep" in kind:
            points = kind["sweep"]
            axes.plot([p["cpu_p50_ms"] for p in points], [p["recall_at_10"] for p in points], marker="o", label=name)
            for p in points[:: max(1, len(points) // 4)]:
                axes.annotate(str(p["nprobe"]), (p["cpu_p50_ms"], p["recall_at_10"]), fontsize=7, alpha=0.7)
        elif name == "flat":
            axes.scatter([kind["cpu_p50_ms"]], [kind["recall_at_10"]], marker="*", s=120, color="black", label="flat")
    axes.set_xscale("log")
    axes.set_xlabel("single-query p50 CPU time, 1 thread (ms, log scale)")
    axes.set_ylabel("recall@10 vs exact (float64)")
    axes.set_title(f"{result['n']:,} vectors from real GeoSim embeddings (labels: nprobe)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
