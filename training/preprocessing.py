"""Turn any image into the model's input: the one function shared by training and the search service.

Every image, whatever its size or mode, goes through :func:`to_model_input` before it reaches the
network, so an upload is seen exactly the way the training images were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from .geometry import InputGeometry, working_size
from .rgb import to_rgb  # the one mode conversion, shared with search.imaging

INPUT_SIZE = 28
"""Side of the square RGB input the shipped model expects (the dataset's native 28×28)."""

RESAMPLE = Image.Resampling.LANCZOS
"""Anti-aliased filter for resizing; PIL widens its support when shrinking, so large photos
are averaged rather than sampled (no moiré on fine rock texture)."""


def to_model_input(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """Return ``image`` as a uint8 ``size×size×3`` RGB array ready for the model.

    Steps, in order: apply the EXIF orientation; convert any mode to RGB (CMYK, palette, greyscale,
    16-bit and float are rescaled to 8 bits; transparency is composited on white); centre-crop to a
    square, so a texture is never stretched; resize with an anti-aliasing Lanczos filter. An image
    that already is ``size×size`` is passed through untouched (the dataset's own 28×28 JPEGs).
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    image = ImageOps.exif_transpose(image)
    rgb = to_rgb(image)
    width, height = rgb.size
    if width != height:
        side = min(width, height)
        left = (width - side) // 2
        top = (height - side) // 2
        rgb = rgb.crop((left, top, left + side, top + side))
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), resample=RESAMPLE, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.uint8).copy()


def to_working_resolution(image: Image.Image, geometry: InputGeometry, draft: bool = False) -> np.ndarray:
    """Return ``image`` as uint8 ``H×W×3`` RGB pixels at a tiled geometry's working resolution.

    EXIF orientation and mode conversion as in :func:`to_model_input`, no crop; then shrunk (Lanczos)
    so the short side is at most ``working_side`` (:func:`training.geometry.working_size`). A JPEG not
    yet decoded may be decoded at a reduced scale that still leaves at least the working size (``draft``:
    libjpeg's DCT scaling, so a 6000×4000 photo never exists in memory at full size); it changes the image
    object, so only a caller that owns it (the folder reader) asks for it.
    """
    width, height = image.size
    target_w, target_h = working_size(width, height, geometry)
    if draft and target_w < width:
        # No-op once the image is decoded; the final resize below sets the exact size either way.
        image.draft(None, (target_w, target_h))
    if image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
        target_w, target_h = target_h, target_w
    rgb = to_rgb(ImageOps.exif_transpose(image))
    if rgb.size != (target_w, target_h):
        rgb = rgb.resize((target_w, target_h), resample=RESAMPLE, reducing_gap=3.0)
    return np.asarray(rgb, dtype=np.uint8).copy()


def prepare_image(image: Image.Image, geometry: InputGeometry, draft: bool = False) -> np.ndarray:
    """The pixels a geometry starts from: the model input (whole-image mode) or the working-resolution image."""
    if geometry.tiled:
        return to_working_resolution(image, geometry, draft=draft)
    return to_model_input(image, geometry.input_size)


def to_tensor(
    batch_uint8: np.ndarray | torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Turn uint8 ``N×H×W×3`` (or one ``H×W×3``) pixels into a normalised float32 ``N×3×H×W`` tensor.

    Pixels are scaled to [0, 1], then ``(x - mean) / std`` per channel, with the statistics stored in
    the checkpoint.
    """
    batch = torch.as_tensor(batch_uint8)
    if batch.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {batch.dtype}")
    if batch.ndim == 3:
        batch = batch.unsqueeze(0)
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"expected N×H×W×3 pixels, got shape {tuple(batch.shape)}")
    floats = batch.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    return normalize(floats, mean, std)


def normalize(floats: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalise float ``N×3×H×W`` pixels in [0, 1] per channel: ``(x - mean) / std`` (a new tensor)."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((floats - mean_t) / std_t).contiguous()
