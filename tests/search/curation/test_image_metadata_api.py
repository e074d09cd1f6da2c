"""PATCH /api/v1/images/<id>/ (staff or token): sample metadata, validated; shown in answers and on the page."""

from __future__ import annotations

import pytest

from search.models import Image
from tests.search.api.conftest import IMAGES_URL, WRITE_DENIED, assert_error

GOOD = {
    "sample_id": "NO-7-11",
    "collection": "North Sea 7/11",
    "latitude": 56.43,
    "longitude": 3.21,
    "depth_m": 2840.5,
    "tags": ["Core", "foliated", "core"],
    "description": "Banded gneiss from the reservoir.",
    "label": "Schist",
}


def test_staff_and_staff_token_may_patch_and_answers_show_it(callers, collection):
    image = collection[0]
    response = callers.staff_token.patch(f"{IMAGES_URL}{image.pk}/", GOOD, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tags"] == ["core", "foliated"] and body["label"] == "schist"
    assert (body["sample_id"], body["depth_m"], body["latitude"]) == ("NO-7-11", 2840.5, 56.43)
    stored = Image.objects.get(pk=image.pk)
    assert (stored.collection, stored.longitude, stored.description) == (GOOD["collection"], 3.21, GOOD["description"])
    listed = callers.anonymous.get(IMAGES_URL, {"collection": "North Sea 7/11"}).json()
    assert [item["id"] for item in listed["results"]] == [image.pk]
    response = callers.staff.patch(f"{IMAGES_URL}{image.pk}/", {"depth_m": None}, format="json")
    assert response.status_code == 200 and Image.objects.get(pk=image.pk).depth_m is None


@pytest.mark.parametrize("who", sorted(WRITE_DENIED))
def test_others_may_not_patch(callers, collection, who):
    response = callers[who].patch(f"{IMAGES_URL}{collection[0].pk}/", {"collection": "x"}, format="json")
    assert_error(response, WRITE_DENIED[who])
    assert Image.objects.get(pk=collection[0].pk).collection == ""


BAD = {
    "latitude": {"latitude": 91, "longitude": 0},
    "longitude": {"latitude": 0, "longitude": -181},
    "depth_m": {"depth_m": -1},
    "tags": {"tags": ['say "hi"']},
    "sample_id": {"sample_id": "x" * 65},
    "description": {"description": "x" * 2001},
    "label": {"label": "<script>"},
}


@pytest.mark.parametrize("field", BAD)
def test_bad_values_are_400_naming_the_field_and_change_nothing(callers, collection, field):
    image = collection[1]
    error = assert_error(callers.staff.patch(f"{IMAGES_URL}{image.pk}/", BAD[field], format="json"), 400)
    assert field in error["fields"], error
    stored = Image.objects.get(pk=image.pk)
    assert (stored.latitude, stored.depth_m, stored.tags, stored.sample_id) == (None, None, [], "")


def test_half_a_location_and_a_taken_sample_id_are_refused(callers, collection):
    url = f"{IMAGES_URL}{collection[2].pk}/"
    assert "latitude" in assert_error(callers.staff.patch(url, {"latitude": 10}, format="json"), 400)["fields"]
    Image.objects.filter(pk=collection[0].pk).update(sample_id="TAKEN")
    error = assert_error(callers.staff.patch(url, {"sample_id": "TAKEN"}, format="json"), 400)
    assert "already used" in error["fields"]["sample_id"][0]


def test_put_is_not_offered(callers, collection):
    assert_error(callers.staff.put(f"{IMAGES_URL}{collection[0].pk}/", GOOD, format="json"), 405)


def test_the_image_page_shows_the_metadata(client, curated):
    page = client.get(f"/images/{curated[4].pk}/").content.decode()
    for text in ("S-004", "well-b", "54.00000°, -1.00000°", "400 m", "weathered", "specimen 4"):
        assert text in page, text
