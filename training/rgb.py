"""Any Pillow image → 8-bit RGB: the one mode conversion shared by training and the search service.

:func:`search.imaging.decode_image` (every upload, import and query) and
:func:`training.preprocessing.to_model_input` (every training and evaluation image) both call
:func:`to_rgb`, so a 16-bit scan, a CMYK JPEG or a transparent PNG gives the same pixels, hence the
same embedding, whichever way it came in. Torch-free: the web process imports it at start-up.

The rules:

- ``I;16*`` (16-bit greyscale): ``round(v / 257)``, the exact inverse of how 8-bit values are stored
  in 16 bits (``v * 257``), so an 8-bit picture saved as 16-bit comes back unchanged and relative
  brightness is kept (no per-image contrast stretch: two scans of one rock stay alike).
- ``I`` (32-bit integer): values above 255 are read as 16-bit (``/ 257``), otherwise as 8-bit; clipped to 0–255.
- ``F`` (32-bit float): a maximum ≤ 1 means a 0–1 scale (``× 255``), otherwise 0–255; clipped and rounded.
- transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent colour, premultiplied modes):
  composited onto white;
- everything else (``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``): Pillow's own conversion.

Memory: every mode is converted in bands of rows (integer arithmetic for the high-bit-depth ones)
straight into the RGB result, so a conversion costs the result (Pillow stores 4 bytes a pixel) plus
a few MB of work space, whatever the image size. The earlier float64 conversion needed
about 0.9 GB for one 40-megapixel 16-bit PNG (see docs/PERFORMANCE.md, "Decoding memory").
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HIGH_BIT_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
TRANSPARENT_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
BAND_PIXELS = 1 << 20
"""Pixels converted at once (a few MB of work space whatever the image size)."""


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB by the module's rules (the same object when it already is RGB)."""
    if image.mode == "RGB":
        return image
    convert_band = _band_converter(image)
    width, height = image.size
    out = Image.new("RGB", image.size)
    rows = max(1, BAND_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(top + rows, height)))  # keeps the palette and transparency
        out.paste(convert_band(band), (0, top))
    return out


def _band_converter(image: Image.Image):
    """The function turning one band of rows of ``image`` into RGB (decided once, for the whole image)."""
    mode = image.mode
    if mode in HIGH_BIT_DEPTH_MODES:
        scale = _scale_for(image)
        return lambda band: Image.fromarray(_grey_to_8_bits(np.asarray(band), mode, scale)).convert("RGB")
    if mode in TRANSPARENT_MODES or (mode == "P" and "transparency" in image.info):
        return _composite_on_white
    return lambda band: band.convert("RGB")


def _composite_on_white(band: Image.Image) -> Image.Image:
    white = Image.new("RGBA", band.size, (255, 255, 255, 255))
    white.alpha_composite(band.convert("RGBA"))
    return white.convert("RGB")


def _scale_for(image: Image.Image) -> str:
    """How ``I`` and ``F`` values map to 8 bits, decided by the whole image's maximum (one rule for all bands)."""
    if image.mode == "I":
        return "16-bit" if image.getextrema()[1] > 255 else "8-bit"
    if image.mode == "F":
        return "unit" if image.getextrema()[1] <= 1.0 else "8-bit"
    return "16-bit"


def _grey_to_8_bits(band: np.ndarray, mode: str, scale: str) -> np.ndarray:
    if mode == "F":
        values = band.astype(np.float32, copy=False)
        if scale == "unit":
            values = values * np.float32(255.0)
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if mode == "I":
        values = np.clip(band.astype(np.int64, copy=False), 0, 65535 if scale == "16-bit" else 255)
    else:  # I;16 in any byte order
        values = band.astype(np.int64, copy=False)
    if scale == "16-bit":
        values = (2 * values + 257) // 514  # round(v / 257) in integers (no ties: 257 is odd)
    return values.astype(np.uint8)
