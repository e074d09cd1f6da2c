"""One image's page: the image, its metadata and its most similar images."""

from __future__ import annotations

import re

import pytest

from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db


def test_image_page_shows_metadata_and_similar_images(client, indexed):
    image = indexed[3]
    response = client.get(f"/images/{image.pk}/", {"k": 4})
    html = response.content.decode()
    assert response.status_code == 200
    for text in (image.label, "28 × 28 px", "JPEG", str(image.byte_size), image.sha256, "Uploaded"):
        assert text in html
    similar = [int(i) for i in re.findall(r'class="hit-image"><img[^>]*#(\d+)"', html)]
    assert len(similar) == 4 and image.pk not in similar
    assert html.count('class="score-value"') == 4
    assert 'class="specimen large "' in html  # a 28×28 tile is enlarged with crisp pixels, not smoothed


def test_unknown_image_is_a_404_page(client, db):
    response = client.get("/images/424242/")
    assert response.status_code == 404
    assert "Back to search" in response.content.decode()


def test_bad_k_is_a_400_message(client, indexed):
    response = client.get(f"/images/{indexed[0].pk}/", {"k": "0"})
    assert response.status_code == 400
    assert "K must be between 1 and 100" in response.content.decode()


def test_image_without_an_index_still_shows_with_a_notice(client, db):
    image, _ = image_ingest(data=image_bytes(seed=7), label="schist")  # its job never runs: no index
    response = client.get(f"/images/{image.pk}/")
    assert response.status_code == 200
    assert "once the index is built" in response.content.decode()


def test_preview_redirects_to_the_display_file(client, indexed):
    response = client.get(f"/images/{indexed[0].pk}/preview")
    assert response.status_code == 302
    assert response["Location"] == indexed[0].display_url
