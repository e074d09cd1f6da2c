"""The CNN embedder of the search service: one loaded model per model version, per process.

Checkpoints are loaded lazily on first use and kept; loading is guarded by a lock so concurrent
requests in a threaded server load a model once. Preprocessing is the training package's own
(``training.preprocessing.to_model_input``), so queries are prepared exactly like training images.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import torch
from django.conf import settings
from PIL import Image

from search import object_sync
from search.models import ModelVersion
from training.calibration import FALLBACK, Calibration
from training.checkpoint import CheckpointError
from training.inference import Embedder

_lock = threading.Lock()
_embedders: dict[tuple[int, str], Embedder] = {}
_threads_configured = False


def get_embedder(model_version: ModelVersion) -> Embedder:
    """The loaded embedder of a model version (raises training.checkpoint.CheckpointError if unusable)."""
    key = (model_version.pk, model_version.checkpoint_sha256)
    embedder = _embedders.get(key)
    if embedder is not None:
        return embedder
    with _lock:
        _configure_threads()
        embedder = _embedders.get(key)
        if embedder is None:
            try:
                path = object_sync.checkpoint_local(model_version.checkpoint, model_version.checkpoint_sha256)
            except object_sync.SyncFailed as exc:
                raise CheckpointError(str(exc)) from exc
            embedder = Embedder.from_checkpoint(path)
            _embedders[key] = embedder
    return embedder


def calibration(model_version: ModelVersion) -> Calibration:
    """The model's map from cosine to the probability of the same rock type (a fixed fallback for old checkpoints)."""
    loaded = get_embedder(model_version).checkpoint
    return loaded.calibration if loaded is not None else FALLBACK


def embed_images(model_version: ModelVersion, images: list[Image.Image]) -> np.ndarray:
    """Embed RGB images (any size): float32 N×D, L2-normalised.

    A single query runs on GEOSIM_TORCH_THREADS (1: lowest latency); a batch (embedding jobs) on
    GEOSIM_BUILD_THREADS, where more cores pay off.
    """
    embedder = get_embedder(model_version)
    if len(images) == 1:
        return embedder.embed_images(images)
    with torch_threads(settings.GEOSIM_BUILD_THREADS):
        return embedder.embed_images(images, batch_size=settings.GEOSIM_BATCH_SIZE)


def embed_region(model_version: ModelVersion, image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    """Embed the part ``box = (x, y, w, h)`` of an RGB image: 1×D float32, L2-normalised.

    Not a crop passed to :func:`embed_images`: a model working on crops of large images sees the region
    at the scale it sees the collection's images, instead of enlarged to a whole image.
    """
    return get_embedder(model_version).embed_region(image, box).reshape(1, -1).astype(np.float32)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch CPU threads (process-wide), then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def clear_cache() -> None:
    """Forget loaded models (tests; a deleted model version)."""
    with _lock:
        _embedders.clear()


def _configure_threads() -> None:
    # One intra-op thread keeps single-image latency lowest and lets parallel requests use the
    # other cores; batch jobs in workers may ask for more with GEOSIM_TORCH_THREADS.
    global _threads_configured
    if not _threads_configured:
        torch.set_num_threads(settings.GEOSIM_TORCH_THREADS)
        _threads_configured = True
