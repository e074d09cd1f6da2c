"""Load test over HTTP on loopback: concurrent searches under gunicorn, beside the compute floor of one query.

    python bench/bench_http.py --prepare --images 24000   # once: 24k real images in a fresh database (~2 min)
    python bench/bench_http.py --clients 8 --seconds 30    # the measurement: bench/results/http_search_8clients.json
    python bench/bench_http.py --clients 2 --seconds 30 --mixed   # + uploads every 0.2 s and a reindex (Redis, worker)
    python bench/bench_http.py --quick                     # a smoke run: its own 2,000-image set, 4 clients, 5 s

    # the same measurement of another checkout's code (e.g. `git worktree add /tmp/http-before <commit>`),
    # served from the same database and data dir: bench/results/http_search_8clients_before.json
    python bench/bench_http.py --clients 8 --seconds 30 --repo /tmp/http-before --label before

Bounded and local by construction: it only talks to 127.0.0.1, stops after --seconds (≤ 300) or
--max-requests, and stops the servers it started. Uses Postgres (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/geosim_bench_http) and, with --mixed, Redis (BENCH_REDIS_URL) and a
Celery worker. The collection: --images real images taken evenly from the rock types of --data (default
/tmp/geosim-data/geological_similarity, else the shared archive), plus rotated re-encodings of them
when --images asks for more than there are.

Every run reports, side by side:
- ``compute_floor_ms``: what one query costs at the least, in one process with the server's thread settings
  (1 torch, 1 FAISS thread): decode the JPEG, embed it (CNN, with the model's test-time views), FAISS
  top-10; and ``engine_in_process_ms``, the whole ``search.engine.search_by_bytes`` (adds the rows of the
  answer from the database and the vote), measured just before the HTTP run;
- the server-side ``took_ms`` of each search answer, the client-side latency (p50/p90/p99), throughput,
  and every non-200 status (the load test fails on any error);
- the machine: cores, the 1-minute load average before and after the HTTP run (other work on the cores
  moves every figure), the served code's commit.
Results: bench/results/http_<mode>_<clients>clients[_<label>].json (--quick: under its work dir only).
"""

from __future__ import annotations

import argparse
import copy
import http.client
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np

_SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python 3.11.4+
BENCH_REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path("/tmp/geosim-data/geological_similarity")
ARCHIVE = BENCH_REPO.parent / "shared" / "data" / "geological_similarity-part1.tar.xz"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/geosim_bench_http")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
PORT = int(os.environ.get("BENCH_PORT", "8765"))
QUICK_IMAGES, QUICK_CLIENTS, QUICK_SECONDS = 2_000, 4, 5
FLOOR_QUERIES = 300  # timed single queries in-process (after 30 untimed)


class Setup:
    """Where a run's collection lives (database, data dir) and which checkout serves it."""

    def __init__(self, *, quick: bool, repo: Path) -> None:
        self.repo = repo
        self.work = Path(os.environ.get("BENCH_WORK", "/tmp/geosim-bench-http") + ("-quick" if quick else ""))
        self.database_url = DATABASE_URL + ("_quick" if quick else "")

    def environment(self, *, redis: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "REDIS_URL"}}
        env.update(
            DJANGO_SETTINGS_MODULE="geosim_site.settings",
            SECRET_KEY="bench-http-" + "x" * 40,
            ALLOWED_HOSTS="127.0.0.1",
            DATABASE_URL=self.database_url,
            GEOSIM_DATA_DIR=str(self.work / "var"),
            GEOSIM_SEARCH_RATE="off",
            GEOSIM_UPLOAD_RATE="off",
            PYTHONPATH=str(self.repo),
        )
        if redis:
            env["REDIS_URL"] = REDIS_URL
        return env

    def manage(self, *args: str, redis: bool = False, **extra_env: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.repo,
            env={**self.environment(redis=redis), **extra_env},
            capture_output=True,
            text=True,
        )
        if result.returncode:
            sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout


def real_images(data: Path | None, work: Path) -> list[Path]:
    """The real images to import: --data, else /tmp/geosim-data's copy, else the shared archive extracted."""
    if data is None and REAL_DATA.is_dir():
        data = REAL_DATA
    if data is None:
        with tarfile.open(ARCHIVE) as tf:
            tf.extractall(work / "extracted", **_SAFE)
        data = work / "extracted" / "geological_similarity"
    return sorted(data.rglob("*.jpg"))


def evenly(paths: list[Path], total: int) -> list[Path]:
    """Up to ``total`` paths, the same number from each rock type (parent folder), in name order."""
    by_type: dict[str, list[Path]] = {}
    for path in paths:
        by_type.setdefault(path.parent.name, []).append(path)
    chosen: list[Path] = []
    rank = 0
    while len(chosen) < total and any(rank < len(group) for group in by_type.values()):
        chosen += [group[rank] for group in by_type.values() if rank < len(group)][: total - len(chosen)]
        rank += 1
    return chosen


def prepare(setup: Setup, total: int, data: Path | None) -> None:
    """A fresh database and data dir holding `total` real-image embeddings, indexed."""
    import psycopg
    from PIL import Image

    base, name = setup.database_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    shutil.rmtree(setup.work, ignore_errors=True)
    real = real_images(data, setup.work)
    collection = setup.work / "data"
    for path in evenly(real, total):
        target = collection / "geological_similarity" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    for i, path in enumerate(real[: max(0, total - len(real))]):
        target = collection / "rotated" / path.parent.name / f"r{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").rotate(90).save(target)
    setup.manage("migrate", "-v0")
    started = time.perf_counter()
    # Inline jobs: the command returns with every image embedded; the rebuild makes one index of them all.
    print(setup.manage("import_images", str(collection), "--no-progress", GEOSIM_IN_PROCESS_JOBS="inline").strip())
    setup.manage("rebuild_index", "--wait", "-v0", GEOSIM_IN_PROCESS_JOBS="inline")
    print(f"imported and indexed in {time.perf_counter() - started:.1f} s")
    setup.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.filter(username='bench').exists() or User.objects.create_superuser('bench', '', 'bench-pw')",
    )
    token = setup.manage("create_api_token", "bench").strip()
    (setup.work / "token").write_text(token)


def query_files(setup: Setup) -> list[Path]:
    """Every 97th real image of the collection: the clients' queries (each one an indexed image)."""
    return sorted((setup.work / "data" / "geological_similarity").rglob("*.jpg"))[::97]


def compute_floor(setup: Setup) -> dict:
    """Run :func:`measure_floor` in a fresh process of the served checkout; its JSON result."""
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure-floor", str(setup.work)],
        cwd=setup.repo,
        env=setup.environment(redis=False),
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.exit(f"measuring the compute floor failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_floor(work: Path) -> None:
    """In-process, one query at a time, with the web process's thread settings: the stages of a search.

    Uses only what every version of the service has (decode_image, live_index.current, embedder,
    the index's search, engine.search_by_bytes), so another checkout's code is measured the same way.
    """
    import django

    sys.path.insert(0, os.getcwd())
    django.setup()
    import faiss
    import torch
    from django.conf import settings

    from search import embedder, engine, live_index
    from search.imaging import decode_image

    torch.set_num_threads(settings.GEOSIM_TORCH_THREADS)
    faiss.omp_set_num_threads(settings.GEOSIM_SEARCH_THREADS)
    queries = [path.read_bytes() for path in sorted((work / "data" / "geological_similarity").rglob("*.jpg"))[::97]]
    loaded = live_index.current()
    model_version = loaded.version.model_version
    stages: dict[str, list[float]] = {"decode": [], "embed": [], "faiss": [], "floor": [], "engine": []}
    # What the test-time views cost: the same model on the upright view alone (information only).
    one_view = copy.copy(embedder.get_embedder(model_version))
    one_view.tta = False
    one_view_ms: list[float] = []
    clock = time.perf_counter
    for i in range(30 + FLOOR_QUERIES):
        data = queries[i % len(queries)]
        t0 = clock()
        picture = decode_image(data, max_pixels=settings.GEOSIM_MAX_PIXELS).image
        t1 = clock()
        vector = embedder.embed_images(model_version, [picture])
        t2 = clock()
        loaded.index.search(vector, 10)
        t3 = clock()
        engine.search_by_bytes(data, k=10)
        t4 = clock()
        one_view.embed_images([picture])
        t5 = clock()
        if i >= 30:
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0, t4 - t3), strict=True):
                stages[name].append(seconds * 1000)
            one_view_ms.append((t5 - t4) * 1000)
    print(
        json.dumps(
            {
                "queries": FLOOR_QUERIES,
                "vectors": loaded.index.ntotal,
                "torch_threads": torch.get_num_threads(),
                "faiss_threads": faiss.omp_get_max_threads(),
                **{
                    f"{name}_ms": percentiles(values)
                    for name, values in stages.items()
                    if name not in {"floor", "engine"}
                },
                "embed_without_test_time_views_ms": percentiles(one_view_ms),
                "compute_floor_ms": percentiles(stages["floor"]),
                "engine_in_process_ms": percentiles(stages["engine"]),
            }
        )
    )


def start_server(
    setup: Setup, workers: int, threads: int, *, redis: bool, worker_class: str = "gthread"
) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "geosim_site.wsgi",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            worker_class,
            "--timeout",
            "120",
        ],
        cwd=setup.repo,
        env=setup.environment(redis=redis),
        stdout=(setup.work / "gunicorn.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300  # minutes on a loaded 2-core machine
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    sys.exit("gunicorn did not become healthy; see " + str(setup.work / "gunicorn.log"))


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = f"bench{random.getrandbits(64):x}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.took_ms: list[float] = []
        self.client_ms: list[float] = []
        self.statuses: dict[str, int] = {}
        self.other: dict[str, list[int]] = {"uploads": [], "reindex": []}

    def add(self, status: int, client_ms: float, took_ms: float | None) -> None:
        with self.lock:
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            if status == 200:
                self.client_ms.append(client_ms)
                self.took_ms.append(took_ms)


def search_client(
    requests: list[tuple[bytes, str]], recorder: Recorder, stop: threading.Event, budget: list[int]
) -> None:
    """One client: a keep-alive connection sending searches (k=10) back to back until stopped."""
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    rng = random.Random(threading.get_ident())
    while not stop.is_set():
        with recorder.lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        body, content_type = rng.choice(requests)
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/search/", body, {"Content-Type": content_type})
            response = connection.getresponse()
            payload = response.read()
            status = response.status
        except OSError:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
            status, payload = -1, b"{}"
        elapsed = (time.perf_counter() - started) * 1000
        took = json.loads(payload).get("took_ms") if status == 200 else None
        recorder.add(status, elapsed, took)


def writer(recorder: Recorder, stop: threading.Event, token: str, sources: list[Path]) -> None:
    """Uploads a new image every 0.2 s, and asks for one reindex after 2 s."""
    from PIL import Image

    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    headers = {"Authorization": f"Token {token}"}
    started, reindexed, i = time.monotonic(), False, 0
    while not stop.is_set():
        if not reindexed and time.monotonic() - started > 2:
            connection.request("POST", "/api/v1/index/rebuild/", b"", headers)
            response = connection.getresponse()
            response.read()
            recorder.other["reindex"].append(response.status)
            reindexed = True
        picture = Image.open(sources[i % len(sources)]).convert("RGB").rotate(180)
        picture.putpixel((0, 0), (i % 256, (i // 256) % 256, 99))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        body, content_type = multipart({"label": "bench"}, f"u{i}.png", buffer.getvalue())
        connection.request("POST", "/api/v1/images/", body, {**headers, "Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        recorder.other["uploads"].append(response.status)
        i += 1
        stop.wait(0.2)


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    array = np.asarray(values, dtype=float)
    return {p: round(float(np.percentile(array, int(p[1:]))), 3) for p in ("p50", "p90", "p99")} | {
        "max": round(float(array.max()), 3)
    }


def process_tree(root: int) -> list[int]:
    """``root`` and its child processes (gunicorn's master and workers)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            children.append(int(stat.parent.name))
    return [root, *children]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (from /proc; 0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def machine(repo: Path) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "",
    )
    return {"cores": os.cpu_count(), "cpu": cpu, "served_commit": commit.stdout.strip(), "served_repo": str(repo)}


def run(setup: Setup, args: argparse.Namespace) -> dict:
    token = (setup.work / "token").read_text().strip()
    # Bodies are built once: the clients share the 2 cores with the server, so they should cost little.
    requests = [multipart({"k": "10"}, "q.jpg", path.read_bytes()) for path in query_files(setup)]
    setup.manage("migrate", "-v0")  # a collection prepared by older code
    floor = compute_floor(setup)
    worker = None
    if args.mixed:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "geosim_site", "worker", "--pool", "solo", "--loglevel", "WARNING"],
            cwd=setup.repo,
            env=setup.environment(redis=True),
            stdout=(setup.work / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
    server = start_server(setup, args.workers, args.threads, redis=args.mixed, worker_class=args.worker_class)
    recorder, stop, budget = Recorder(), threading.Event(), [args.max_requests]
    try:
        for body, content_type in requests[:20] * 2:  # warm every gunicorn worker's model and index
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            connection.request("POST", "/api/v1/search/", body, {"Content-Type": content_type})
            connection.getresponse().read()
            connection.close()
        threads = [
            threading.Thread(target=search_client, args=(requests, recorder, stop, budget)) for _ in range(args.clients)
        ]
        if args.mixed:
            sources = query_files(setup)[:500]
            threads.append(threading.Thread(target=writer, args=(recorder, stop, token, sources)))
        load_before = os.getloadavg()[0]
        server_pids = process_tree(server.pid)
        server_cpu, client_cpu = cpu_seconds(server_pids), time.process_time()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        stop.wait(min(args.seconds, 300))
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.perf_counter() - started
        server_cpu, client_cpu = cpu_seconds(server_pids) - server_cpu, time.process_time() - client_cpu
        load_after = os.getloadavg()[0]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        if worker:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    searches = len(recorder.took_ms)
    errors = sum(n for status, n in recorder.statuses.items() if status != "200")
    errors += sum(1 for s in recorder.other["uploads"] if s not in (200, 201))
    errors += sum(1 for s in recorder.other["reindex"] if s != 202)
    return {
        "label": args.label,
        "mode": "mixed (searches + uploads + a reindex)" if args.mixed else "searches only",
        "images": floor["vectors"],
        "clients": args.clients,
        "gunicorn_workers": args.workers,
        "gunicorn_threads": args.threads,
        "gunicorn_worker_class": args.worker_class,
        "seconds": round(elapsed, 1),
        "searches": searches,
        "searches_per_second": round(searches / elapsed, 1),
        "server_took_ms": percentiles(recorder.took_ms),
        "client_latency_ms": percentiles(recorder.client_ms),
        # CPU time per search, whatever else the cores were doing: less sensitive to load than rates.
        "server_cpu_ms_per_search": round(server_cpu * 1000 / max(searches, 1), 3),
        "client_cpu_ms_per_search": round(client_cpu * 1000 / max(searches, 1), 3),
        "compute_floor": floor,
        "load_average_1min": {"before": round(load_before, 2), "after": round(load_after, 2)},
        "machine": machine(setup.repo),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "statuses": recorder.statuses,
        "uploads": len(recorder.other["uploads"]),
        "upload_statuses": sorted(set(recorder.other["uploads"])),
        "reindex_statuses": recorder.other["reindex"],
        "errors": errors,
    }


def summary_line(result: dict) -> str:
    floor = result["compute_floor"]
    return (
        f"{result['searches_per_second']} searches/s, server took_ms p50 {result['server_took_ms'].get('p50')} ms, "
        f"gunicorn CPU {result['server_cpu_ms_per_search']} ms/search; "
        f"compute floor p50 {floor['compute_floor_ms']['p50']} ms (decode {floor['decode_ms']['p50']} + embed "
        f"{floor['embed_ms']['p50']} + FAISS {floor['faiss_ms']['p50']}), engine in-process p50 "
        f"{floor['engine_in_process_ms']['p50']} ms; load average {result['load_average_1min']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="build the collection (a fresh database and data dir)")
    parser.add_argument("--images", type=int, default=24_000, help="collection size for --prepare")
    parser.add_argument("--data", type=Path, help="folder of real images (class = parent folder) for --prepare")
    parser.add_argument("--quick", action="store_true", help="smoke run: its own small collection, 4 clients, 5 s")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker")
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (sync: no keep-alive)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--mixed", action="store_true")
    parser.add_argument("--repo", type=Path, default=BENCH_REPO, help="the checkout whose code is served")
    parser.add_argument("--label", default="", help="suffix of the result file, e.g. before")
    parser.add_argument("--measure-floor", type=Path, help=argparse.SUPPRESS)  # internal: see compute_floor
    args = parser.parse_args()
    if args.measure_floor:
        measure_floor(args.measure_floor)
        return
    setup = Setup(quick=args.quick, repo=args.repo.resolve())
    if args.quick:
        args.clients, args.seconds = min(args.clients, QUICK_CLIENTS), min(args.seconds, QUICK_SECONDS)
        if args.prepare or not (setup.work / "token").exists():
            prepare(setup, QUICK_IMAGES, args.data)
    elif args.prepare:
        prepare(setup, args.images, args.data)
        return
    result = run(setup, args)
    name = f"http_{'mixed' if args.mixed else 'search'}_{args.clients}clients{'_' + args.label if args.label else ''}"
    out = setup.work / "result.json" if args.quick else BENCH_REPO / "bench" / "results" / f"{name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(summary_line(result))
    print(f"written to {out}")
    if result["errors"]:
        sys.exit(f"{result['errors']} errors under load")


if __name__ == "__main__":
    main()
