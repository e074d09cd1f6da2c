"""GET /api/v1/images/<id>/similar/: the same answer shape, the image itself excluded."""

import pytest

from .conftest import CALLERS, IMAGES_URL, assert_error


def similar_url(image_id) -> str:
    return f"{IMAGES_URL}{image_id}/similar/"


def test_excludes_the_image_itself_and_returns_k(callers, collection):
    query = collection[2]
    response = callers.anonymous.get(similar_url(query.pk), {"k": 5})
    assert response.status_code == 200, response.content
    body = response.json()
    assert {"results", "predicted_label", "model_version", "index_version", "took_ms"} <= body.keys()
    ids = [hit["id"] for hit in body["results"]]
    assert len(ids) == 5
    assert query.pk not in ids
    assert set(ids) == {image.pk for image in collection} - {query.pk}
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_label_filter(callers, collection):
    response = callers.anonymous.get(similar_url(collection[0].pk), {"k": 3, "label": "marble"})
    assert response.status_code == 200
    assert {hit["label"] for hit in response.json()["results"]} == {"marble"}


def test_anyone_may_ask(callers, collection):
    for who in CALLERS:
        assert callers[who].get(similar_url(collection[0].pk)).status_code == 200, who


def test_unknown_id_is_404_json(callers, collection):
    assert_error(callers.anonymous.get(similar_url(987654)), 404, "not_found")


@pytest.mark.parametrize("image_id", ["abc", "-1", "1.5", "99999999999999999999999"])
def test_non_numeric_or_huge_id_is_404_json(callers, db, image_id):
    assert_error(callers.anonymous.get(similar_url(image_id)), 404)


@pytest.mark.parametrize("params", [{"k": "abc"}, {"k": 0}, {"k": 101}])
def test_bad_k_is_400(callers, collection, params):
    error = assert_error(callers.anonymous.get(similar_url(collection[0].pk), params), 400, "invalid")
    assert "k" in error["fields"]


def test_unknown_label_is_400(callers, collection):
    assert_error(callers.anonymous.get(similar_url(collection[0].pk), {"label": "nope"}), 400, "unknown_label")
