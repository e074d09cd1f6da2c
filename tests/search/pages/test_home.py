"""The search page: upload or pick an image, see K results with scores and the rock-type vote; errors are messages."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.conftest import image_bytes
from tests.search.pages.conftest import add_images

pytestmark = pytest.mark.django_db


def _upload(client, data: bytes, **fields):
    return client.post("/", {"image": SimpleUploadedFile("rock.jpg", data, "image/jpeg"), **fields})


def _result_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="hit-image"><img[^>]*alt="[^"]*#(\d+)"', html)]


def test_empty_home_has_upload_form_csrf_and_collection(client):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in html
    assert 'type="file" name="image"' in html
    assert "csrfmiddlewaretoken" in html
    assert "No images yet" in html


def test_collection_grid_is_paginated_and_filtered_by_rock_type(client, indexed):
    html = client.get("/").content.decode()
    assert "9 images" in html
    assert html.count('class="tile') == 9
    filtered = client.get("/", {"grid_label": "schist"}).content.decode()
    assert filtered.count('class="tile') == 3
    assert "?image=" in filtered  # every tile searches by that image


def test_upload_shows_k_results_with_scores_and_vote(client, indexed):
    response = _upload(client, image_bytes(seed=4), k="3")
    html = response.content.decode()
    assert response.status_code == 200
    ids = _result_ids(html)
    assert len(ids) == 3
    assert ids[0] == indexed[4].pk  # the same picture is the best match
    assert html.count('class="score-value"') == 3
    assert 'data-similarity="1.0000"' in html  # the exact match (this test model has no calibration: the cosine)
    assert "cosine 1.0000" in html
    assert "Most likely" in html and 'class="vote"' in html
    assert html.count("more like this") == 3
    assert 'src="data:image/png;base64,' in html  # the query image is shown


def test_more_like_this_searches_by_a_collection_image(client, indexed):
    response = client.get("/", {"image": indexed[2].pk, "k": 5})
    html = response.content.decode()
    assert response.status_code == 200
    ids = _result_ids(html)
    assert len(ids) == 5
    assert indexed[2].pk not in ids  # the image itself is not its own neighbour
    assert f"#{indexed[2].pk} · marble" in html


def test_rock_type_restricts_results(client, indexed):
    html = _upload(client, image_bytes(seed=50), k="3", label="schist").content.decode()
    assert len(_result_ids(html)) == 3
    hits = re.findall(r'<li class="hit" data-rock="(\w+)"', html)
    assert hits == ["schist"] * 3


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"k": "0"}, 400, "K must be between 1 and 100"),
        ({"k": "101"}, 400, "K must be between 1 and 100"),
        ({"k": "abc"}, 400, "K must be a whole number"),
        ({"label": "granite"}, 400, "rock type &#x27;granite&#x27;"),
    ],
)
def test_bad_parameters_are_4xx_messages(client, indexed, fields, status, message):
    upload = _upload(client, image_bytes(seed=1), **fields)
    by_id = client.get("/", {"image": indexed[0].pk, **fields})
    for response in (upload, by_id):
        assert response.status_code == status
        assert message in response.content.decode()
        assert 'role="alert"' in response.content.decode()


def test_not_an_image_is_a_400_message(client, indexed):
    response = client.post("/", {"image": SimpleUploadedFile("notes.txt", b"just some text", "text/plain")})
    assert response.status_code == 400
    assert "Not a recognised image" in response.content.decode()


def test_missing_file_and_unknown_image_id(client, indexed):
    assert client.post("/", {"k": "5"}).status_code == 400
    missing = client.get("/", {"image": "999999"})
    assert missing.status_code == 404
    assert "no image #999999" in missing.content.decode()
    assert client.get("/", {"image": "abc"}).status_code == 400


def test_too_big_upload_is_refused_before_reading(client, indexed, settings):
    settings.GEOSIM_MAX_UPLOAD_BYTES = 1000
    small = _upload(client, image_bytes(seed=1, size=(80, 80), fmt="PNG"))
    assert small.status_code == 413
    assert "too big" in small.content.decode()
    huge = client.post("/", data=b"x" * 200_000, content_type="multipart/form-data; boundary=zz")
    assert huge.status_code == 413


def test_no_index_yet_is_a_clear_message_not_a_500(client, db):
    response = _upload(client, image_bytes(seed=1))
    assert response.status_code == 503
    assert "No index has been built yet" in response.content.decode()


def test_upload_needs_the_csrf_token(db):
    add_images(1)
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/", {"image": SimpleUploadedFile("rock.jpg", image_bytes(seed=1), "image/jpeg")})
    assert response.status_code == 403
