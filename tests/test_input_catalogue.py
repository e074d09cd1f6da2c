"""Every kind of bad file and every unusual-but-valid image, through every way in: API, web form, CLI, admin.

Bad files get a 4xx with a message (JSON on the API, a page message on forms, a "rejected" line on the
CLI) and leave no file and no row. Valid images of every mode and format are accepted and then found,
with score 1, by a plain RGB PNG copy made by the obvious conversion — "searched correctly", which
querying with the same bytes could not show.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image, ImageOps

from search.models import Image as ImageRow
from search.models import Job
from tests.conftest import image_bytes, png_declaring

pytestmark = pytest.mark.django_db(transaction=True)

BYTE_LIMIT = 1_000_000


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _texture(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def _corrupted_png() -> bytes:
    data = bytearray(_save(_texture(64, 64, 1), "PNG"))
    data[80:120] = b"\x00" * 40
    return bytes(data)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_texture(40, 20, 2), "JPEG", exif=exif.tobytes(), quality=95)


def _palette_with_transparency() -> bytes:
    image = _texture(32, 32, 3).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return _save(image, "PNG", transparency=0)


def _animated_gif() -> bytes:
    frames = [_texture(24, 24, 4).convert("P"), _texture(24, 24, 5).convert("P")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


BAD = {
    "zero bytes": ("empty.jpg", b""),
    "text named .jpg": ("notes.jpg", b"just some field notes, not a photograph\n" * 5),
    "HTML named .jpg": ("page.jpg", b"<!doctype html><html><script>alert(1)</script></html>"),
    "SVG named .jpg": ("vector.jpg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    "PDF": ("report.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF"),
    "truncated JPEG": ("cut.jpg", image_bytes(seed=9, size=(96, 96))[:700]),
    "corrupted PNG": ("broken.png", _corrupted_png()),
    "decompression bomb": ("bomb.png", png_declaring(60_000, 60_000)),
    "over the byte limit": ("huge.bmp", _save(_texture(700, 700, 6), "BMP")),
}

VALID = {
    "CMYK": ("cmyk.jpg", lambda: _save(_texture(30, 30, 11).convert("CMYK"), "JPEG", quality=95)),
    "greyscale": ("grey.png", lambda: _save(_texture(30, 30, 12).convert("L"), "PNG")),
    "16-bit": (
        "deep.png",
        # A narrow band of the 16-bit range, as scans often use: a per-image contrast stretch would show.
        lambda: _save(Image.fromarray((np.arange(900).reshape(30, 30) * 11 + 20_000).astype(np.uint16)), "PNG"),
    ),
    "palette with transparency": ("palette.png", _palette_with_transparency),
    "RGBA": ("alpha.png", lambda: _save(_texture(30, 30, 13).convert("RGBA"), "PNG")),
    "EXIF-rotated": ("rotated.jpg", _exif_rotated),
    "1x1": ("dot.png", lambda: _save(Image.new("RGB", (1, 1), (120, 80, 40)), "PNG")),
    "very wide": ("strip.png", lambda: _save(_texture(3000, 6, 14), "PNG")),
    "2000x2000": ("big.jpg", lambda: _save(_texture(40, 40, 15).resize((2000, 2000)), "JPEG", quality=80)),
    "WebP": ("rock.webp", lambda: _save(_texture(30, 30, 16), "WEBP", quality=95)),
    "BMP": ("rock.bmp", lambda: _save(_texture(30, 30, 17), "BMP")),
    "TIFF": ("rock.tif", lambda: _save(_texture(30, 30, 18), "TIFF")),
    "JPEG named .png": ("actually-jpeg.png", lambda: _save(_texture(30, 30, 19), "JPEG", quality=95)),
    "animated GIF (first frame)": ("anim.gif", _animated_gif),
}


@pytest.fixture(autouse=True)
def limits(settings):
    settings.GEOSIM_MAX_UPLOAD_BYTES = BYTE_LIMIT
    settings.GEOSIM_SEARCH_RATE = settings.GEOSIM_UPLOAD_RATE = None


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_user("curator", password="pw-x-12345", is_staff=True, is_superuser=True)
    )
    return client


def _stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "images"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _assert_nothing_stored():
    assert ImageRow.objects.count() == 0
    assert not Job.objects.filter(kind=Job.Kind.PROCESS).exists()
    assert _stored_files() == []


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_file_via_api_is_4xx_json_and_stores_nothing(staff_client, case):
    name, data = BAD[case]
    response = staff_client.post("/api/v1/images/", {"image": SimpleUploadedFile(name, data)})
    assert 400 <= response.status_code < 500, response.status_code
    assert response.json()["error"]["message"]
    search = staff_client.post("/api/v1/search/", {"image": SimpleUploadedFile(name, data)})
    assert 400 <= search.status_code < 500
    _assert_nothing_stored()


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_file_via_web_form_is_a_page_message(client, case):
    name, data = BAD[case]
    response = client.post("/", {"image": SimpleUploadedFile(name, data), "k": "5"})
    assert 400 <= response.status_code < 500
    assert "text/html" in response["Content-Type"]
    assert b'class="error' in response.content or b'role="alert"' in response.content
    _assert_nothing_stored()


def test_bad_files_via_cli_are_rejected_lines_and_admin_reports_them(staff_client, tmp_path):
    folder = tmp_path / "bad" / "gneiss"
    folder.mkdir(parents=True)
    for name, data in BAD.values():
        (folder / name).write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_images", str(tmp_path / "bad"), "--no-progress", stdout=out, stderr=err)
    assert f"added 0, duplicates 0, rejected {len(BAD)}" in out.getvalue()
    assert err.getvalue().count("rejected ") == len(BAD)

    files = [SimpleUploadedFile(name, data) for name, data in BAD.values()]
    response = staff_client.post("/admin/search/image/upload/", {"files": files}, follow=True)
    assert f"added 0, duplicates 0, rejected {len(BAD)}" in response.content.decode()
    _assert_nothing_stored()


def _re_encoded_copy(data: bytes) -> bytes:
    """The image as a plain 8-bit RGB PNG, converted here by the obvious rule for its mode (not GeoSim's code).

    Searching with it finds the original with score 1 only if GeoSim converted the original to the same
    pixels: querying with the original bytes would repeat any wrong conversion on both sides.
    """
    with Image.open(io.BytesIO(data)) as opened:
        opened.seek(0)
        image = ImageOps.exif_transpose(opened)
        if image.mode.startswith("I;16"):
            rgb = Image.fromarray(np.rint(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8)).convert("RGB")
        elif image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            white.alpha_composite(image.convert("RGBA"))
            rgb = white.convert("RGB")
        else:
            rgb = image.convert("RGB")
    return _save(rgb, "PNG")


@pytest.mark.parametrize("case", VALID, ids=list(VALID))
def test_unusual_valid_image_is_accepted_and_found_by_a_re_encoded_copy(staff_client, case, settings):
    for seed in range(4):  # neighbours to compete with
        staff_client.post("/api/v1/images/", {"image": SimpleUploadedFile(f"n{seed}.jpg", image_bytes(seed=seed))})
    name, make = VALID[case]
    data = make()
    created = staff_client.post("/api/v1/images/", {"image": SimpleUploadedFile(name, data), "label": "gneiss"})
    assert created.status_code == 201, created.json()
    image_id = created.json()["id"]
    copy = SimpleUploadedFile("copy.png", _re_encoded_copy(data))
    settings.GEOSIM_MAX_UPLOAD_BYTES = 50_000_000  # the lossless copy of the 2000×2000 JPEG is larger
    answer = staff_client.post("/api/v1/search/", {"image": copy, "k": "3"}).json()
    assert answer["results"][0]["id"] == image_id
    assert answer["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert staff_client.get(answer["results"][0]["image_url"]).status_code == 200
