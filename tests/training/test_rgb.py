"""training.rgb.to_rgb: one mode conversion for the search service and for training, banded, exact."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from search.imaging import decode_image
from training import rgb
from training.preprocessing import to_model_input
from training.rgb import to_rgb

SIZE = (41, 29)  # not square and not 28×28: the crop and resize run too


def _grey16() -> np.ndarray:
    rng = np.random.default_rng(16)
    return rng.integers(0, 65536, size=SIZE[::-1], dtype=np.uint16)


def _texture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(*SIZE[::-1], 3), dtype=np.uint8))


def _alpha(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=SIZE[::-1], dtype=np.uint8)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _palette_with_transparency() -> bytes:
    image = _texture(3).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    return _save(image, "PNG", transparency=5)


FILES = {
    "16-bit PNG": lambda: _save(Image.fromarray(_grey16()), "PNG"),
    "16-bit TIFF": lambda: _save(Image.fromarray(_grey16()), "TIFF"),
    "32-bit integer TIFF (I)": lambda: _save(Image.fromarray(_grey16().astype(np.int32) - 300), "TIFF"),
    "float TIFF (F), 0–1": lambda: _save(Image.fromarray(_grey16().astype(np.float32) / 65535), "TIFF"),
    "CMYK JPEG": lambda: _save(_texture(1).convert("CMYK"), "JPEG", quality=95),
    "palette PNG with transparency": _palette_with_transparency,
    "LA PNG": lambda: _save(Image.merge("LA", [_texture(2).convert("L"), Image.fromarray(_alpha(2))]), "PNG"),
}


@pytest.mark.parametrize("name", FILES)
def test_search_and_training_see_the_same_pixels(name):
    data = FILES[name]()
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.mode != "RGB"
        trained_on = to_model_input(opened)  # how training.data reads a file
    searched_with = to_model_input(decode_image(data, max_pixels=10**6).image)  # an upload or an import
    assert trained_on.dtype == searched_with.dtype == np.uint8
    np.testing.assert_array_equal(searched_with, trained_on)


def test_sixteen_bit_is_divided_by_257_rounded():
    values = _grey16()
    converted = np.asarray(to_rgb(Image.fromarray(values)))
    expected = np.rint(values.astype(np.float64) / 257.0).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(converted[..., channel], expected)


def test_an_eight_bit_picture_stored_as_sixteen_bit_comes_back_unchanged():
    grey = _texture(4).convert("L")
    as_16_bit = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    np.testing.assert_array_equal(np.asarray(to_rgb(as_16_bit))[..., 0], np.asarray(grey))


def test_float_and_32_bit_scales():
    unit = np.linspace(0, 1, SIZE[0] * SIZE[1], dtype=np.float32).reshape(SIZE[::-1])
    np.testing.assert_array_equal(
        np.asarray(to_rgb(Image.fromarray(unit)))[..., 1], np.rint(unit * 255).astype(np.uint8)
    )
    eight_bit_ints = np.arange(SIZE[0] * SIZE[1], dtype=np.int32).reshape(SIZE[::-1]) % 256 - 10
    np.testing.assert_array_equal(
        np.asarray(to_rgb(Image.fromarray(eight_bit_ints)))[..., 2], np.clip(eight_bit_ints, 0, 255).astype(np.uint8)
    )


@pytest.mark.parametrize("name", FILES)
def test_banded_conversion_equals_converting_the_whole_image_at_once(name, monkeypatch):
    with Image.open(io.BytesIO(FILES[name]())) as opened:
        opened.load()
        whole = np.asarray(to_rgb(opened))
        monkeypatch.setattr(rgb, "BAND_PIXELS", SIZE[0] * 3 + 1)  # bands of 3 rows, the last one shorter
        banded = np.asarray(to_rgb(opened))
    np.testing.assert_array_equal(banded, whole)


def test_transparency_is_composited_on_white_like_pillow():
    base = _texture(5)
    rgba = base.copy()
    rgba.putalpha(Image.fromarray(_alpha(5)))
    white = Image.new("RGBA", SIZE, (255, 255, 255, 255))
    white.alpha_composite(rgba)
    np.testing.assert_array_equal(np.asarray(to_rgb(rgba)), np.asarray(white.convert("RGB")))
