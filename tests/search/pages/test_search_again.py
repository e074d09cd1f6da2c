"""On a results page, changing K or the rock type re-runs the same query: no file to choose again."""

from __future__ import annotations

import html as html_lib
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from search import query_tokens
from search.models import IndexVersion
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db


def _upload(client, data: bytes, **fields):
    return client.post("/", {"image": SimpleUploadedFile("my rock.jpg", data, "image/jpeg"), **fields})


def _hits(html: str) -> list[tuple[int, str]]:
    """(id, similarity) of each result card, in order."""
    ids = re.findall(r'class="hit-image"><img[^>]*alt="[^"]*#(\d+)"', html)
    scores = re.findall(r'class="score-value" data-similarity="([0-9.]+)"', html)
    return list(zip(map(int, ids), scores, strict=True))


def _token(html: str) -> str:
    return html_lib.unescape(re.search(r'name="query" value="([^"]+)"', html).group(1))


def test_changing_k_and_rock_type_searches_again_with_the_uploaded_image(client, indexed):
    data = image_bytes(seed=4)
    first = _upload(client, data, k="5").content.decode()
    assert len(_hits(first)) == 5
    token = _token(first)
    assert 'type="file" name="image" id="id_image" accept="image/*" required' not in first  # no file needed now

    again = client.post("/", {"query": token, "k": "3", "label": "gneiss"})
    html = again.content.decode()
    assert again.status_code == 200, html
    direct = _upload(client, data, k="3", label="gneiss").content.decode()
    assert _hits(html) == _hits(direct)  # exactly what searching with the file gives
    assert len(_hits(html)) == 3
    assert "my rock.jpg" in html  # the query card still shows the upload
    assert 'src="data:image/png;base64,' in html
    assert _token(html) == token  # and the next change searches with it again


def test_the_vote_says_what_it_counts(client, indexed):
    html = _upload(client, image_bytes(seed=4), k="3", label="gneiss").content.decode()
    assert "Vote of the 9 nearest images of the whole collection, not only gneiss" in html
    votes = re.findall(r'<span class="vote-name">(\w+)</span>', html)
    assert set(votes) - {"gneiss"}, "the vote counts every rock type, not only the filtered results"


def test_a_collection_query_keeps_its_image(client, indexed):
    image = indexed[2]
    html = client.get("/", {"image": image.pk, "k": 5}).content.decode()
    assert f'name="query_image" value="{image.pk}"' in html
    response = client.post("/", {"query_image": image.pk, "k": "10", "label": "schist"})
    assert response.status_code == 302
    assert response["Location"] == f"/?image={image.pk}&k=10&label=schist#results"
    followed = client.get(response["Location"])
    assert followed.status_code == 200
    assert len(_hits(followed.content.decode())) == 3  # the three schists (the query image is a marble)


def test_an_altered_token_is_refused(client, indexed):
    token = _token(_upload(client, image_bytes(seed=4)).content.decode())
    forged = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    response = client.post("/", {"query": forged, "k": "3"})
    assert response.status_code == 400
    assert "cannot be repeated" in response.content.decode()


def test_a_token_of_another_model_asks_for_the_file(client, indexed):
    live = IndexVersion.objects.get(is_active=True)
    token = query_tokens.query_token(
        vector=np.ones(128, dtype=np.float32), model_version_id=live.model_version_id + 1, name="old.jpg", preview=""
    )
    response = client.post("/", {"query": token, "k": "3"})
    assert response.status_code == 400
    assert "another model" in response.content.decode()
