"""Embedding projections for the explorer page: computed by a job, cached as a file per index version.

A projection is the live index's vectors reduced to 3-D (``training.projection.project``, PCA or
t-SNE), subsampled to at most :data:`MAX_POINTS` (t-SNE: :data:`MAX_TSNE_POINTS`; it costs about half a
minute per thousand points in 3-D), written once as gzipped JSON under ``GEOSIM_DATA_DIR/projections`` named by index
version and method, and served as an immutable file. Coordinates are scaled per axis and quantised to
integers in ±:data:`SCALE`, so 30,000 points travel in about 250 kB.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from search.access import may_curate
from search.models import Image, IndexVersion, Job
from search.services.indexing import stored_vectors
from search.services.jobs import JobProgress, job_create

METHODS = ("pca", "tsne")
MAX_POINTS = 30_000
MAX_TSNE_POINTS = 5_000  # 3-D Barnes-Hut t-SNE: about 2 minutes for 5,000 points on 2 CPU cores
SCALE = 1000
FORMAT = 1
KEEP_PER_METHOD = 3
_OPEN = (Job.Status.PENDING, Job.Status.RUNNING)
_NAME_RE = re.compile(r"^v(\d{7})-([a-z]+)\.json\.gz$")


@dataclass(frozen=True)
class CachedProjection:
    index_version: int
    method: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def projections_dir() -> Path:
    return Path(settings.GEOSIM_DATA_DIR) / "projections"


def projection_path(index_version: int, method: str) -> Path:
    """Where the projection of an index version by a method is cached."""
    return projections_dir() / f"v{index_version:07d}-{method}.json.gz"


def projection_cached(*, method: str, index_version: int | None = None) -> CachedProjection | None:
    """The cached projection of that index version, or the newest older one when ``index_version`` is None."""
    directory = projections_dir()
    if index_version is not None:
        path = projection_path(index_version, method)
        return CachedProjection(index_version, method, path) if path.exists() else None
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = _NAME_RE.match(path.name)
            if match and match.group(2) == method:
                found.append(CachedProjection(int(match.group(1)), method, path))
    return max(found, key=lambda cached: cached.index_version, default=None)


def projection_by_name(name: str) -> CachedProjection | None:
    """The cached projection a file name (as in its URL) stands for, if it exists."""
    match = _NAME_RE.match(name)
    if not match:
        return None
    return projection_cached(method=match.group(2), index_version=int(match.group(1)))


def projection_bytes(cached: CachedProjection, *, gzipped: bool = True) -> bytes:
    """The file's JSON, gzipped as stored or decompressed."""
    data = cached.path.read_bytes()
    return data if gzipped else gzip.decompress(data)


def projection_open_job(*, method: str, index_version: int) -> Job | None:
    """The pending or running job computing that projection, if any."""
    for job in Job.objects.filter(kind=Job.Kind.PROJECTION, status__in=_OPEN).order_by("-id"):
        if job.params.get("method") == method and job.params.get("index_version") == index_version:
            return job
    return None


def projection_may_start(*, method: str, user) -> bool:
    """Who may start computing a projection: PCA (seconds) anyone, t-SNE (minutes of CPU) staff only.

    Anyone may *see* a cached t-SNE; an anonymous visitor cannot make the workers compute one per index
    version (each would hold a worker slot for minutes).
    """
    return method != "tsne" or may_curate(user)


def projection_request(*, method: str, index_version: int, created_by=None) -> Job:
    """Start computing a projection, or join the job already computing it.

    One projection at a time: while any projection job is open, that job is returned instead of a new
    one (its ``params`` say what it computes); the caller asks again once it has finished. Together with
    their own low-priority queue this keeps projections from ever taking more than one worker slot.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    with transaction.atomic():
        busy = Job.objects.select_for_update().filter(kind=Job.Kind.PROJECTION, status__in=_OPEN).order_by("id")
        return (
            projection_open_job(method=method, index_version=index_version)
            or busy.first()
            or job_create(
                kind=Job.Kind.PROJECTION,
                params={"method": method, "index_version": index_version},
                created_by=created_by,
            )
        )


def projection_job_is_for(job: Job, *, method: str, index_version: int) -> bool:
    return job.params.get("method") == method and job.params.get("index_version") == index_version


def projection_compute(job: Job, progress: JobProgress) -> dict:
    """Handle a PROJECTION job: project the stored vectors of the index version's model and cache the file."""
    from training.projection import project

    method = job.params["method"]
    number = job.params["index_version"]
    version = IndexVersion.objects.select_related("model_version").filter(version=number).first()
    if version is None:
        raise ValueError(f"Index version {number} no longer exists; open the explorer again for the live one.")
    progress.set_total(3)
    ids, vectors = stored_vectors(version.model_version)
    labels_by_id = dict(Image.objects.values_list("pk", "label"))
    keep = np.fromiter((int(pk) in labels_by_id for pk in ids), dtype=bool, count=len(ids))
    ids, vectors = ids[keep], vectors[keep]
    total = len(ids)
    limit = MAX_TSNE_POINTS if method == "tsne" else MAX_POINTS
    if total > limit:
        chosen = np.sort(np.random.default_rng(number).choice(total, size=limit, replace=False))
        ids, vectors = ids[chosen], vectors[chosen]
    progress.advance(1, force=True)

    coords = project(vectors, method=method, dims=3, seed=0) if len(ids) else np.zeros((0, 3), np.float32)
    progress.advance(1, force=True)

    names = sorted({labels_by_id[int(pk)] or "" for pk in ids})
    code = {name: i for i, name in enumerate(names)}
    payload = {
        "format": FORMAT,
        "method": method,
        "index_version": number,
        "model_version": version.model_version.name,
        "total": total,
        "count": len(ids),
        "labels": names,
        "ids": ids.tolist(),
        "label": [code[labels_by_id[int(pk)] or ""] for pk in ids],
        "xyz": _quantise(coords).ravel().tolist(),
    }
    path = projection_path(number, method)
    _write_atomically(path, gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0))
    _prune(method)
    progress.advance(1, force=True)
    return {"method": method, "index_version": number, "points": len(ids), "total": total, "file": path.name}


def projection_load(cached: CachedProjection) -> dict:
    """The decoded payload of a cached projection (tests, commands)."""
    return json.loads(projection_bytes(cached, gzipped=False))


def _quantise(coords: np.ndarray) -> np.ndarray:
    """Centre, scale each axis so its 99.5th percentile reaches ±SCALE, clip and round.

    Per-axis scaling fills the view's cube (the first principal component would otherwise flatten the
    other two), and the percentile keeps a few outliers from squeezing everything else into a dot.
    """
    if not len(coords):
        return coords.astype(np.int32)
    centred = coords - coords.mean(axis=0)
    extent = np.percentile(np.abs(centred), 99.5, axis=0)
    extent[extent == 0] = 1.0
    return np.rint(np.clip(centred / extent, -1.0, 1.0) * SCALE).astype(np.int32)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _prune(method: str) -> None:
    """Keep the newest few projections per method; older index versions are gone or soon will be."""
    mine = []
    for path in projections_dir().iterdir():
        match = _NAME_RE.match(path.name)
        if match and match.group(2) == method:
            mine.append((int(match.group(1)), path))
    for _, path in sorted(mine, reverse=True)[KEEP_PER_METHOD:]:
        path.unlink(missing_ok=True)
