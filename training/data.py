"""Class-per-folder image reading, the stratified split, and rock-texture augmentation.

Layout read (the one of ``../shared/data``): any image file under ``DIR`` whose class is the name of
its parent folder, e.g. ``DIR/geological_similarity/gneiss/0FVDN.jpg`` → class ``gneiss``.
With the whole-image geometry every image goes through :func:`training.preprocessing.to_model_input`
and is kept in memory as uint8 (22,800 images of 28×28×3 are 54 MB). With a tiled geometry each image is
read once at its working resolution (1,500 images of 512×384 are 0.9 GB; a 6000×4000 JPEG is decoded at
a reduced scale, never in full).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .geometry import InputGeometry
from .preprocessing import INPUT_SIZE, prepare_image

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
    images: np.ndarray | list[np.ndarray]
    """Whole-image geometry: uint8 ``N×S×S×3`` pixels at the model's input size. Tiled geometry: a list of
    uint8 ``H×W×3`` arrays at working resolution."""
    geometry: InputGeometry = field(default_factory=InputGeometry)

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
            images=(
                [self.images[i] for i in indices] if isinstance(self.images, list) else self.images[indices]
            ),
            geometry=self.geometry,
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


def _read(path: Path, geometry: InputGeometry) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            return prepare_image(image, geometry, draft=True)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        log.warning("skipping unreadable image %s: %s", path, error)
        return None


def _size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def _selected_files(root: Path, keep: Callable[[str], bool] | None) -> list[Path]:
    if root.exists() and not root.is_dir():
        # An archive, most likely: say so instead of "does not exist" (the training CLIs read folders).
        raise ValueError(
            f"{root} is not a folder: --data takes a folder of class-named subfolders. Extract an archive "
            f"outside the repository first, e.g. mkdir -p /tmp/geosim-data && tar -xf {root} -C /tmp/geosim-data"
        )
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    files = find_images(root)
    if keep is not None:
        files = [path for path in files if keep(path.relative_to(root).as_posix())]
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    return files


def image_sizes(root: str | Path, keep: Callable[[str], bool] | None = None) -> list[tuple[int, int]]:
    """``(width, height)`` of every readable image under ``root``, from the file headers only (fast)."""
    return [size for size in map(_size, _selected_files(Path(root), keep)) if size is not None]


def load_image_folder(
    root: str | Path,
    size: int = INPUT_SIZE,
    class_names: list[str] | None = None,
    workers: int = 4,
    keep: Callable[[str], bool] | None = None,
    geometry: InputGeometry | None = None,
) -> ImageSet:
    """Read every image under ``root`` into memory; the class is the parent folder's name.

    ``geometry`` (default: whole image at ``size``) says how: at the model's input size, or at a tiled
    geometry's working resolution. ``class_names`` fixes the label order (e.g. a checkpoint's); images of
    other classes then get the label -1. Without it the classes are the sorted folder names found.
    ``keep``, given a path relative to ``root``, chooses which files to read. Unreadable files are logged
    and skipped.
    """
    root = Path(root)
    geometry = geometry or InputGeometry.whole_image(size)
    files = _selected_files(root, keep)
    # PIL releases the GIL while decoding, so a few threads read small JPEGs faster than one.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pixels = list(pool.map(lambda p: _read(p, geometry), files))
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
        images=[array for _, array in kept] if geometry.tiled else np.stack([array for _, array in kept]),
        geometry=geometry,
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


def channel_stats(images: np.ndarray | list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 ``N×H×W×3`` pixels (or a list of ``H×W×3``
    arrays of any sizes, every pixel weighing the same), on the [0, 1] scale."""
    if isinstance(images, np.ndarray):
        floats = images.reshape(-1, 3).astype(np.float64) / 255.0
        std = np.maximum(floats.std(axis=0), 1e-3)
        return floats.mean(axis=0).round(6).tolist(), std.round(6).tolist()
    count, total, squares = 0, np.zeros(3), np.zeros(3)
    for array in images:
        floats = array.reshape(-1, 3).astype(np.float64) / 255.0
        count += len(floats)
        total += floats.sum(axis=0)
        squares += (floats * floats).sum(axis=0)
    mean = total / count
    std = np.maximum(np.sqrt(np.maximum(squares / count - mean * mean, 0.0)), 1e-3)
    return mean.round(6).tolist(), std.round(6).tolist()


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


def random_crops(
    images: list[np.ndarray],
    indices: np.ndarray | torch.Tensor,
    geometry: InputGeometry,
    generator: torch.Generator,
    scale_jitter: float = 0.0,
) -> torch.Tensor:
    """One random square crop of each ``images[i]`` (working resolution) as float ``N×3×S×S`` in [0, 1].

    The crop side is ``crop_size`` times a log-uniform factor in ``[1/(1+scale_jitter), 1+scale_jitter]``
    (mild scale jitter: grain size is a class cue, so only a little), at a uniform random position, then
    resized (bilinear, antialiased) to the input size.
    """
    size = geometry.input_size
    out = torch.empty(len(indices), 3, size, size)
    spread = float(np.log1p(scale_jitter))
    for row, index in enumerate(np.asarray(indices).tolist()):
        pixels = images[index]
        height, width = pixels.shape[:2]
        factor = float(np.exp((torch.rand((), generator=generator).item() * 2 - 1) * spread))
        side = max(8, min(height, width, round(geometry.crop_size * factor)))
        top = int(torch.randint(0, height - side + 1, (), generator=generator))
        left = int(torch.randint(0, width - side + 1, (), generator=generator))
        crop = torch.from_numpy(pixels[top : top + side, left : left + side]).permute(2, 0, 1).float().div_(255.0)
        if side != size:
            crop = torch.nn.functional.interpolate(
                crop[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
            )[0]
        out[row] = crop
    return out
