"""One label rule everywhere: stored labels and every ``label`` filter (API, pages, CLI) are normalised alike."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from search.labels import InvalidLabel, normalize_label
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

LABELS = ("gneiss", "schist", "marble")


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("  Banded   Gneiss ", "banded gneiss"), ("MARBLE", "marble"), ("", None), ("   ", None), (None, None)],
)
def test_labels_are_trimmed_lower_case_with_single_spaces(raw, normalised):
    assert normalize_label(raw) == normalised


@pytest.mark.parametrize("raw", ["<script>", "gne\x00iss", "\u212aaolinite", "x" * 65, "-schist"])
def test_text_no_image_could_carry_is_refused(raw):
    # \u212a (Kelvin sign) lower-cases to an ASCII "k": accepting it would file the image under another label.
    with pytest.raises(InvalidLabel):
        normalize_label(raw)


@pytest.fixture
def collection(transactional_db):
    return [image_ingest(data=image_bytes(seed=i), label=LABELS[i % 3])[0] for i in range(6)]


def test_api_list_page_grid_and_searches_read_a_label_filter_alike(collection, client, tmp_path, settings):
    settings.GEOSIM_SEARCH_RATE = None
    gneiss = {image.pk for image in collection if image.label == "gneiss"}

    listed = APIClient().get("/api/v1/images/", {"label": " Gneiss "}).json()
    assert {item["id"] for item in listed["results"]} == gneiss

    grid = client.get("/", {"grid_label": " Gneiss "}).content.decode()
    assert grid.count('class="tile') == len(gneiss)

    page_search = client.get("/", {"image": collection[1].pk, "k": 5, "label": "GNEISS"})
    assert page_search.status_code == 200, page_search.content.decode()[:2000]
    assert all(f"#{pk}" in page_search.content.decode() for pk in gneiss)

    query = tmp_path / "query.jpg"
    query.write_bytes(image_bytes(seed=1))
    out = io.StringIO()
    call_command("search_similar", str(query), "-k", "5", "--label", "Gneiss", "--json", stdout=out)
    assert {hit["id"] for hit in json.loads(out.getvalue())["results"]} == gneiss


def test_an_unusable_label_filter_is_an_input_error_everywhere(collection, client, tmp_path):
    bad = "<b>gneiss</b>"
    listed = APIClient().get("/api/v1/images/", {"label": bad})
    assert listed.status_code == 400 and "label" in listed.json()["error"]["fields"]
    assert client.get("/", {"grid_label": bad}).status_code == 400
    assert client.get("/", {"image": collection[0].pk, "label": bad}).status_code == 400
    query = tmp_path / "query.jpg"
    query.write_bytes(image_bytes(seed=1))
    with pytest.raises(CommandError, match="not a usable rock type"):
        call_command("search_similar", str(query), "--label", bad, stdout=io.StringIO())
