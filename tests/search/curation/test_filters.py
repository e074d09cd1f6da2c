"""Metadata filters on search (API, page, CLI), the image list and the page grid: alone, combined, exact."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from search.filters import FilterError, parse_filters
from search.models import Embedding, Image, IndexVersion
from tests.conftest import image_bytes
from tests.search.api.conftest import IMAGES_URL, SEARCH_URL, assert_error, upload

from .conftest import build_collection

# Each filter alone and some combinations, with the images (by position in `curated`) they keep.
FILTERS = {
    "label": ({"label": "Schist"}, lambda i: i % 3 == 1),
    "collection": ({"collection": "well-a"}, lambda i: i % 3 == 0),
    "tag": ({"tag": "Weathered"}, lambda i: i % 4 == 0),
    "depth_min": ({"depth_min": "750"}, lambda i: i >= 8),
    "depth_max": ({"depth_max": "300"}, lambda i: i <= 3),
    "bbox": ({"bbox": "-3.5,51.5,2,57"}, lambda i: 2 <= i <= 7),
    "label+collection": ({"label": "gneiss", "collection": "well-a"}, lambda i: i % 3 == 0),
    "tag+depth": ({"tag": "weathered", "depth_min": "100", "depth_max": "900"}, lambda i: i in (4, 8)),
    "collection+bbox+depth": (
        {"collection": "well-c", "bbox": "-5,50,6,61", "depth_max": "10000"},
        lambda i: False,
    ),
    "all six": (
        {
            "label": "schist",
            "collection": "well-b",
            "tag": "core",
            "depth_min": "0",
            "depth_max": "1000",
            "bbox": "-5,50,6,61",
        },
        lambda i: i % 3 == 1,
    ),
}


def expected(curated, keep) -> set[int]:
    return {image.pk for i, image in enumerate(curated) if keep(i)}


@pytest.mark.parametrize("name", FILTERS)
def test_image_list_filters(callers, curated, name):
    params, keep = FILTERS[name]
    body = callers.anonymous.get(IMAGES_URL, {**params, "page_size": 100}).json()
    assert {item["id"] for item in body["results"]} == expected(curated, keep)


@pytest.mark.parametrize("name", FILTERS)
def test_search_filters_are_exact_among_the_matching_images(callers, curated, name):
    params, keep = FILTERS[name]
    wanted = expected(curated, keep)
    query = image_bytes(seed=5)
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(query), "k": 12, **params})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert {hit["id"] for hit in results} == wanted  # k ≥ matches: every matching image, and nothing else
    # Ranked exactly: the same order as brute-force dot products with the stored vectors.
    if wanted:
        assert [hit["id"] for hit in results] == _brute_force(query, wanted)[: len(results)]


def test_similar_images_take_filters_and_exclude_the_image(callers, curated):
    response = callers.anonymous.get(f"{IMAGES_URL}{curated[0].pk}/similar/", {"k": 10, "collection": "well-a"})
    ids = {hit["id"] for hit in response.json()["results"]}
    assert ids == {image.pk for i, image in enumerate(curated) if i % 3 == 0 and i != 0}


def test_k_results_from_a_one_percent_filter(callers, transactional_db):
    images = build_collection(300, with_metadata=lambda i: {"collection": "rare" if i % 100 == 7 else "common"})
    rare = {image.pk for image in images if image.collection == "rare"}
    assert len(rare) == 3 and IndexVersion.objects.get(is_active=True).vector_count == 300
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(image_bytes(seed=42)), "k": 3, "collection": "rare"})
    assert {hit["id"] for hit in response.json()["results"]} == rare


MALFORMED = {
    "depth_min": {"depth_min": "deep"},
    "depth_max": {"depth_max": "nan"},
    "bbox": {"bbox": "1,2,3"},
    "tag": {"tag": 'a"b'},
    "label": {"label": "<b>"},
}


@pytest.mark.parametrize("param", MALFORMED)
def test_malformed_filters_are_400_naming_the_parameter(callers, curated, param):
    error = assert_error(callers.anonymous.get(IMAGES_URL, MALFORMED[param]), 400)
    assert param in error["fields"]
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(), **MALFORMED[param]}), 400)
    assert param in error["fields"]


@pytest.mark.parametrize(
    "params",
    [{"bbox": "0,91,1,92"}, {"bbox": "a,b,c,d"}, {"depth_min": "5", "depth_max": "1"}, {"bbox": "0,10,1,5"}],
)
def test_more_malformed_filters(params):
    with pytest.raises(FilterError):
        parse_filters(params)


def test_a_bbox_across_the_antimeridian(curated):
    Image.objects.filter(pk=curated[0].pk).update(latitude=10, longitude=179.5)
    Image.objects.filter(pk=curated[1].pk).update(latitude=10, longitude=-179.5)
    found = set(parse_filters({"bbox": "179,0,-179,20"}).matching_ids())
    assert found == {curated[0].pk, curated[1].pk}


def test_the_page_filters_the_grid_and_the_search(client, curated):
    page = client.get("/", {"collection": "well-b", "depth_max": "500"}).content.decode()
    wanted = expected(curated, lambda i: i % 3 == 1 and i <= 5)
    shown = {image.pk for image in curated if f"?image={image.pk}&amp;" in page}
    assert shown == wanted
    assert "Matching images" in page and "latitude 51.000° to 54.000°" in page
    page = client.get("/", {"image": curated[0].pk, "k": 10, "collection": "well-b", "depth_max": "500"})
    hits = {image.pk for image in curated if f'href="/images/{image.pk}/" class="hit-image"' in page.content.decode()}
    assert hits == wanted
    bad = client.get("/", {"depth_min": "deep"})
    assert bad.status_code == 400 and "depth_min" in bad.content.decode()


def test_search_similar_cli_takes_filters(curated, tmp_path):
    query = tmp_path / "q.jpg"
    query.write_bytes(image_bytes(seed=3))
    out = io.StringIO()
    call_command("search_similar", str(query), "-k", "10", "--tag", "weathered", "--json", stdout=out)
    ids = {hit["id"] for hit in json.loads(out.getvalue())["results"]}
    assert ids == expected(curated, lambda i: i % 4 == 0)
    with pytest.raises(CommandError, match="--depth-min"):
        call_command("search_similar", str(query), "--depth-min", "x", stdout=io.StringIO())


def _brute_force(query: bytes, ids: set[int]) -> list[int]:
    from search import embedder

    live = IndexVersion.objects.get(is_active=True)
    from search.imaging import decode_image

    vector = embedder.embed_images(live.model_version, [decode_image(query, max_pixels=10**7).image])[0]
    rows = Embedding.objects.filter(image_id__in=ids, model_version=live.model_version)
    scored = sorted(((float(np.dot(row.as_array(), vector)), row.image_id) for row in rows), reverse=True)
    return [image_id for _, image_id in scored]
