"""/healthz: 200 when the database and the live index are usable, 503 with the reason otherwise."""

from pathlib import Path

import pytest

from search import live_index
from search.models import IndexVersion
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_empty_collection_is_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["index"]["state"] == "empty"


def test_healthy_with_a_live_index(client):
    image_ingest(data=image_bytes(seed=1))
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True}
    assert body["index"]["vectors"] == 1 and body["index"]["kind"] == "flat"


def test_deleted_index_file_is_503_and_requests_one_rebuild(client, monkeypatch):
    image_ingest(data=image_bytes(seed=1))
    active = IndexVersion.objects.get(is_active=True)
    (Path(active.path) / "index.faiss").unlink()
    live_index.reset()
    requests = []
    monkeypatch.setattr(live_index, "_request_rebuild", lambda: requests.append(1))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["index"]["state"] == "unusable"
    search = client.post("/api/v1/search/", {"image": _upload()})
    assert search.status_code == 503
    assert "index" in search.json()["error"]["message"].lower()
    assert requests == [1]  # asked once, not on every request

    monkeypatch.undo()  # now the rebuild really runs (in-process here)
    live_index.reset()
    client.get("/healthz")
    live_index.reset()
    assert client.get("/healthz").status_code == 200
    assert IndexVersion.objects.get(is_active=True).version > active.version


def test_database_down_is_503(client, monkeypatch):
    from django.db import OperationalError
    from django.db.backends.base.base import BaseDatabaseWrapper

    def refuse(self, *args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"]["ok"] is False


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("q.jpg", image_bytes(seed=2), "image/jpeg")
