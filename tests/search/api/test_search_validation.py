"""Bad search input is a 4xx JSON error naming the problem — never a 500, never clamped, nothing stored."""

import io

import pytest
from PIL import Image as PILImage

from search.models import Image

from .conftest import SEARCH_URL, assert_error, upload


@pytest.mark.parametrize(
    "k", ["abc", "0", "101", "-1", "2.5", "1e2", "99999999999999999999999"], ids=lambda k: f"k={k}"
)
def test_k_outside_1_to_100_or_not_an_integer_is_400(callers, k):
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(), "k": k}), 400, "invalid")
    assert "k" in error["fields"]


@pytest.mark.parametrize("k", ["1", "100"])
def test_k_bounds_are_accepted(callers, collection, k):
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(), "k": k})
    assert response.status_code == 200
    assert len(response.json()["results"]) == min(int(k), len(collection))


def test_unknown_label_is_400(callers, collection):
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(), "label": "nope"}), 400, "unknown_label")
    assert "nope" in error["fields"]["label"][0]


def test_unusable_label_text_is_400(callers, collection):
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(), "label": "<script>"}), 400)
    assert "label" in error["fields"]


def test_missing_image_is_400(callers, db):
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"k": 3}), 400, "invalid")
    assert "image" in error["fields"]


def test_image_as_a_text_field_is_400(callers, db):
    assert_error(callers.anonymous.post(SEARCH_URL, {"image": "not a file"}), 400, "invalid")


def test_json_body_is_415(callers, db):
    response = callers.anonymous.post(SEARCH_URL, {"image": "aGVsbG8=", "k": 3}, format="json")
    assert_error(response, 415, "unsupported_media_type")


def test_malformed_multipart_is_400(callers, db):
    response = callers.anonymous.generic(
        "POST", SEARCH_URL, b"--x\r\nnonsense", content_type="multipart/form-data; boundary=x"
    )
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)


def test_empty_file_is_400(callers, db):
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(b"")}), 400)
    assert "image" in error["fields"]


def test_text_file_named_jpg_is_400(callers):
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(b"just some text, honest\n" * 10)})
    error = assert_error(response, 400, "invalid_image")
    assert "Not a recognised image" in error["fields"]["image"][0]


def test_truncated_jpeg_is_400(callers):
    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), "grey").save(out, format="JPEG")
    assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(out.getvalue()[:200])}), 400, "invalid_image")


def test_rejected_input_stores_nothing(callers, collection, settings):
    before = sorted(p.name for p in (settings.MEDIA_ROOT / "images").rglob("*"))
    for data in (b"", b"text", b"\x89PNG\r\n\x1a\n broken"):
        callers.anonymous.post(SEARCH_URL, {"image": upload(data)})
    assert Image.objects.count() == len(collection)
    assert sorted(p.name for p in (settings.MEDIA_ROOT / "images").rglob("*")) == before
