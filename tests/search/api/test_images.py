"""GET /api/v1/images/ (paginated, filterable) and /api/v1/images/<id>/: public reads of the collection."""

import pytest

from .conftest import CALLERS, IMAGES_URL, assert_error

IMAGE_FIELDS = {
    "id",
    "label",
    "width",
    "height",
    "format",
    "byte_size",
    "sha256",
    "source",
    "original_name",
    "sample_id",
    "collection",
    "latitude",
    "longitude",
    "depth_m",
    "tags",
    "description",
    "created_at",
    "image_url",
    "thumbnail_url",
    "display_url",
}


def test_anyone_may_list_and_read(callers, collection):
    for who in CALLERS:
        response = callers[who].get(IMAGES_URL)
        assert response.status_code == 200, who
        body = response.json()
        assert body["count"] == len(collection)
        assert set(body["results"][0]) == IMAGE_FIELDS
        assert callers[who].get(f"{IMAGES_URL}{collection[0].pk}/").status_code == 200, who


def test_list_is_paginated_newest_first(callers, collection):
    first = callers.anonymous.get(IMAGES_URL, {"page_size": 4}).json()
    assert first["count"] == 6 and len(first["results"]) == 4 and first["next"] and first["previous"] is None
    second = callers.anonymous.get(IMAGES_URL, {"page_size": 4, "page": 2}).json()
    ids = [item["id"] for item in first["results"] + second["results"]]
    assert ids == sorted((image.pk for image in collection), reverse=True)


def test_list_filters_by_label(callers, collection):
    body = callers.anonymous.get(IMAGES_URL, {"label": "Gneiss"}).json()
    assert body["count"] == 2
    assert {item["label"] for item in body["results"]} == {"gneiss"}
    assert callers.anonymous.get(IMAGES_URL, {"label": "granite"}).json()["count"] == 0


@pytest.mark.parametrize("page_size", ["0", "501", "abc", "-3", "²", "4.5"])
def test_an_invalid_page_size_is_a_400_not_ignored(callers, collection, page_size):
    error = assert_error(callers.anonymous.get(IMAGES_URL, {"page_size": page_size}), 400, "invalid")
    assert "page_size" in error["fields"]


@pytest.mark.parametrize("page", ["99", "abc", "0"])
def test_a_page_that_does_not_exist_is_404_json(callers, db, page):
    assert_error(callers.anonymous.get(IMAGES_URL, {"page": page}), 404, "not_found")


def test_detail(callers, collection):
    image = collection[1]
    body = callers.anonymous.get(f"{IMAGES_URL}{image.pk}/").json()
    assert set(body) == IMAGE_FIELDS
    assert body["id"] == image.pk and body["label"] == image.label and body["sha256"] == image.sha256
    assert (body["width"], body["height"], body["format"]) == (28, 28, "JPEG")
    assert body["image_url"] == f"http://testserver{image.file.url}"
    assert body["thumbnail_url"] is None  # small images are shown as they are
    assert body["display_url"] == body["image_url"]


@pytest.mark.parametrize("image_id", ["424242", "abc", "99999999999999999999999"])
def test_detail_of_an_unknown_id_is_404_json(callers, db, image_id):
    assert_error(callers.anonymous.get(f"{IMAGES_URL}{image_id}/"), 404)


def test_detail_is_read_only(callers, collection):
    assert_error(callers.staff.delete(f"{IMAGES_URL}{collection[0].pk}/"), 405, "method_not_allowed")
