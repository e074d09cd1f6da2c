"""One MAX_K for the API, the page, the CLI and the engine."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from search import engine
from search.limits import MAX_K
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_way_in_accepts_max_k_and_refuses_one_more(client, tmp_path, settings):
    settings.GEOSIM_SEARCH_RATE = None
    images = [image_ingest(data=image_bytes(seed=i), label="gneiss")[0] for i in range(3)]
    pk = images[0].pk
    api = APIClient()
    assert api.get(f"/api/v1/images/{pk}/similar/", {"k": MAX_K}).status_code == 200
    assert api.get(f"/api/v1/images/{pk}/similar/", {"k": MAX_K + 1}).status_code == 400
    assert client.get("/", {"image": pk, "k": MAX_K}).status_code == 200
    assert client.get("/", {"image": pk, "k": MAX_K + 1}).status_code == 400
    query = tmp_path / "q.jpg"
    query.write_bytes(image_bytes(seed=1))
    call_command("search_similar", str(query), "-k", str(MAX_K), stdout=io.StringIO())
    with pytest.raises(CommandError, match=f"between 1 and {MAX_K}"):
        call_command("search_similar", str(query), "-k", str(MAX_K + 1), stdout=io.StringIO())
    with pytest.raises(ValueError, match=f"between 1 and {MAX_K}"):
        engine.search_by_image(pk, k=MAX_K + 1)
