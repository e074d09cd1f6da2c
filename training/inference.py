"""Embed images with a trained checkpoint: the entry point the search service uses.

Whole-image checkpoints (the shipped 28 px model) embed an image as the mean of its 8 flips/quarter-turns.
Tiled checkpoints embed it as the re-normalised mean over a grid of crops at working resolution, each crop
in its canonical orientation (see :mod:`training.geometry`); :meth:`Embedder.locate` scores an image's
crops against a query to say where the best match lies, and :meth:`Embedder.embed_region` embeds a part
of an image at the scale the whole image is seen at.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .checkpoint import LoadedCheckpoint, load_checkpoint
from .data import apply_d4
from .geometry import InputGeometry, canonical_transforms, crop_grid, working_size
from .model import EmbeddingNet, fuse_for_inference
from .preprocessing import RESAMPLE, to_model_input, to_working_resolution
from .rgb import to_rgb

TTA_CHUNK = 32
"""Images per forward pass with test-time augmentation (8 views each)."""

TILE_CHUNK = 64
"""Crops per forward pass for tiled checkpoints (64 crops of 112² stay within the CPU caches' reach)."""

LOCATE_MAX_CROPS = 36
"""Windows scored at most by :meth:`Embedder.locate` (half-overlapping; ~0.1 s on one thread at 112 px)."""

Box = tuple[int, int, int, int]


def d4_pixels(pixels: np.ndarray, transform: int) -> np.ndarray:
    """:func:`training.data.apply_d4` on uint8 ``N×H×W×3`` arrays (same order of the 8 transforms)."""
    out = np.rot90(pixels, transform % 4, axes=(1, 2))
    return np.ascontiguousarray(out[:, :, ::-1] if transform >= 4 else out)


def embed_tensor(model: EmbeddingNet, batch: torch.Tensor, tta: bool) -> torch.Tensor:
    """Embed a normalised ``N×3×S×S`` batch; with ``tta`` average over the 8 flips/quarter-turns.

    The reference implementation; :meth:`Embedder.embed_arrays` computes the same on uint8 pixels, faster.

    The average of the 8 unit vectors is normalised again, so the result is exactly invariant to
    rotating or mirroring the input.
    """
    if not tta:
        return model(batch.contiguous(memory_format=torch.channels_last))
    views = torch.cat([apply_d4(batch, t) for t in range(8)]).contiguous(memory_format=torch.channels_last)
    embeddings = model(views).view(8, batch.shape[0], -1).mean(dim=0)
    return F.normalize(embeddings, dim=1)


class Embedder:
    """Turns PIL images or uint8 arrays into float32 L2-normalised embeddings.

    Thread safety: after construction nothing is mutated; ``embed_*`` run the model in
    ``torch.inference_mode`` with BatchNorm folded into the convolutions, so several threads may call
    them at once. It never changes torch's thread settings; the caller decides.
    """

    def __init__(
        self,
        model: EmbeddingNet,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: int | None = None,
        tta: bool,
        class_names: Sequence[str] = (),
        checkpoint: LoadedCheckpoint | None = None,
        geometry: InputGeometry | None = None,
    ) -> None:
        if geometry is None:
            if input_size is None:
                raise ValueError("give the input geometry or the whole-image input size")
            geometry = InputGeometry.whole_image(int(input_size))
        self.checkpoint = checkpoint
        self.geometry = geometry
        self.input_size = geometry.input_size
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.tta = bool(tta)
        self.class_names: list[str] = list(class_names)
        self.embedding_dim: int = model.config.embedding_dim
        # Channels-last convolutions run about twice as fast on CPU for these small maps.
        self._model = fuse_for_inference(model).to(memory_format=torch.channels_last)
        self._model.requires_grad_(False)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Embedder:
        """Load ``path`` (raises ``CheckpointError`` for a missing, foreign or wrong-version file)."""
        loaded = load_checkpoint(path)
        return cls(
            loaded.model,
            mean=loaded.mean,
            std=loaded.std,
            geometry=loaded.geometry,
            tta=loaded.tta,
            class_names=loaded.class_names,
            checkpoint=loaded,
        )

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 256) -> np.ndarray:
        """Embed PIL images of any size and mode: N×D float32.

        Whole-image geometry: each goes through ``to_model_input``. Tiled geometry: each is brought to
        working resolution and embedded as the mean over its crop grid (at most ``max_crops`` crops).
        """
        if len(images) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        if self.geometry.tiled:
            return self._embed_tiled(to_working_resolution(image, self.geometry) for image in images)
        pixels = np.stack([to_model_input(image, self.input_size) for image in images])
        return self.embed_arrays(pixels, batch_size=batch_size)

    def embed_arrays(self, pixels: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Embed uint8 RGB pixels: an ``N×H×W×3`` array, or (tiled geometry) a list of ``H×W×3`` arrays of
        any sizes. Whole-image geometry resizes through ``to_model_input`` if not S×S; tiled geometry
        brings each image to working resolution first (a no-op for images read at it). N×D float32.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if self.geometry.tiled:
            arrays = list(pixels)
            for array in arrays:
                if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
                    raise ValueError(f"expected uint8 H×W×3 pixels, got {array.dtype} {array.shape}")
            if not arrays:
                return np.zeros((0, self.embedding_dim), dtype=np.float32)
            return self._embed_tiled(self._at_working_resolution(array) for array in arrays)
        pixels = np.asarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(f"expected uint8 N×H×W×3 pixels, got {pixels.dtype} {pixels.shape}")
        if pixels.shape[1:3] != (self.input_size, self.input_size):
            pixels = np.stack(
                [to_model_input(Image.fromarray(p), self.input_size) for p in pixels]
            )
        # The 8 TTA views multiply the batch; past ~256 views a forward pass gets slower per image
        # (the activations leave the CPU caches), so TTA batches are cut to 32 images.
        step = min(batch_size, TTA_CHUNK) if self.tta else batch_size
        out = np.empty((len(pixels), self.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(pixels), step):
                chunk = pixels[start : start + step]
                views = np.concatenate([d4_pixels(chunk, t) for t in range(8)]) if self.tta else chunk
                embeddings = self._forward(views)
                if self.tta:
                    embeddings = F.normalize(embeddings.view(8, len(chunk), -1).mean(dim=0), dim=1)
                out[start : start + len(chunk)] = embeddings.numpy()
        return out

    def embed_region(self, image: Image.Image, box: Box) -> np.ndarray:
        """Embed the part ``box = (x, y, w, h)`` of ``image`` (pixels after EXIF orientation): a D vector.

        Tiled geometry: the region is cut from the whole image at working resolution, so it is seen at the
        scale the image's own crops are (a region of a large photo is not enlarged to fill the working
        side). Whole-image geometry: the region is cut from the image and goes through ``to_model_input``.
        Raises ValueError when the box is empty or not inside the image.
        """
        oriented = ImageOps.exif_transpose(image)
        x, y, w, h = _checked_box(box, oriented.size)
        if not self.geometry.tiled:
            return self.embed_images([oriented.crop((x, y, x + w, y + h))])[0]
        working = to_working_resolution(oriented, self.geometry)
        scale_x, scale_y = working.shape[1] / oriented.width, working.shape[0] / oriented.height
        left, top = math.floor(x * scale_x), math.floor(y * scale_y)
        right = max(left + 1, math.ceil((x + w) * scale_x))
        bottom = max(top + 1, math.ceil((y + h) * scale_y))
        return self._embed_tiled([self._at_working_resolution(working[top:bottom, left:right])])[0]

    def locate(self, image: Image.Image, query: np.ndarray) -> tuple[Box, float] | None:
        """Where in ``image`` the query vector matches best: ``((x, y, w, h), cosine)`` or None.

        Scores half-overlapping windows (at most :data:`LOCATE_MAX_CROPS`): crops of the working resolution
        (tiled geometry) or squares of half the short side (whole-image geometry). The box is in the
        image's own pixels after EXIF orientation. None when the image is no larger than one model input
        (one window would be the whole image).
        """
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape != (self.embedding_dim,):
            raise ValueError(f"query must be a {self.embedding_dim}-d vector, got shape {query.shape}")
        oriented = ImageOps.exif_transpose(image)
        width, height = oriented.size
        if self.geometry.tiled:
            pixels = to_working_resolution(oriented, self.geometry)
            window = self.geometry.crop_size
        else:
            if min(width, height) <= self.input_size:
                return None
            pixels = np.asarray(to_rgb(oriented), dtype=np.uint8)
            window = min(width, height) // 2
        rows, cols = pixels.shape[:2]
        if rows <= window and cols <= window:
            return None
        corners = _overlapping_grid(cols, rows, window, LOCATE_MAX_CROPS)
        crops = [pixels[cy : cy + window, cx : cx + window] for cx, cy in corners]
        if self.geometry.tiled:
            # One canonical view per window (not all 8): locating needs a ranking, not exact invariance.
            crop_vectors = self._crop_embeddings(
                crops, [canonical_transforms(x, y, window, cols, rows)[:1] for x, y in corners]
            )
        else:
            crop_vectors = torch.from_numpy(self.embed_arrays(np.stack(crops)))
        scores = crop_vectors.numpy() @ query
        best = int(np.argmax(scores))
        cx, cy = corners[best]
        scale_x, scale_y = width / cols, height / rows
        box = (
            round(cx * scale_x), round(cy * scale_y),
            min(width, round(window * scale_x)), min(height, round(window * scale_y)),
        )
        return box, float(scores[best])

    def _forward(self, views: np.ndarray) -> torch.Tensor:
        """uint8 ``N×S×S×3`` views → N×D embeddings (inside ``inference_mode``)."""
        # N×H×W×3 memory seen as N×3×H×W is channels-last already: no copy before the convolutions.
        batch = torch.from_numpy(np.ascontiguousarray(views)).permute(0, 3, 1, 2).float().div_(255.0)
        if batch.shape[-1] != self.input_size:
            batch = F.interpolate(batch, size=(self.input_size, self.input_size), mode="bilinear",
                                  antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return self._model((batch - mean) / std)

    def _at_working_resolution(self, array: np.ndarray) -> np.ndarray:
        """An H×W×3 array resized to the tiled geometry's working size (unchanged when already there)."""
        target = working_size(array.shape[1], array.shape[0], self.geometry)
        if target == (array.shape[1], array.shape[0]):
            return array
        return np.asarray(Image.fromarray(array).resize(target, resample=RESAMPLE, reducing_gap=3.0))

    def _tiles(self, pixels: np.ndarray) -> tuple[list[np.ndarray], list[tuple[int, ...]]]:
        """The crops of one working-resolution image and each crop's canonical transforms."""
        crop = self.geometry.crop_size
        rows, cols = pixels.shape[:2]
        corners = crop_grid(cols, rows, crop, self.geometry.max_crops)
        crops = [pixels[y : y + crop, x : x + crop] for x, y in corners]
        transforms = [
            canonical_transforms(x, y, crop, cols, rows) if self.tta else (0,) for x, y in corners
        ]
        return crops, transforms

    def _crop_embeddings(self, crops: list[np.ndarray], transforms: list[tuple[int, ...]]) -> torch.Tensor:
        """One unit vector per crop: the re-normalised mean over the crop's listed views."""
        views: list[np.ndarray] = []
        owners: list[int] = []
        for index, (crop, chosen) in enumerate(zip(crops, transforms, strict=True)):
            for transform in chosen:
                views.append(d4_pixels(crop[None], transform)[0])
                owners.append(index)
        sums = torch.zeros(len(crops), self.embedding_dim)
        owner_index = torch.tensor(owners)
        with torch.inference_mode():
            for start in range(0, len(views), TILE_CHUNK):
                embeddings = self._forward(np.stack(views[start : start + TILE_CHUNK]))
                sums.index_add_(0, owner_index[start : start + TILE_CHUNK], embeddings)
        return F.normalize(sums, dim=1)

    def _embed_tiled(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """Working-resolution images → the re-normalised mean of their crop embeddings, N×D."""
        vectors = []
        for crops, transforms in _batched_tiles(map(self._tiles, images), TILE_CHUNK):
            owners = [index for index, group in enumerate(crops) for _ in group]
            crop_vectors = self._crop_embeddings(
                [c for group in crops for c in group], [t for group in transforms for t in group]
            )
            sums = torch.zeros(len(crops), self.embedding_dim).index_add_(0, torch.tensor(owners), crop_vectors)
            vectors.append(F.normalize(sums, dim=1).numpy())
        return np.concatenate(vectors).astype(np.float32, copy=False)


def _batched_tiles(
    tiles: Iterator[tuple[list[np.ndarray], list[tuple[int, ...]]]], crops_per_batch: int
) -> Iterator[tuple[list[list[np.ndarray]], list[list[tuple[int, ...]]]]]:
    """Group images' crops so that a group holds about ``crops_per_batch`` crops (whole images only)."""
    crops: list[list[np.ndarray]] = []
    transforms: list[list[tuple[int, ...]]] = []
    count = 0
    for image_crops, image_transforms in tiles:
        crops.append(image_crops)
        transforms.append(image_transforms)
        count += len(image_crops)
        if count >= crops_per_batch:
            yield crops, transforms
            crops, transforms, count = [], [], 0
    if crops:
        yield crops, transforms


def _checked_box(box: Box, size: tuple[int, int]) -> Box:
    """``box`` as ints, or ValueError when empty or not inside an image of ``size``."""
    try:
        x, y, w, h = (int(v) for v in box)
    except (TypeError, ValueError) as error:
        raise ValueError(f"a box is four integers x, y, w, h; got {box!r}") from error
    width, height = size
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"box {(x, y, w, h)} is empty or not inside the {width}×{height} image")
    return x, y, w, h


def _overlapping_grid(width: int, height: int, window: int, max_windows: int) -> list[tuple[int, int]]:
    """Top-left corners of windows at half-window steps covering ``width×height``, thinned to the cap."""
    def count(length: int) -> int:
        return max(1, math.ceil(2 * (length - window) / window) + 1) if length > window else 1

    across, down = count(width), count(height)
    if across * down > max_windows:
        factor = math.sqrt(max_windows / (across * down))
        across, down = max(1, math.floor(across * factor)), max(1, math.floor(down * factor))

    def starts(length: int, n: int) -> list[int]:
        span = max(0, length - window)
        return [span // 2] if n == 1 else [round(i * span / (n - 1)) for i in range(n)]

    return [(x, y) for y in starts(height, down) for x in starts(width, across)]
