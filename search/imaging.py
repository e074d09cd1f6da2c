"""Decoding and validating image bytes, and making display thumbnails.

Every image that enters GeoSim (CLI import, admin upload, API upload, search query) goes through
:func:`decode_image`, so the same formats are accepted everywhere and the same checks protect the
service: an allow-list of formats, a limit on declared pixels checked before decoding (decompression
bombs), a full decode (truncated or corrupt files fail here, not later), EXIF orientation applied and
every mode (CMYK, greyscale, 16-bit, palette, alpha) converted to RGB by :func:`training.rgb.to_rgb`,
the conversion training uses too.

Multi-frame files (animated GIF/WebP, multi-page TIFF) are accepted and their first frame is used:
a still of a rock is what people upload, and refusing them would only confuse.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from training.rgb import to_rgb

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})
FORMAT_EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tif",
    "GIF": "gif",
}
THUMBNAIL_EDGE = 256


class ImageRejected(ValueError):
    """The bytes are not an image GeoSim accepts; the message says why, for the user."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied, first frame
    format: str  # Pillow's format name, e.g. "JPEG"
    width: int
    height: int
    frames: int

    @property
    def extension(self) -> str:
        return FORMAT_EXTENSIONS[self.format]


def decode_image(data: bytes, *, max_pixels: int, max_bytes: int | None = None) -> DecodedImage:
    """Validate and fully decode image bytes into an RGB Pillow image, or raise ImageRejected."""
    if not data:
        raise ImageRejected("The file is empty.")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageRejected(f"The file is {len(data):,} bytes; the limit is {max_bytes:,} bytes.")
    with warnings.catch_warnings():
        # Pillow warns (not raises) on moderately large images; a bomb must be an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageRejected("Not a recognised image. Accepted formats: JPEG, PNG, WebP, BMP, TIFF, GIF.") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected("The image declares too many pixels.") from None
        except Exception as exc:  # Pillow raises many types on hostile headers
            raise ImageRejected(f"The image header could not be read ({type(exc).__name__}).") from None
        fmt = image.format or ""
        if fmt not in ALLOWED_FORMATS:
            raise ImageRejected(f"{fmt or 'This'} images are not accepted. Accepted: JPEG, PNG, WebP, BMP, TIFF, GIF.")
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageRejected("The image has no pixels.")
        if width * height > max_pixels:
            raise ImageRejected(
                f"The image is {width}×{height} = {width * height:,} pixels; the limit is {max_pixels:,}."
            )
        frames = getattr(image, "n_frames", 1)
        try:
            image.seek(0)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # in place: no second copy of a large image
            rgb = to_rgb(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected("The image declares too many pixels.") from None
        except Exception as exc:  # truncated data, bad compression streams, broken palettes…
            raise ImageRejected(f"The image data is corrupt or truncated ({type(exc).__name__}).") from None
    return DecodedImage(image=rgb, format=fmt, width=rgb.width, height=rgb.height, frames=frames)


def make_thumbnail(image: Image.Image, *, edge: int = THUMBNAIL_EDGE) -> bytes | None:
    """A WebP thumbnail no larger than ``edge`` pixels, or None when the image is already that small.

    Small images (the 28×28 rock tiles) are shown enlarged by the browser with pixelated rendering,
    which is crisper than any resampled copy, so they get no thumbnail at all.
    """
    if max(image.size) <= edge:
        return None
    thumb = image.copy()
    thumb.thumbnail((edge, edge), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, format="WEBP", quality=85)
    return out.getvalue()


FINGERPRINT_EDGE = 8


def pixel_fingerprint(image: Image.Image, *, edge: int = FINGERPRINT_EDGE) -> np.ndarray:
    """A tiny greyscale layout of the image: ``edge``² area averages, zero-mean and unit-length (float32).

    The dot product of two fingerprints is the Pearson correlation of their thumbnails: near 1 for a
    re-encoded, resized, slightly cropped, brightened or recoloured copy (a uniform brightness or
    contrast change cancels out), and much lower for a different rock of the same type, whose texture
    the embedding may rate as just as close (see search/services/duplicates.py).
    """
    grey = image.convert("L")
    if grey.size != (edge, edge):
        grey = grey.resize((edge, edge), resample=Image.Resampling.BOX, reducing_gap=3.0)
    values = np.asarray(grey, dtype=np.float32).ravel()
    values = values - values.mean()
    norm = float(np.linalg.norm(values))
    return values / norm if norm > 1e-6 else values  # a flat image: all zeros, correlating with nothing
