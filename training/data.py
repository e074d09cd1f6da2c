"""Class-per-folder image reading, the stratified split, and rock-texture augmentation.

Layout read (the one of ``../shared/data``): any image file under ``DIR`` whose class is the name of
its parent folder, e.g. ``DIR/geological_similarity/gneiss/0FVDN.jpg`` → class ``gneiss``.
Every image goes through :func:`training.preprocessing.to_model_input` and is kept in memory as uint8
(22,800 images of 28×28×3 are 54 MB).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .preprocessing import INPUT_SIZE, to_model_input

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass
class ImageSet:
    """Images of one folder tree held in memory: pixels, labels and where each came from."""

    root: Path
    paths: list[str]
    """Path of each image relative to ``root``, with forward slashes."""
    labels: np.ndarray
    """int64 index into ``class_names`` per image."""
    class_names: list[str]
    images: np.ndarray
    """uint8 ``N×H×W×3`` pixels, already at the model's input size."""

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def label_names(self) -> list[str]:
        """The class name of every image."""
        return [self.class_names[i] for i in self.labels]

    def subset(self, indices: np.ndarray) -> ImageSet:
        """The images at ``indices`` (same class list)."""
        indices = np.asarray(indices, dtype=np.int64)
        return ImageSet(
            root=self.root,
            paths=[self.paths[i] for i in indices],
            labels=self.labels[indices],
            class_names=self.class_names,
            images=self.images[indices],
        )


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursively, hidden files skipped), in a stable sorted order."""
    found = [
        path
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _read(path: Path, size: int) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            return to_model_input(image, size)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        log.warning("skipping unreadable image %s: %s", path, error)
        return None


def load_image_folder(
    root: str | Path,
    size: int = INPUT_SIZE,
    class_names: list[str] | None = None,
    workers: int = 4,
    keep: Callable[[str], bool] | None = None,
) -> ImageSet:
    """Read every image under ``root`` into memory; the class is the parent folder's name.

    ``class_names`` fixes the label order (e.g. a checkpoint's); images of other classes then get the
    label -1. Without it the classes are the sorted folder names found. ``keep``, given a path relative
    to ``root``, chooses which files to read. Unreadable files are logged and skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    files = find_images(root)
    if keep is not None:
        files = [path for path in files if keep(path.relative_to(root).as_posix())]
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    # PIL releases the GIL while decoding, so a few threads read small JPEGs faster than one.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pixels = list(pool.map(lambda p: _read(p, size), files))
    kept = [(path, array) for path, array in zip(files, pixels, strict=True) if array is not None]
    if not kept:
        raise ValueError(f"none of the {len(files)} image files under {root} could be read")
    folder_names = [path.parent.name for path, _ in kept]
    names = list(class_names) if class_names is not None else sorted(set(folder_names))
    index = {name: i for i, name in enumerate(names)}
    return ImageSet(
        root=root,
        paths=[path.relative_to(root).as_posix() for path, _ in kept],
        labels=np.array([index.get(name, -1) for name in folder_names], dtype=np.int64),
        class_names=names,
        images=np.stack([array for _, array in kept]),
    )


def image_key(relative_path: str) -> str:
    """Identity of an image across folder roots: ``class/name`` (codes repeat between classes)."""
    parts = relative_path.split("/")
    return "/".join(parts[-2:])


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Split indices per class into ``len(fractions) + 1`` sorted parts, deterministic for a seed.

    ``fractions`` are the shares of the held-out parts (e.g. ``(0.1, 0.15)`` for validation and test);
    the first returned part, the training set, gets the rest. Each class is split in the same
    proportions; at least one image of a class stays in training.
    """
    if sum(fractions) >= 1 or any(f < 0 for f in fractions):
        raise ValueError(f"held-out fractions must be ≥ 0 and sum below 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        counts = [min(int(round(f * len(members))), len(members) - 1) for f in fractions]
        for part, count in enumerate(counts, start=1):
            parts[part].append(members[start : start + count])
            start += count
        parts[0].append(members[start:])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 ``N×H×W×3`` pixels, on the [0, 1] scale."""
    floats = images.reshape(-1, 3).astype(np.float64) / 255.0
    std = np.maximum(floats.std(axis=0), 1e-3)
    return floats.mean(axis=0).round(6).tolist(), std.round(6).tolist()


def apply_d4(batch: torch.Tensor, transform: int) -> torch.Tensor:
    """One of the 8 symmetries of the square on ``…×H×W`` tensors: ``transform % 4`` quarter turns, then a
    horizontal flip when ``transform >= 4``."""
    out = torch.rot90(batch, transform % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if transform >= 4 else out


@dataclass(frozen=True)
class Augmentation:
    """Rock-texture augmentation: any flip/quarter-turn, optional mild brightness, contrast and colour jitter.

    No crops or scaling: a 28×28 patch has no texture to spare, and grain size is a class cue. The jitter
    is off by default: colour separates these rock types (a colour histogram alone reaches P@1 ≈ 0.96),
    and ±10 % jitter measured no better (see the model card).
    """

    d4: bool = True
    brightness: float = 0.0
    contrast: float = 0.0
    channel_gain: float = 0.0

    def __call__(self, floats: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment float ``N×3×H×W`` pixels in [0, 1] (square images), returning a new tensor."""
        n = floats.shape[0]
        out = floats.clone()
        if self.d4:
            choice = torch.randint(0, 8, (n,), generator=generator)
            for transform in range(1, 8):
                chosen = choice == transform
                if chosen.any():
                    out[chosen] = apply_d4(floats[chosen], transform)

        def factor(spread: float, *shape: int) -> torch.Tensor:
            return 1.0 + (torch.rand(n, *shape, generator=generator) * 2 - 1) * spread

        if self.contrast:
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = (out - mean) * factor(self.contrast, 1, 1, 1) + mean
        if self.brightness:
            out = out * factor(self.brightness, 1, 1, 1)
        if self.channel_gain:
            out = out * factor(self.channel_gain, 3, 1, 1)
        return out.clamp_(0.0, 1.0)
