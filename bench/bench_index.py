"""Benchmark vectorindex on seeded synthetic embeddings: build time, memory, latency, recall.

    python bench/bench_index.py --n 30000
    python bench/bench_index.py --n 1000000

The data: ``--centres`` random unit centres in 128-d; each centre has its own random 16-d subspace.
A vector is its centre plus Gaussian noise of norm ~``--spread`` inside that subspace plus isotropic
Gaussian noise of norm ~``--noise``, then L2-normalised; like CNN embeddings, clusters with a low
intrinsic dimension. Queries are fresh draws from the same mixture (not indexed vectors).
Results go to stdout and to bench/results/index_<n>.json (``--out`` overrides).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vectorindex import build_index, search_threads  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def synthetic_embeddings(
    n: int, *, dim: int, centres: int, spread: float, noise: float, seed: int, stream: int
) -> np.ndarray:
    """``n`` unit vectors from the seeded mixture; ``stream`` picks independent draws (base, queries)."""
    rng = np.random.default_rng(seed)
    middles = rng.standard_normal((centres, dim)).astype(np.float32)
    middles /= np.linalg.norm(middles, axis=1, keepdims=True)
    sub = 16
    bases = rng.standard_normal((centres, sub, dim)).astype(np.float32) / np.sqrt(dim)

    draw = np.random.default_rng([seed, stream])
    labels = draw.integers(0, centres, n)
    x = middles[labels]
    x += noise * draw.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim)
    z = spread * draw.standard_normal((n, sub), dtype=np.float32) / np.sqrt(sub)
    for c in range(centres):
        rows = np.flatnonzero(labels == c)
        x[rows] += z[rows] @ bases[c]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def rss_bytes() -> int:
    """Resident set size of this process (Linux), after returning freed heap pages to the OS.

    Without the trim, a build could reuse pages freed by earlier steps and look smaller than it is.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "numpy": np.__version__,
    }


def load_in_fresh_process(directory: Path) -> dict:
    """Load time and RSS growth of ``VectorIndex.load`` in a new process: what a server holds."""
    code = f"""
import json, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from bench_index import rss_bytes
from vectorindex import VectorIndex
before = rss_bytes()
start = time.perf_counter()
index = VectorIndex.load({str(directory)!r})
seconds = time.perf_counter() - start
print(json.dumps({{"load_s": round(seconds, 2), "rss_delta_mb": round((rss_bytes() - before) / 1e6, 1)}}))
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean fraction of the true top-k found in the returned top-k."""
    return float(np.mean([len(np.intersect1d(a[:k], b[:k])) / k for a, b in zip(found, truth, strict=True)]))


def single_query_latency(index, queries: np.ndarray, k: int, threads: int, **filters) -> dict:
    """p50/p99 in ms of one-query searches, after a short warm-up."""
    with search_threads(threads):
        for q in queries[:20]:
            index.search(q[None, :], k, **filters)
        times = []
        for q in queries:
            start = time.perf_counter()
            index.search(q[None, :], k, **filters)
            times.append(time.perf_counter() - start)
    ms = np.array(times) * 1e3
    return {
        "threads": threads,
        "queries": len(ms),
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
    }


def time_updates(index, vectors: np.ndarray, ids: np.ndarray) -> dict:
    """Cost of incremental updates: one re-embedded image, and a batch of 1000 new images."""
    one_id, one_vector = ids[:1], vectors[:1]
    start = time.perf_counter()
    index.add(one_id, one_vector)  # a replacement: remove, then add
    replace_one_ms = (time.perf_counter() - start) * 1e3
    new_ids = ids[-1] + 1 + np.arange(1000)
    start = time.perf_counter()
    index.add(new_ids, vectors[:1000])
    add_1000_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    removed = index.remove(new_ids)
    remove_1000_ms = (time.perf_counter() - start) * 1e3
    assert removed == 1000
    return {
        "replace_one_ms": round(replace_one_ms, 2),
        "add_1000_ms": round(add_1000_ms, 2),
        "remove_1000_ms": round(remove_1000_ms, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30_000, help="indexed vectors")
    parser.add_argument("--queries", type=int, default=1000, help="query vectors (>= 1000 for p99)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--centres", type=int, default=300)
    parser.add_argument("--spread", type=float, default=0.6, help="in-cluster noise norm (16-d subspace)")
    parser.add_argument("--noise", type=float, default=0.3, help="isotropic noise norm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact-limit", type=int, default=200_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/index_<n>.json)")
    args = parser.parse_args(argv)

    load_start = round(os.getloadavg()[0], 2)
    shape = {"dim": args.dim, "centres": args.centres, "spread": args.spread, "noise": args.noise}
    t0 = time.perf_counter()
    vectors = synthetic_embeddings(args.n, seed=args.seed, stream=0, **shape)
    queries = synthetic_embeddings(args.queries, seed=args.seed, stream=1, **shape)
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    generate_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    truth = ids[faiss.knn(queries, vectors, args.k, metric=faiss.METRIC_INNER_PRODUCT)[1]]
    truth_s = time.perf_counter() - t0

    rss_before = rss_bytes()
    t0 = time.perf_counter()
    index = build_index(ids, vectors, exact_limit=args.exact_limit, seed=args.seed)
    build_s = time.perf_counter() - t0
    rss_delta = rss_bytes() - rss_before
    serialized = int(faiss.serialize_index(index._index).nbytes)

    with tempfile.TemporaryDirectory() as directory:
        t0 = time.perf_counter()
        index.save(Path(directory), index_version=1, model_version="bench")
        save_s = time.perf_counter() - t0
        loaded = load_in_fresh_process(Path(directory))

    latency = [single_query_latency(index, queries, args.k, threads) for threads in (1, 2)]

    with search_threads(os.cpu_count() or 1):
        t0 = time.perf_counter()
        _, found = index.search(queries, args.k)
        batch_s = time.perf_counter() - t0

    rng = np.random.default_rng(args.seed)
    filtered = {}
    for fraction in (0.1, 0.01):
        allowed = rng.choice(ids, max(args.k, int(args.n * fraction)), replace=False)
        inside = np.isin(ids, allowed)
        subset_truth = ids[inside][
            faiss.knn(queries[:200], vectors[inside], args.k, metric=faiss.METRIC_INNER_PRODUCT)[1]
        ]
        _, got = index.search(queries[:200], args.k, allowed_ids=allowed)
        filtered[f"allowed_{fraction:g}"] = {
            **single_query_latency(index, queries[:200], args.k, 1, allowed_ids=allowed),
            "recall_at_10": round(recall_at(got, subset_truth, args.k), 4),
            "always_k": bool((got >= 0).all()),
        }

    updates = time_updates(index, vectors, ids)

    result = {
        "n": args.n,
        "data": {**shape, "seed": args.seed, "queries": args.queries},
        "machine": machine(),
        "index": {
            "kind": index.kind,
            "nlist": index.nlist,
            "nprobe": index.nprobe,
            "recall_at_10_recorded_at_build": index.recall_at_10,
        },
        "generate_s": round(generate_s, 2),
        "exact_ground_truth_s": round(truth_s, 2),
        "build_s": round(build_s, 2),
        "serialized_mb": round(serialized / 1e6, 1),
        "rss_delta_mb": round(rss_delta / 1e6, 1),
        "save_s": round(save_s, 2),
        "fresh_process_load": loaded,
        "single_query": latency,
        "batch": {
            "threads": os.cpu_count(),
            "queries": args.queries,
            "seconds": round(batch_s, 4),
            "qps": round(args.queries / batch_s, 1),
        },
        "recall_at_5": round(recall_at(found, truth, 5), 4),
        "recall_at_10": round(recall_at(found, truth, 10), 4),
        "filtered": filtered,
        "updates": updates,
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
    }
    text = json.dumps(result, indent=2)
    print(text)
    out = args.out or RESULTS_DIR / f"index_{args.n}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
