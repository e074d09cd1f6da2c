"""Input geometry: how an image of any size becomes model inputs, recorded in every checkpoint.

Two modes:

- **whole image** (``working_side`` None): the image is centre-cropped to a square and shrunk to
  ``input_size`` (today's 28×28 recipe, ``training.preprocessing.to_model_input``). One input per image.
- **tiled** (``working_side`` set): the image is first brought to its *working resolution* — shrunk so
  that its shorter side is at most ``working_side`` pixels (never enlarged, so a small image or a cut-out
  region keeps the scale of its pixels) — and then seen through square crops of ``crop_size`` pixels
  at that resolution, each fed to the network at ``input_size``. A large image's embedding is the
  re-normalised mean of the embeddings of a grid of crops covering it, at most ``max_crops`` of them
  (the grid thins out beyond that, so the cost of one image is bounded whatever its size).

Flip and rotation invariance of a tiled embedding, at the cost of about one network pass per crop
instead of eight: the crop grid is symmetric (a flipped or turned image has the flipped or turned grid),
and every crop is fed in a *canonical orientation* chosen from where it lies in the image — the one of
the 8 flips/quarter-turns that maps (image shape, crop centre) to the smallest of its 8 images. A crop
of a turned image lies at the turned position, so it is turned back to the same canonical view: the set
of network inputs, hence the embedding, is the same. A crop whose position is itself symmetric (the
centre of a square image) has several canonical transforms; all of them are used and averaged, so each
crop still weighs the same. See :func:`canonical_transforms`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

LEGACY_INPUT_SIZE = 28
"""The whole-image input side of the shipped model and of every format-1 checkpoint."""

MAX_WORKING_SIDE = 512
"""Larger photos are shrunk to this short side before cropping: enough for the grain of a thin section or
hand specimen at the scale a lab photographs it, and a 6000×4000 photo stays a few hundred kilobytes."""

TILED_CROP_SIZE = 112
"""Crop side at working resolution for collections of large images: a 112 px window holds enough grains
to characterise a texture while the CNN stays cheap (~3 ms per crop on one CPU thread)."""

DEFAULT_MAX_CROPS = 24
"""Crops per image at most: bounds the cost of one 6000×4000 photo to well under a second on one thread."""

WHOLE_IMAGE_LIMIT = 2 * LEGACY_INPUT_SIZE
"""Collections whose typical short side is at most this keep the whole-image 28 px recipe."""


@dataclass(frozen=True)
class InputGeometry:
    """How images become model inputs (see the module docstring): stored in every checkpoint."""

    input_size: int = LEGACY_INPUT_SIZE
    """Side of the square RGB input of the network."""
    crop_size: int = LEGACY_INPUT_SIZE
    """Side of a crop at working resolution (tiled mode); equal to ``input_size`` in whole-image mode."""
    working_side: int | None = None
    """Short side images are shrunk to at most (tiled mode); None: whole-image mode."""
    max_crops: int = 1
    """Crops per image at most (tiled mode)."""

    def __post_init__(self) -> None:
        if self.input_size <= 0 or self.crop_size <= 0 or self.max_crops <= 0:
            raise ValueError(f"input geometry sizes must be positive: {self}")
        if self.working_side is not None and self.working_side < self.crop_size:
            raise ValueError(f"working_side {self.working_side} is smaller than crop_size {self.crop_size}")
        if self.working_side is not None and self.max_crops < 4:
            raise ValueError(f"a tiled geometry needs max_crops ≥ 4, got {self.max_crops}")

    @property
    def tiled(self) -> bool:
        """True when images are seen through crops at a working resolution."""
        return self.working_side is not None

    def to_dict(self) -> dict:
        """Plain data for the checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InputGeometry:
        """Inverse of :meth:`to_dict` (unknown keys are an error, missing ones take the defaults)."""
        values = dict(data)
        if values.get("working_side") is not None:
            values["working_side"] = int(values["working_side"])
        return cls(**values)

    @classmethod
    def whole_image(cls, input_size: int = LEGACY_INPUT_SIZE) -> InputGeometry:
        """The whole-image geometry (today's recipe at 28 px)."""
        return cls(input_size=input_size, crop_size=input_size, working_side=None, max_crops=1)


def choose_geometry(sizes: Iterable[tuple[int, int]], max_crops: int = DEFAULT_MAX_CROPS) -> InputGeometry:
    """The geometry for a collection, from its images' ``(width, height)``.

    Typical (median) short side ≤ 56 px: the whole-image 28 px recipe (the real 28×28 set). Otherwise tiled:
    the working side is the median short side capped at :data:`MAX_WORKING_SIDE` (so a lab's 500×380
    micrographs are seen at their own scale), the crop 112 px (half the working side when that is smaller).
    """
    shorts = [min(w, h) for w, h in sizes]
    if not shorts:
        raise ValueError("no image sizes to choose an input geometry from")
    typical = int(np.median(shorts))
    if typical <= WHOLE_IMAGE_LIMIT:
        return InputGeometry.whole_image()
    working_side = min(typical, MAX_WORKING_SIDE)
    crop = min(TILED_CROP_SIZE, max(32, (working_side // 2) // 8 * 8))
    return InputGeometry(input_size=crop, crop_size=crop, working_side=working_side, max_crops=max_crops)


def working_size(width: int, height: int, geometry: InputGeometry) -> tuple[int, int]:
    """``(width, height)`` of an image at the geometry's working resolution (tiled mode).

    Shrunk so the short side is at most ``working_side``; an image smaller than one crop is enlarged to
    the crop size (it has no texture to spare). Depends only on the unordered pair of sides' ratio, so a
    turned image gets the turned size.
    """
    if geometry.working_side is None:
        raise ValueError("working_size applies to tiled geometries only")
    short = min(width, height)
    if short > geometry.working_side:
        scale = geometry.working_side / short
    elif short < geometry.crop_size:
        scale = geometry.crop_size / short
    else:
        return width, height
    return max(geometry.crop_size, round(width * scale)), max(geometry.crop_size, round(height * scale))


def _axis_positions(length: int, crop: int, count: int) -> list[int]:
    """``count`` crop starts spread evenly over ``[0, length - crop]``, exactly mirror-symmetric.

    A middle crop needs an even span (``count`` odd and the span odd has no pixel-exact middle; the
    caller avoids it).
    """
    span = length - crop
    if count <= 1:
        return [span // 2]
    half = [math.floor(i * span / (count - 1) + 0.5) for i in range(count // 2)]
    middle = [span // 2] if count % 2 else []
    return half + middle + [span - start for start in reversed(half)]


def _axis_count(length: int, crop: int, count: int) -> int:
    """``count``, made even when the span is odd (a middle crop would sit half a pixel off the middle):
    one more crop, so the axis stays covered."""
    return count + 1 if count % 2 and (length - crop) % 2 else count


def _grid_counts(width: int, height: int, crop: int, max_crops: int) -> tuple[int, int]:
    """Crops across and down: enough to cover, thinned evenly when more than ``max_crops``.

    Each step treats the two axes alike, so a quarter-turned image gets the swapped counts.
    """
    across, down = math.ceil(width / crop), math.ceil(height / crop)
    if across * down > max_crops:
        # The same factor on both axes, and floor rather than round, keeps the rule symmetric.
        factor = math.sqrt(max_crops / (across * down))
        across, down = max(1, math.floor(across * factor)), max(1, math.floor(down * factor))
    across, down = _axis_count(width, crop, across), _axis_count(height, crop, down)
    # The extra crop may break the cap: thin the longer axis (both when equal), two at a time so its
    # parity, hence its symmetry, is kept.
    while across * down > max_crops and max(across, down) > 2:
        longer_across, longer_down = across >= down, down >= across
        across -= 2 if longer_across and across > 2 else 0
        down -= 2 if longer_down and down > 2 else 0
    return across, down


def crop_grid(width: int, height: int, crop: int, max_crops: int) -> list[tuple[int, int]]:
    """Top-left corners ``(x, y)`` of the crops covering a ``width×height`` image, row by row.

    The image must be at least ``crop`` on both sides. At most ``max_crops`` (at least 4) crops; the grid of a
    flipped or quarter-turned image is the flipped or turned grid.
    """
    if min(width, height) < crop:
        raise ValueError(f"a {width}×{height} image is smaller than one {crop} px crop")
    across, down = _grid_counts(width, height, crop, max_crops)
    return [(x, y) for y in _axis_positions(height, crop, down) for x in _axis_positions(width, crop, across)]


def _transform_key(transform: int, dx: int, dy: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(width, height, dx, dy) after ``transform`` (``transform % 4`` counter-clockwise quarter turns, then
    a left-right flip when ``transform >= 4``: the order of :func:`training.inference.d4_pixels`).

    ``dx``, ``dy`` are the crop centre's offsets from the image centre in half pixels (integers).
    """
    for _ in range(transform % 4):
        # np.rot90 on (rows, cols): pixel (x, y) of a W×H image goes to (y, W-1-x) of the H×W image.
        dx, dy, width, height = dy, -dx, height, width
    if transform >= 4:
        dx = -dx
    return width, height, dx, dy


def canonical_transforms(x: int, y: int, crop: int, width: int, height: int) -> tuple[int, ...]:
    """The transforms (0–7, as in ``d4_pixels``) that bring the crop at ``(x, y)`` to its canonical view.

    The canonical view of a crop is defined by its place in the image, so the crop of a flipped or turned
    image at the corresponding place gets the same pixels after its canonical transform.
    """
    dx, dy = 2 * x + crop - width, 2 * y + crop - height
    keys = [_transform_key(t, dx, dy, width, height) for t in range(8)]
    smallest = min(keys)
    return tuple(t for t in range(8) if keys[t] == smallest)
