"""Filtered similarity search at scale: server time of a search whose metadata filter keeps 1 % of the images.

    createdb -h 127.0.0.1 -U postgres geosim_bench_filters
    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/geosim_bench_filters \
        python bench/bench_filters.py --n 100000

Fills the (empty, migrated) database with ``--n`` image rows whose metadata spreads evenly over 100
collections, 100 tags and 100 depth bands, so each single filter keeps 1 %; builds the live index
(exact kind, seeded random unit vectors keyed by the row ids) and times the engine's own answer path
(``search.engine._answer``: filter → ids from the database → exact search among them → rows), which is
what ``took_ms`` reports (the query embedding, ~1 ms, comes on top and does not depend on the filter).
Each filter also runs without the subset path (the IDSelector scan) for comparison. Results:
bench/results/filters_<n>.json. The rows are deleted at the end unless ``--keep`` (a later run reuses them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "geosim_site.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from search import engine  # noqa: E402
from search.filters import parse_filters  # noqa: E402
from search.live_index import LoadedIndex  # noqa: E402
from search.models import Image, IndexVersion, ModelVersion  # noqa: E402
from vectorindex import build_index  # noqa: E402
from vectorindex import index as index_module  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHIPPED = Path(__file__).resolve().parent.parent / "training" / "weights" / "default.pt"
FILTERS = {
    "collection (1 %)": {"collection": "site-042"},
    "tag (1 %)": {"tag": "t042"},
    "depth range (1 %)": {"depth_min": "4200", "depth_max": "4299.99"},
    "bbox (1 %)": {"bbox": "0,4.2,10,4.29"},
    "collection + depth (0.01 %)": {"collection": "site-042", "depth_min": "0", "depth_max": "99.99"},
    "none (unfiltered)": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the generated rows")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    if not Image.objects.exists():
        ids = _fill(args.n)
    elif Image.objects.count() == args.n and not Image.objects.exclude(file__startswith="bench/").exists():
        ids = _bench_ids()  # the rows a run with --keep left
    else:
        sys.exit("The database already holds other images: run this on an empty benchmark database.")
    if connection.vendor == "postgresql":  # fresh statistics, as autovacuum would gather after a real import
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE search_image")  # also flushes the GIN index's pending list
    fill_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.n, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # The shipped checkpoint: the answer path reads its calibration (the vectors themselves are random).
    model = ModelVersion.objects.create(name="bench", checkpoint=str(SHIPPED), checkpoint_sha256="-", embedding_dim=128)
    version = IndexVersion.objects.create(version=1, model_version=model, path="-", kind="flat", vector_count=args.n)
    loaded = LoadedIndex(version=version, index=build_index(ids, vectors))
    queries = rng.standard_normal((args.queries, 128)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    rows = {}
    for name, params in FILTERS.items():
        image_filter = parse_filters(params)
        matching = len(image_filter.matching_ids()) if image_filter else args.n
        rows[name] = {"matching": matching, "subset_path": _timed(loaded, queries, image_filter, args.k)}
        if image_filter:
            saved = index_module._SUBSET_RATIO
            index_module._SUBSET_RATIO = 10**12  # force the IDSelector scan
            rows[name]["selector_path"] = _timed(loaded, queries, image_filter, args.k)
            index_module._SUBSET_RATIO = saved
        print(name, json.dumps(rows[name]))

    result = {
        "n": args.n,
        "queries": args.queries,
        "k": args.k,
        "database": connection.vendor,
        "fill_seconds": round(fill_s, 1),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "filters": rows,
    }
    out = RESULTS_DIR / f"filters_{args.n}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    IndexVersion.objects.all().delete()
    ModelVersion.objects.all().delete()
    if not args.keep:
        Image.objects.all().delete()


def _fill(n: int) -> np.ndarray:
    batch = []
    for i in range(n):
        batch.append(
            Image(
                file=f"bench/{i}.jpg",
                sha256=f"{i:064x}",
                label=("gneiss", "schist", "marble", "andesite", "rhyolite", "quartzite")[i % 6],
                width=28,
                height=28,
                format="JPEG",
                byte_size=1000,
                collection=f"site-{(i // 7) % 100:03d}",
                tags=[f"t{(i // 3) % 100:03d}", "core"],
                depth_m=float(((i // 11) % 100) * 100 + (i % 100) * 0.5),
                latitude=float((i // 17) % 100) / 10,
                longitude=float((i // 13) % 100) / 10,
            )
        )
        if len(batch) == 5000:
            Image.objects.bulk_create(batch)
            batch = []
    Image.objects.bulk_create(batch)
    return _bench_ids()


def _bench_ids() -> np.ndarray:
    return np.fromiter(Image.objects.order_by("pk").values_list("pk", flat=True), dtype=np.int64)


def _timed(loaded, queries: np.ndarray, image_filter, k: int) -> dict:
    """Wall time (took_ms) and this process's CPU time per answer, plus the database's own execution
    time of the filter query (EXPLAIN ANALYZE): on a shared, overloaded host the wall time mostly
    measures waiting for a core, while CPU time + database time approximate an idle host's wall time."""
    times, cpu, counts = [], [], []
    for query in queries:
        started, cpu_started = time.perf_counter(), time.process_time()
        answer = engine._answer(
            loaded, query.reshape(1, -1), k=k, label=None, filters=image_filter, exclude=None, started=started
        )
        cpu.append((time.process_time() - cpu_started) * 1000)
        times.append(answer.took_ms)
        counts.append(len(answer.hits))
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3),
        "median_cpu_ms": round(statistics.median(cpu), 3),
        "db_execution_ms": _db_execution_ms(image_filter) if image_filter else 0.0,
        "min_results": min(counts),
    }


def _db_execution_ms(image_filter) -> float:
    sql, params = Image.objects.filter(image_filter.q()).values_list("pk", flat=True).query.sql_with_params()
    runs = []
    with connection.cursor() as cursor:
        for _ in range(20):
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
            runs.append(cursor.fetchone()[0][0]["Execution Time"])
    return round(statistics.median(runs), 3)


if __name__ == "__main__":
    main()
