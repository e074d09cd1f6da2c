"""Benchmark GeoSim's pipeline on the real images, through the real services.

    python bench/bench_pipeline.py                      # embedded default: SQLite, in-process tasks
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/geosim_bench REDIS_URL=redis://127.0.0.1:6379/13 \\
        python bench/bench_pipeline.py                  # Postgres + a real Celery worker over Redis

Measures, in a fresh GEOSIM_DATA_DIR (a temp dir) and a fresh database:
1. import: `manage.py import_images` of the shared real images (22,800; extracted to a temp dir),
   with thumbnails, embedding and incremental indexing included (in-process), or until every
   processing job has succeeded on the worker (Redis);
2. re-embed + index: every stored embedding deleted, then `rebuild_index --wait` (the CNN runs
   again over every image, the index is built and swapped in);
3. search: `search.engine.search_by_bytes` (decode + embed + FAISS + rows) over 500 real query
   images, single-threaded, p50/p99 of its `took_ms`; and `search_by_image` (stored vector);
4. upload to searchable (Redis only): an image ingested, its job run by the worker, polled until
   the search finds it — 20 uploads, p50/max.
Results go to stdout and bench/results/pipeline_<sqlite|postgres>.json.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

_SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python 3.11.4+
REPO = Path(__file__).resolve().parent.parent
ARCHIVE = REPO.parent / "shared" / "data" / "geological_similarity-part1.tar.xz"
RESULTS = REPO / "bench" / "results"


def main() -> None:
    if not ARCHIVE.exists():
        sys.exit(f"{ARCHIVE} is absent: this benchmark needs the shared real images.")
    work = Path(tempfile.mkdtemp(prefix="geosim-bench-"))
    with tarfile.open(ARCHIVE) as tf:
        tf.extractall(work / "data", **_SAFE)
    dataset = work / "data" / "geological_similarity"
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ["GEOSIM_DATA_DIR"] = str(work / "var")
    os.environ["DJANGO_SETTINGS_MODULE"] = "geosim_site.settings"
    backend = "postgres" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    if backend == "postgres":
        _recreate_postgres_database(os.environ["DATABASE_URL"])
    sys.path.insert(0, str(REPO))

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    worker = _start_worker(work) if os.environ.get("REDIS_URL") else None
    try:
        results = {"backend": backend, "tasks": "celery worker (redis)" if worker else "in-process", **_machine()}
        results["import"] = _bench_import(dataset)
        results["reembed_and_index"] = _bench_reindex()
        results["search"] = _bench_search(dataset)
        if worker:
            results["upload_to_searchable"] = _bench_upload_to_searchable(dataset)
    finally:
        if worker:
            worker.terminate()
            worker.wait(timeout=30)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"pipeline_{backend}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")


def _machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def _recreate_postgres_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _start_worker(work: Path) -> subprocess.Popen:
    log = (work / "worker.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "geosim_site",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_jobs(kinds, timeout: float = 900) -> None:
    from search.models import Job

    deadline = time.monotonic() + timeout
    while Job.objects.filter(kind__in=kinds, status__in=["pending", "running"]).exists():
        if time.monotonic() > deadline:
            raise SystemExit("jobs did not finish in time")
        time.sleep(0.2)


def _bench_import(dataset: Path) -> dict:
    from django.core.management import call_command

    from search.models import Image, IndexVersion, Job

    started = time.perf_counter()
    call_command("import_images", str(dataset), "--no-progress")
    imported = time.perf_counter() - started
    _wait_jobs([Job.Kind.PROCESS])
    processed = time.perf_counter() - started
    failed = Job.objects.filter(status=Job.Status.FAILED).count()
    return {
        "images": Image.objects.count(),
        "import_seconds": round(imported, 2),
        "import_and_searchable_seconds": round(processed, 2),
        "index_vectors": IndexVersion.objects.get(is_active=True).vector_count,
        "failed_jobs": failed,
    }


def _bench_reindex() -> dict:
    from django.core.management import call_command

    from search.models import Embedding, IndexVersion

    Embedding.objects.all().delete()
    started = time.perf_counter()
    call_command("rebuild_index", "--wait", verbosity=0)
    seconds = time.perf_counter() - started
    active = IndexVersion.objects.get(is_active=True)
    return {
        "seconds": round(seconds, 2),
        "vectors": active.vector_count,
        "kind": active.kind,
        "images_per_second": round(active.vector_count / seconds, 1),
    }


def _bench_search(dataset: Path) -> dict:
    from search import engine
    from search.models import Image

    queries = sorted(dataset.rglob("*.jpg"))[::45][:500]
    payloads = [path.read_bytes() for path in queries]
    for data in payloads[:20]:
        engine.search_by_bytes(data, k=5)  # warm up: model and index loaded
    by_bytes = [engine.search_by_bytes(data, k=5).took_ms for data in payloads]
    ids = list(Image.objects.order_by("?").values_list("pk", flat=True)[:500])
    by_id = [engine.search_by_image(pk, k=5).took_ms for pk in ids]
    return {
        "queries": len(by_bytes),
        "by_bytes_ms": _percentiles(by_bytes),
        "by_image_id_ms": _percentiles(by_id),
    }


def _bench_upload_to_searchable(dataset: Path) -> dict:
    from PIL import Image as PILImage

    from search import engine
    from search.services.ingestion import image_ingest

    sources = sorted(dataset.rglob("*.jpg"))[7::997]
    latencies = []
    for i in range(20):
        # A new image each time: a real image, darkened (flips and rotations would not do: the
        # embedding is invariant to them, so the original would tie with the upload).
        picture = PILImage.open(sources[i % len(sources)]).convert("RGB").point(lambda v, f=0.8 + i / 100: v * f)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        data = buffer.getvalue()
        started = time.perf_counter()
        image, created = image_ingest(data=data, label="bench")
        assert created
        while True:
            answer = engine.search_by_bytes(data, k=3)
            if image.pk in {hit.image.pk for hit in answer.hits}:
                break
            if time.perf_counter() - started > 60:
                raise SystemExit("an uploaded image did not become searchable within 60 s")
            time.sleep(0.02)
        latencies.append((time.perf_counter() - started) * 1000)
    return {"uploads": len(latencies), "ms": _percentiles(latencies)}


def _percentiles(values: list[float]) -> dict:
    array = np.asarray(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p90": round(float(np.percentile(array, 90)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "max": round(float(array.max()), 3),
    }


if __name__ == "__main__":
    main()
