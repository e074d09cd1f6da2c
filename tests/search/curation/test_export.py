"""format=csv|zip on search answers and image lists (API), and the page's export buttons: exactly the results."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile

import pytest

from search.models import Image
from search.services import export
from tests.conftest import image_bytes
from tests.search.api.conftest import IMAGES_URL, SEARCH_URL, assert_error, upload


def _rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_search_csv_holds_exactly_the_results_with_every_field(callers, curated):
    params = {"k": 5, "collection": "well-a"}
    answer = callers.anonymous.post(SEARCH_URL, {"image": upload(image_bytes(seed=3)), **params}).json()
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(image_bytes(seed=3)), "format": "csv", **params})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert 'filename="search-results.csv"' in response["Content-Disposition"]
    rows = _rows(response)
    assert list(rows[0]) == list(export.CSV_COLUMNS)
    assert [int(row["id"]) for row in rows] == [hit["id"] for hit in answer["results"]]
    assert [float(row["score"]) for row in rows] == pytest.approx([hit["score"] for hit in answer["results"]], abs=1e-5)
    similarities = [float(row["similarity"]) for row in rows]
    assert similarities == pytest.approx([hit["similarity"] for hit in answer["results"]], abs=1e-4)  # JSON rounds
    similarities = [hit["similarity"] for hit in answer["results"]]
    assert [float(row["similarity"]) for row in rows] == pytest.approx(similarities, abs=1e-4)
    first = Image.objects.get(pk=rows[0]["id"])
    assert rows[0]["sample_id"] == first.sample_id and rows[0]["collection"] == "well-a"
    assert rows[0]["tags"] == ";".join(first.tags) and float(rows[0]["depth_m"]) == first.depth_m
    assert float(rows[0]["latitude"]) == first.latitude and rows[0]["description"] == first.description


def test_similar_zip_holds_the_result_images_and_the_csv(callers, curated):
    url = f"{IMAGES_URL}{curated[0].pk}/similar/"
    answer = callers.anonymous.get(url, {"k": 4}).json()
    response = callers.anonymous.get(url, {"k": 4, "format": "zip"})
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    rows = list(csv.DictReader(io.StringIO(archive.read(export.CSV_NAME).decode())))
    assert [int(row["id"]) for row in rows] == [hit["id"] for hit in answer["results"]]
    images = sorted(name for name in archive.namelist() if name.startswith("images/"))
    assert images == sorted(row["file"] for row in rows)
    for row in rows:  # each file is the stored original, byte for byte
        assert hashlib.sha256(archive.read(row["file"])).hexdigest() == row["sha256"]


def test_list_csv_is_every_matching_image_not_one_page(callers, curated):
    response = callers.anonymous.get(IMAGES_URL, {"format": "csv", "tag": "weathered", "page_size": 1})
    assert {int(row["id"]) for row in _rows(response)} == {curated[i].pk for i in (0, 4, 8)}
    assert all(row["score"] == "" for row in _rows(callers.anonymous.get(IMAGES_URL, {"format": "csv"})))


def test_unknown_format_is_400(callers, curated):
    assert "format" in assert_error(callers.anonymous.get(IMAGES_URL, {"format": "xml"}), 400)["fields"]
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(), "format": "pdf"}), 400)
    assert "format" in error["fields"]


def test_exports_past_their_bounds_are_refused(callers, curated, monkeypatch):
    monkeypatch.setattr(export, "MAX_CSV_ROWS", 5)
    assert "narrow the filter" in assert_error(callers.anonymous.get(IMAGES_URL, {"format": "csv"}), 400)["message"]
    monkeypatch.setattr(export, "MAX_ZIP_BYTES", 10)
    url = f"{IMAGES_URL}{curated[0].pk}/similar/"
    assert "at most" in assert_error(callers.anonymous.get(url, {"format": "zip", "k": 3}), 400)["message"]


def test_the_page_exports_its_results(client, curated):
    page = client.get("/", {"image": curated[1].pk, "k": 3})
    shown = [image.pk for image in curated if f'href="/images/{image.pk}/" class="hit-image"' in page.content.decode()]
    response = client.post("/", {"query_image": curated[1].pk, "k": 3, "export": "csv"}, follow=True)
    rows = _rows(response)
    assert sorted(int(row["id"]) for row in rows) == sorted(shown) and len(rows) == 3
    assert 'id="refine-form"' in page.content.decode() and "format=zip" in page.content.decode()
