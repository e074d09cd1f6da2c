"""decode_image accepts every common image kind and refuses everything else with a reason."""

import io

import pytest
from PIL import Image

from search.imaging import ImageRejected, decode_image, make_thumbnail
from tests.conftest import image_bytes, png_declaring

MAX_PIXELS = 40_000_000


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_accepts_formats(fmt):
    decoded = decode_image(image_bytes(fmt=fmt, size=(40, 30)), max_pixels=MAX_PIXELS)
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (40, 30)
    assert decoded.format == fmt


@pytest.mark.parametrize("mode", ["CMYK", "L", "P", "RGBA", "LA", "1", "I;16"])
def test_converts_modes_to_rgb(mode):
    fmt = "TIFF" if mode in {"CMYK", "I;16"} else "PNG"
    base = Image.new("RGB", (8, 8), (200, 30, 30))
    image = base.convert(mode) if mode != "I;16" else Image.new("I;16", (8, 8), 40000)
    decoded = decode_image(_save(image, fmt), max_pixels=MAX_PIXELS)
    assert decoded.image.mode == "RGB"
    assert decoded.image.size == (8, 8)


def test_palette_transparency_composited_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    data = _save(image, "PNG", transparency=0)
    assert decode_image(data, max_pixels=MAX_PIXELS).image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_applied():
    image = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    decoded = decode_image(_save(image, "JPEG", exif=exif.tobytes()), max_pixels=MAX_PIXELS)
    assert decoded.image.size == (20, 40)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(out.getvalue(), max_pixels=MAX_PIXELS)
    assert decoded.frames == 2
    red, green, blue = decoded.image.getpixel((5, 5))
    assert red > 200 and blue < 50


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"hello, I am text", "Not a recognised image"),
        (b"<html><body>hi</body></html>", "Not a recognised image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "Not a recognised image"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj", "Not a recognised image"),
    ],
)
def test_rejects_non_images(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        decode_image(data, max_pixels=MAX_PIXELS)


def test_rejects_truncated_jpeg():
    data = image_bytes(size=(64, 64))
    with pytest.raises(ImageRejected, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2], max_pixels=MAX_PIXELS)


def test_rejects_corrupted_png():
    data = bytearray(image_bytes(fmt="PNG", size=(64, 64)))
    data[60:90] = b"\x00" * 30  # inside the IDAT stream
    with pytest.raises(ImageRejected):
        decode_image(bytes(data), max_pixels=MAX_PIXELS)


def test_rejects_decompression_bomb_before_decoding():
    with pytest.raises(ImageRejected, match="pixels"):
        decode_image(png_declaring(100_000, 100_000), max_pixels=MAX_PIXELS)


def test_pixel_limit_is_configurable():
    with pytest.raises(ImageRejected, match="limit is 100"):
        decode_image(image_bytes(size=(20, 20)), max_pixels=100)


def test_byte_limit():
    with pytest.raises(ImageRejected, match="limit is 10 bytes"):
        decode_image(image_bytes(), max_pixels=MAX_PIXELS, max_bytes=10)


def test_thumbnail_only_for_large_images():
    assert make_thumbnail(Image.new("RGB", (28, 28))) is None
    thumb = make_thumbnail(Image.new("RGB", (2000, 1000)))
    assert Image.open(io.BytesIO(thumb)).size == (256, 128)
