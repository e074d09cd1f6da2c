"""Benchmark updates as segments against rewriting the whole index: bytes written and upload → searchable.

For each collection size, on seeded synthetic embeddings (bench_index's mixture; exact index up to
200k vectors, IVF-SQ8 above, as the service builds them), in a temporary directory:

* **whole rewrite** (what every upload did before segments): add one vector to the loaded index,
  save it as a new version, and load that version as a reader does — bytes written and seconds.
* **segment** (now): ``save_segment`` of one upload's vector (the writer), then
  ``read_new_segments`` in a reader that already holds base + earlier segments. Repeated for
  ``--uploads`` uploads; bytes written are the process's ``wchar`` (bytes passed to ``write``)
  during the writer's call. upload → searchable here = writer + reader catch-up; in the service add
  the embedding (~1 ms), the job's dispatch through Redis, and the poll interval
  (``GEOSIM_INDEX_CHECK_MS``, 500 ms by default: half of it on average).
* search p50 with the segments present against the base alone, and one compaction (time, bytes).

    python bench/bench_segments.py --quick                       # 2k and 20k vectors, ~20 s
    python bench/bench_segments.py --sizes 30000,1000000         # the figures in docs/PERFORMANCE.md

Writes bench/results/segments.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_index import machine, synthetic_embeddings  # noqa: E402

from vectorindex import (  # noqa: E402
    Segment,
    VectorIndex,
    build_index,
    compaction_due,
    load,
    read_new_segments,
    save_segment,
    search_threads,
)

RESULTS = Path(__file__).resolve().parent / "results" / "segments.json"
DIM = 128


def written_bytes() -> int:
    """Bytes this process has passed to write() so far (Linux /proc/self/io ``wchar``)."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def directory_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def measure(n: int, uploads: int, queries: int, workdir: Path) -> dict:
    """All figures for one collection size."""
    mixture = {"dim": DIM, "centres": 300, "spread": 0.6, "noise": 0.3, "seed": 0}
    vectors = synthetic_embeddings(n, stream=0, **mixture)
    ids = np.arange(1, n + 1, dtype=np.int64)
    fresh = synthetic_embeddings(uploads + 1, stream=1, **mixture)
    probes = synthetic_embeddings(queries, stream=2, **mixture)

    started = time.perf_counter()
    with search_threads(2):
        base = build_index(ids, vectors)
    build_s = time.perf_counter() - started
    base_dir = workdir / f"v{n}"
    base.save(base_dir, index_version=1, model_version="bench")
    result = {"n": n, "kind": base.kind, "build_s": round(build_s, 2), "base_bytes": directory_bytes(base_dir)}

    # Before: one upload = the whole index saved as a new version, and every reader loads it.
    before = written_bytes()
    started = time.perf_counter()
    base.add(np.array([n + 1], dtype=np.int64), fresh[:1])
    whole_dir = workdir / f"v{n}-whole"
    base.save(whole_dir, index_version=2, model_version="bench")
    write_s = time.perf_counter() - started
    whole_bytes = written_bytes() - before
    started = time.perf_counter()
    VectorIndex.load(whole_dir)
    reload_s = time.perf_counter() - started
    result["whole_rewrite"] = {
        "bytes_written_per_upload": whole_bytes,
        "writer_s": round(write_s, 4),
        "reader_reload_s": round(reload_s, 4),
        "upload_to_searchable_s": round(write_s + reload_s, 4),
    }
    shutil.rmtree(whole_dir)
    base.remove(np.array([n + 1], dtype=np.int64))

    # Now: one upload = one segment; a reader holding the base reads just that segment.
    writer = load(base_dir)
    reader = load(base_dir)
    per_upload = []
    for i in range(uploads):
        image_id = np.array([n + 2 + i], dtype=np.int64)
        before = written_bytes()
        started = time.perf_counter()
        writer = save_segment(base_dir, writer, Segment.adding(image_id, fresh[i + 1 : i + 2]))
        written = time.perf_counter() - started
        bytes_written = written_bytes() - before
        started = time.perf_counter()
        reader = read_new_segments(base_dir, reader)
        caught_up = time.perf_counter() - started
        assert reader.contains(int(image_id[0]))
        per_upload.append((bytes_written, written, caught_up))
    byte_counts = [b for b, _, _ in per_upload]
    writer_s = [w for _, w, _ in per_upload]
    reader_s = [r for _, _, r in per_upload]
    searchable = [w + r for _, w, r in per_upload]
    result["segment"] = {
        "uploads": uploads,
        "bytes_written_per_upload_first": byte_counts[0],
        "bytes_written_per_upload_last": byte_counts[-1],
        "bytes_written_per_upload_median": int(statistics.median(byte_counts)),
        "writer_p50_s": round(statistics.median(writer_s), 5),
        "reader_catch_up_p50_s": round(statistics.median(reader_s), 5),
        "upload_to_searchable_p50_s": round(statistics.median(searchable), 5),
        "upload_to_searchable_max_s": round(max(searchable), 5),
        "compaction_due_after": compaction_due(writer),
    }

    with search_threads(1):
        alone, merged = _p50_ms([base, reader], probes)
        result["search_p50_ms"] = {"base_alone": round(alone, 4), f"base_plus_{uploads}_segments": round(merged, 4)}
        if base.kind == "flat":  # a sanity check: base + segments answer as one index would
            assert np.array_equal(reader.search(probes, 10)[1], reader.compacted().search(probes, 10)[1])

    before = written_bytes()
    started = time.perf_counter()
    with search_threads(2):
        compacted = reader.compacted()
    compacted.save(workdir / f"v{n}-compacted", index_version=3, model_version="bench")
    result["compaction"] = {
        "segments": reader.segment_count,
        "seconds": round(time.perf_counter() - started, 3),
        "bytes_written": written_bytes() - before,
    }
    return result


def _p50_ms(indexes: list, probes: np.ndarray) -> list[float]:
    """Median single-query time of each index, the indexes taking turns so that they share any noise."""
    times: list[list[float]] = [[] for _ in indexes]
    for row in range(len(probes)):
        for index, spent in zip(indexes, times, strict=True):
            started = time.perf_counter()
            index.search(probes[row : row + 1], 10)
            spent.append(time.perf_counter() - started)
    return [statistics.median(spent) * 1000 for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="30000,1000000", help="comma-separated collection sizes")
    parser.add_argument("--uploads", type=int, default=50, help="uploads (one vector each) per size")
    parser.add_argument("--queries", type=int, default=500, help="queries for the search p50")
    parser.add_argument("--quick", action="store_true", help="small sizes and counts: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=None, help="where index files go (default: a temp dir)")
    args = parser.parse_args()
    sizes = [2_000, 20_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    uploads, queries = (10, 100) if args.quick else (args.uploads, args.queries)

    results = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for n in sizes:
            print(f"{n} vectors …", file=sys.stderr, flush=True)
            results.append(measure(n, uploads, queries, Path(tmp)))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {"machine": machine(), "quick": args.quick, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
