"""Load test over HTTP on loopback: concurrent searches under gunicorn, optionally while uploads and a reindex run.

    python bench/bench_http.py --prepare            # once: a 30k-image collection in a fresh database
    python bench/bench_http.py --clients 4 --seconds 30
    python bench/bench_http.py --clients 4 --seconds 30 --mixed

Bounded and local by construction: it only talks to 127.0.0.1, stops after --seconds (≤ 300) or
--max-requests, and stops the servers it started. Uses Postgres (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/geosim_bench_http) and, with --mixed, Redis (BENCH_REDIS_URL) and a
Celery worker. The collection: the 22,800 shared real images plus rotated re-encodings of them up to
--images (30,000), so the index holds 30k real-image embeddings.

Reports the server-side `took_ms` of each search answer (decode + embed + FAISS + rows) and the
client-side latency, both p50/p90/p99, throughput, and every non-200 status (the load test fails on
any error). Results: bench/results/http_<mode>.json.
"""

from __future__ import annotations

import argparse
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
REPO = Path(__file__).resolve().parent.parent
ARCHIVE = REPO.parent / "shared" / "data" / "geological_similarity-part1.tar.xz"
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/geosim-bench-http"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/geosim_bench_http")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
PORT = int(os.environ.get("BENCH_PORT", "8765"))


def environment(*, redis: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="geosim_site.settings",
        SECRET_KEY="bench-http-" + "x" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=DATABASE_URL,
        GEOSIM_DATA_DIR=str(WORK / "var"),
        GEOSIM_SEARCH_RATE="off",
        GEOSIM_UPLOAD_RATE="off",
    )
    if redis:
        env["REDIS_URL"] = REDIS_URL
    return env


def manage(*args: str, redis: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=environment(redis=redis), capture_output=True, text=True
    )
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def prepare(total: int) -> None:
    """A fresh database and data dir holding `total` real-image embeddings, indexed."""
    import psycopg
    from PIL import Image

    base, name = DATABASE_URL.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    shutil.rmtree(WORK, ignore_errors=True)
    with tarfile.open(ARCHIVE) as tf:
        tf.extractall(WORK / "data", **_SAFE)
    real = sorted((WORK / "data" / "geological_similarity").rglob("*.jpg"))
    extra = WORK / "data" / "rotated"
    for i, path in enumerate(real[: max(0, total - len(real))]):
        target = extra / path.parent.name / f"r{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").rotate(90).save(target)
    manage("migrate", "-v0")
    started = time.perf_counter()
    print(manage("import_images", str(WORK / "data"), "--no-progress").strip())
    print(f"imported and indexed in {time.perf_counter() - started:.1f} s")
    manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.filter(username='bench').exists() or User.objects.create_superuser('bench', '', 'bench-pw')",
    )
    token = manage("create_api_token", "bench").strip()
    (WORK / "token").write_text(token)


def start_server(workers: int, *, redis: bool) -> subprocess.Popen:
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
            "2",
            "--timeout",
            "120",
        ],
        cwd=REPO,
        env=environment(redis=redis),
        stdout=(WORK / "gunicorn.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    sys.exit("gunicorn did not become healthy; see " + str(WORK / "gunicorn.log"))


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


def search_client(queries: list[bytes], recorder: Recorder, stop: threading.Event, budget: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    rng = random.Random(threading.get_ident())
    while not stop.is_set():
        with recorder.lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        body, content_type = multipart({"k": "10"}, "q.jpg", rng.choice(queries))
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


def run(args: argparse.Namespace) -> dict:
    token = (WORK / "token").read_text().strip()
    queries = [p.read_bytes() for p in sorted((WORK / "data" / "geological_similarity").rglob("*.jpg"))[::97]]
    worker = None
    if args.mixed:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "geosim_site", "worker", "--pool", "solo", "--loglevel", "WARNING"],
            cwd=REPO,
            env=environment(redis=True),
            stdout=(WORK / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
    server = start_server(args.workers, redis=args.mixed)
    recorder, stop, budget = Recorder(), threading.Event(), [args.max_requests]
    try:
        for data in queries[:20]:  # warm every gunicorn worker's model and index
            body, content_type = multipart({}, "w.jpg", data)
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            connection.request("POST", "/api/v1/search/", body, {"Content-Type": content_type})
            connection.getresponse().read()
        threads = [
            threading.Thread(target=search_client, args=(queries, recorder, stop, budget)) for _ in range(args.clients)
        ]
        if args.mixed:
            sources = sorted((WORK / "data" / "geological_similarity").rglob("*.jpg"))[:500]
            threads.append(threading.Thread(target=writer, args=(recorder, stop, token, sources)))
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        stop.wait(min(args.seconds, 300))
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.perf_counter() - started
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
        "mode": "mixed (searches + uploads + a reindex)" if args.mixed else "searches only",
        "clients": args.clients,
        "gunicorn_workers": args.workers,
        "seconds": round(elapsed, 1),
        "searches": searches,
        "searches_per_second": round(searches / elapsed, 1),
        "server_took_ms": percentiles(recorder.took_ms),
        "client_latency_ms": percentiles(recorder.client_ms),
        "statuses": recorder.statuses,
        "uploads": len(recorder.other["uploads"]),
        "upload_statuses": sorted(set(recorder.other["uploads"])),
        "reindex_statuses": recorder.other["reindex"],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--images", type=int, default=30_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--mixed", action="store_true")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.images)
        return
    result = run(args)
    out = REPO / "bench" / "results" / f"http_{'mixed' if args.mixed else 'search'}_{args.clients}clients.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if result["errors"]:
        sys.exit(f"{result['errors']} errors under load")


if __name__ == "__main__":
    main()
