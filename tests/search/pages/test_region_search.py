"""The search page's region search: a box on the query image re-runs the same query on that part of it."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from search.services import query_uploads
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db


def _scores(html: str) -> list[str]:
    return re.findall(r"\(cosine ([0-9.]+)\)", html)


def test_upload_results_offer_a_region_form_that_reruns_the_same_query(client, indexed):
    data = image_bytes(seed=500, size=(40, 30))
    first = client.post("/", {"image": SimpleUploadedFile("rock.jpg", data, "image/jpeg"), "k": 5})
    html = first.content.decode()
    assert first.status_code == 200
    token = re.search(r'name="upload" value="([0-9a-f]{64})"', html).group(1)
    assert 'id="region-box"' in html and 'data-width="40" data-height="30"' in html
    assert "40 × 30 px" in html
    # Same query, whole image: the same answer; a region: another answer, with its box drawn.
    again = client.get("/", {"upload": token, "k": 5}).content.decode()
    assert _scores(again) == _scores(html)
    region = client.get("/", {"upload": token, "k": 5, "region": "0,0,20,15"})
    assert region.status_code == 200
    boxed = region.content.decode()
    assert _scores(boxed) != _scores(html)
    assert 'value="0,0,20,15"' in boxed
    assert "left: 0.000%; top: 0.000%; width: 50.000%; height: 50.000%" in boxed


def test_collection_image_region_search(client, indexed):
    image = indexed[0]
    response = client.get("/", {"image": image.pk, "region": "0,0,14,14"})
    assert response.status_code == 200
    assert f'name="image" value="{image.pk}"' in response.content.decode()


@pytest.mark.parametrize(
    "region, message",
    [("1,2,3", "is not x,y,w,h"), ("0,0,0,4", "is empty"), ("20,20,20,20", "lies outside the image, which is 28×28")],
)
def test_bad_regions_are_messages(client, indexed, region, message):
    response = client.get("/", {"image": indexed[0].pk, "region": region})
    assert response.status_code == 400
    assert message in response.content.decode()


def test_an_unknown_or_expired_query_asks_for_the_upload_again(client, indexed, monkeypatch):
    missing = client.get("/", {"upload": "0" * 64})
    assert missing.status_code == 404 and "upload it again" in missing.content.decode()
    assert client.get("/", {"upload": "../../etc/passwd"}).status_code == 404
    token = query_uploads.query_keep(image_bytes(seed=7))
    assert client.get("/", {"upload": token}).status_code == 200
    monkeypatch.setattr(query_uploads, "QUERY_KEEP_SECONDS", -1)
    assert client.get("/", {"upload": token}).status_code == 404
