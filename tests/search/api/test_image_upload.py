"""POST /api/v1/images/: staff (session or token) add images; duplicates answer the stored one."""

import pytest

from search.models import Image, Job
from tests.conftest import image_bytes

from .conftest import CALLERS, IMAGES_URL, SEARCH_URL, WRITE_DENIED, assert_error, upload


@pytest.mark.parametrize("who", CALLERS)
def test_only_staff_may_upload(callers, who):
    response = callers[who].post(IMAGES_URL, {"image": upload(), "label": "gneiss"})
    if who in WRITE_DENIED:
        error = assert_error(response, WRITE_DENIED[who])
        assert error["code"] == ("not_authenticated" if who == "anonymous" else "permission_denied")
        assert not Image.objects.exists()
    else:
        assert response.status_code == 201, response.content


def test_anonymous_is_told_how_to_authenticate(callers, db):
    response = callers.anonymous.post(IMAGES_URL, {"image": upload()})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_bad_token_is_401(callers, db):
    callers.anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(callers.anonymous.post(IMAGES_URL, {"image": upload()}), 401, "authentication_failed")


def test_created_image_is_201_with_its_metadata(callers, db):
    data = image_bytes(seed=5, size=(40, 30), fmt="PNG")
    response = callers.staff_token.post(IMAGES_URL, {"image": upload(data, name="outcrop.png"), "label": " Gneiss "})
    assert response.status_code == 201, response.content
    body = response.json()
    image = Image.objects.get()
    assert body["id"] == image.pk
    assert (body["label"], body["width"], body["height"], body["format"]) == ("gneiss", 40, 30, "PNG")
    assert (body["original_name"], body["source"], body["byte_size"]) == ("outcrop.png", "api", len(data))
    assert image.uploaded_by.username == "staff"
    assert Job.objects.filter(kind=Job.Kind.PROCESS, params__image_ids=[image.pk]).exists()


def test_exact_duplicate_is_200_with_the_existing_image(callers, db):
    data = image_bytes(seed=6)
    first = callers.staff.post(IMAGES_URL, {"image": upload(data), "label": "schist"})
    again = callers.staff_token.post(IMAGES_URL, {"image": upload(data, name="copy.jpg")})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["label"] == "schist"
    assert Image.objects.count() == 1


def test_label_is_optional(callers, db):
    response = callers.staff.post(IMAGES_URL, {"image": upload()})
    assert response.status_code == 201
    assert response.json()["label"] is None


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({}, "invalid"),
        ({"image": "text, not a file"}, "invalid"),
        ({"image": upload(b"")}, "invalid"),
        ({"image": upload(b"plain text pretending to be a photo\n" * 20)}, "invalid_image"),
        ({"image": upload(b"GIF89a" + b"\x00" * 40, name="x.gif", content_type="image/gif")}, "invalid_image"),
        ({"image": upload(), "label": "x" * 80}, "invalid"),
        ({"image": upload(), "label": "<b>granite</b>"}, "invalid"),
    ],
    ids=["missing", "text-field", "empty", "text-as-jpg", "broken-gif", "long-label", "markup-label"],
)
def test_bad_uploads_are_400_and_store_nothing(callers, db, settings, form, code):
    error = assert_error(callers.staff.post(IMAGES_URL, form), 400, code)
    assert error["fields"]
    assert not Image.objects.exists()
    assert not Job.objects.exists()
    assert not list((settings.MEDIA_ROOT).rglob("*.*"))


def test_json_body_is_415_and_stores_nothing(callers, db):
    assert_error(callers.staff.post(IMAGES_URL, {"image": "aGk="}, format="json"), 415, "unsupported_media_type")
    assert not Image.objects.exists()


def test_uploaded_image_is_found_by_search(callers, collection):
    data = image_bytes(seed=321)
    created = callers.staff_token.post(IMAGES_URL, {"image": upload(data), "label": "quartzite"})
    assert created.status_code == 201
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(data), "k": 1})
    assert response.status_code == 200
    top = response.json()["results"][0]
    assert (top["id"], top["label"]) == (created.json()["id"], "quartzite")
    assert top["score"] == pytest.approx(1.0, abs=1e-4)
