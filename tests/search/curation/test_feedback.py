"""Relevance feedback: POST /api/v1/search/ with positive/negative ids (with or without an image), and the page."""

from __future__ import annotations

import numpy as np
import pytest

from search.models import Embedding, Image, IndexVersion
from search.services.feedback import FeedbackError, rocchio
from tests.conftest import ROCK_TYPES, image_bytes
from tests.search.api.conftest import SEARCH_URL, assert_error, upload


def _vector(image_id: int) -> np.ndarray:
    live = IndexVersion.objects.get(is_active=True)
    return Embedding.objects.get(image_id=image_id, model_version=live.model_version).as_array()


def test_positive_ids_alone_search_around_their_mean(callers, curated):
    positive = [curated[2].pk, curated[5].pk]
    response = callers.anonymous.post(SEARCH_URL, {"positive": ",".join(map(str, positive)), "k": 12})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    centre = np.mean([_vector(i) for i in positive], axis=0)
    centre /= np.linalg.norm(centre)
    expected = {image.pk: float(_vector(image.pk) @ centre) for image in curated}
    assert {hit["id"] for hit in results} == set(expected)
    # Ranked by the dot product with the positives' mean (the two positives tie: compare scores, not ids).
    assert [hit["score"] for hit in results] == pytest.approx(sorted(expected.values(), reverse=True), abs=1e-5)
    assert [hit["score"] for hit in results] == pytest.approx([expected[hit["id"]] for hit in results], abs=1e-5)


def test_feedback_with_an_image_moves_towards_the_positive_and_away_from_the_negative(callers, curated):
    query = image_bytes(seed=1000)  # not in the collection
    before = callers.anonymous.post(SEARCH_URL, {"image": upload(query), "k": 12}).json()["results"]
    rank_before = {hit["id"]: rank for rank, hit in enumerate(before)}
    positive, negative = before[-1]["id"], before[0]["id"]
    after = callers.anonymous.post(
        SEARCH_URL, {"image": upload(query), "k": 12, "positive": str(positive), "negative": str(negative)}
    ).json()["results"]
    rank_after = {hit["id"]: rank for rank, hit in enumerate(after)}
    assert rank_after[positive] < rank_before[positive]
    assert rank_after[negative] >= rank_before[negative]


def test_feedback_keeps_the_filters(callers, curated):
    response = callers.anonymous.post(SEARCH_URL, {"positive": str(curated[1].pk), "k": 12, "collection": "well-b"})
    assert {hit["id"] for hit in response.json()["results"]} == {image.pk for image in curated[1::3]}


@pytest.mark.parametrize(
    "params, field",
    [
        ({"positive": "1,x"}, "positive"),
        ({"positive": "999999"}, "positive"),
        ({"negative": "3"}, "image"),  # nothing to search with
        ({}, "image"),
    ],
)
def test_bad_feedback_is_400_naming_the_field(callers, curated, params, field):
    assert field in assert_error(callers.anonymous.post(SEARCH_URL, params), 400)["fields"]


def test_an_image_marked_both_ways_is_400(callers, curated):
    both = str(curated[0].pk)
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"positive": both, "negative": both}), 400)
    assert "both" in error["message"]


def test_rocchio_is_the_weighted_unit_sum():
    base, plus, minus = np.eye(3)[0], np.eye(3)[1], np.eye(3)[2]
    query = rocchio(base, [plus], [minus])[0]
    expected = np.array([1.0, 0.75, -0.15]) / np.linalg.norm([1.0, 0.75, -0.15])
    assert query == pytest.approx(expected, abs=1e-6)
    with pytest.raises(FeedbackError):
        rocchio(None, [plus], [plus / 0.15 * 0.75])


def test_the_page_refines_with_marked_results(client, curated):
    page = client.get("/", {"image": curated[0].pk, "k": 4}).content.decode()
    assert page.count('name="positive"') == 4 and 'id="refine-button"' in page
    target = curated[7].pk  # far down the list for this query, or not shown at all
    response = client.post("/", {"query_image": curated[0].pk, "k": 4, "positive": [target], "refine": "1"})
    assert response.status_code == 200
    refined = response.content.decode()
    assert f'href="/images/{target}/" class="hit-image"' in refined
    assert f'value="{target}" form="refine-form" checked' in refined  # the mark is shown back
    assert f'href="/images/{curated[0].pk}/" class="hit-image"' not in refined  # the query itself is left out


@pytest.mark.realdata
def test_feedback_moves_results_towards_the_positive_class_on_real_data(
    callers, real_images_dir, settings, transactional_db
):
    """Real rocks, the shipped model: marking three images of another class pulls that class into the results."""
    from search.archives import SourceFile
    from search.services.ingestion import images_import
    from tests.conftest import REPO_ROOT

    settings.GEOSIM_DEFAULT_CHECKPOINT = REPO_ROOT / "training" / "weights" / "default.pt"
    files = [
        SourceFile(name=f"{folder.name}/{path.name}", data=path.read_bytes(), label=folder.name)
        for folder in sorted(real_images_dir.iterdir())
        for path in sorted(folder.glob("*.jpg"))[:40]
    ]
    images_import(files)
    assert Image.objects.count() == 240
    query = Image.objects.filter(label="gneiss").first()
    other = "marble"
    before = callers.anonymous.get(f"/api/v1/images/{query.pk}/similar/", {"k": 100}).json()["results"]
    positive = list(Image.objects.filter(label=other).values_list("pk", flat=True)[:3])
    data = query.file.open("rb").read()
    after = callers.anonymous.post(
        SEARCH_URL, {"image": upload(data), "k": 100, "positive": ",".join(map(str, positive))}
    ).json()["results"]
    # The first 100 of 240: the marked class gains places, and its first image moves up.
    share_before = sum(hit["label"] == other for hit in before)
    share_after = sum(hit["label"] == other for hit in after)
    assert share_after > share_before, (share_before, share_after)
    first_before = next((rank for rank, hit in enumerate(before) if hit["label"] == other), 100)
    first_after = next(rank for rank, hit in enumerate(after) if hit["label"] == other)
    assert first_after < first_before
    assert set(ROCK_TYPES) >= {hit["label"] for hit in after}
