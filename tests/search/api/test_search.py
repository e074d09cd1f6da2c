"""POST /api/v1/search/: top-K of an uploaded image, with the contract's keys."""

import pytest

from search.models import Image, IndexVersion, ModelVersion
from tests.conftest import image_bytes

from .conftest import CALLERS, SEARCH_URL, assert_error, upload

REQUIRED_KEYS = {"results", "predicted_label", "model_version", "index_version", "took_ms"}


def test_returns_k_results_sorted_by_score_with_the_contract_keys(callers, collection):
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(image_bytes(seed=4)), "k": 3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body.keys() >= REQUIRED_KEYS
    assert len(body["results"]) == 3
    for hit in body["results"]:
        assert set(hit) >= {"id", "score", "similarity", "label", "image_url"}
        assert 0.0 <= hit["similarity"] <= 1.0
        assert hit["image_url"].startswith("http://testserver/media/images/")
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["results"][0]["id"] == collection[4].pk  # the same bytes are their own nearest neighbour
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert body["index_version"] == IndexVersion.objects.get(is_active=True).version
    assert body["model_version"] == ModelVersion.objects.get(is_active=True).name
    assert body["took_ms"] >= 0
    assert body["predicted_label"] in body["vote"]
    assert sum(body["vote"].values()) == pytest.approx(1.0, abs=1e-3)


def test_k_defaults_to_five(callers, collection):
    response = callers.anonymous.post(SEARCH_URL, {"image": upload()})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 5


def test_label_filters_the_results(callers, collection):
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(), "k": 2, "label": "Schist"})
    assert response.status_code == 200
    assert {hit["label"] for hit in response.json()["results"]} == {"schist"}


def test_anyone_may_search(callers, collection):
    for who in CALLERS:  # one collection for all callers: building it is the slow part
        assert callers[who].post(SEARCH_URL, {"image": upload(), "k": 1}).status_code == 200, who


def test_no_index_yet_is_503_json(callers, db):
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload()}), 503, "index_unavailable")
    assert "No index has been built yet" in error["message"]


def test_a_damaged_index_is_503_without_naming_files_then_rebuilt(callers, collection):
    from pathlib import Path

    from search import live_index

    active = IndexVersion.objects.get(is_active=True)
    (Path(active.path) / "index.faiss").write_bytes(b"garbage")
    live_index.reset()
    response = callers.anonymous.post(SEARCH_URL, {"image": upload()})
    error = assert_error(response, 503, "index_unavailable")
    assert error["message"] == f"The search index (version {active.version}) is unusable; a rebuild has been started."
    assert int(response["Retry-After"]) > 0
    # The failure requested a rebuild, which in-process tasks have already run.
    assert callers.anonymous.post(SEARCH_URL, {"image": upload()}).status_code == 200


def test_search_stores_nothing(callers, collection):
    callers.anonymous.post(SEARCH_URL, {"image": upload(image_bytes(seed=77))})
    assert Image.objects.count() == len(collection)


def test_same_keys_as_search_similar_json(callers, collection, tmp_path):
    import json
    from io import StringIO

    from django.core.management import call_command

    query = tmp_path / "query.jpg"
    query.write_bytes(image_bytes(seed=3))
    out = StringIO()
    call_command("search_similar", str(query), "-k", "2", "--json", stdout=out)
    cli = json.loads(out.getvalue())
    api = callers.anonymous.post(SEARCH_URL, {"image": upload(query.read_bytes()), "k": 2}).json()
    assert set(api) == set(cli)
    assert set(api["results"][0]) == set(cli["results"][0])
    assert [hit["id"] for hit in api["results"]] == [hit["id"] for hit in cli["results"]]
