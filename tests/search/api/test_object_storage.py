"""Media in S3-compatible object storage (GEOSIM_STORAGE_URL=s3://bucket/prefix) against a real SeaweedFS.

Nothing is mocked: uploads go through django-storages and boto3 to the server the session starts
(tests/object_store.py), and every check reads the bucket back with boto3. The local disk default is
covered by every other test of the suite.
"""

from __future__ import annotations

import hashlib
import io
import socket
import time
import urllib.request
import zipfile
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from geosim_site.s3_storage import S3MediaStorage, StorageVerificationFailed
from geosim_site.storage import media_storage
from search import engine
from search.models import Image, Job
from search.services.ingestion import image_ingest
from search.stored_files import store_verified
from tests.conftest import image_bytes
from tests.object_store import use_fresh_bucket
from tests.search.test_worker import wait_for_job

from .conftest import IMAGES_URL, SEARCH_URL, upload

pytestmark = [pytest.mark.slow, pytest.mark.objectstore]
PREFIX = "lab-a/media"


@dataclass
class Bucket:
    client: object
    name: str

    def key(self, stored_name: str) -> str:
        return f"{PREFIX}/{stored_name}"

    def read(self, stored_name: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=self.key(stored_name))["Body"].read()

    def holds(self, stored_name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.name, Key=self.key(stored_name))
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return False
            raise
        return True


@pytest.fixture
def s3_media(settings, object_store, monkeypatch, isolated_data_dir) -> Bucket:
    """GEOSIM_STORAGE_URL=s3://<a fresh bucket>/lab-a/media for this test, as the settings would configure it."""
    client, bucket = use_fresh_bucket(object_store, settings, monkeypatch, PREFIX)
    yield Bucket(client=client, name=bucket)
    assert not (isolated_data_dir / "media").exists(), "with object storage nothing is written to the local disk"


def _searchable(client, data: bytes, image_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.post(SEARCH_URL, {"image": upload(data), "k": 1})
        results = response.json().get("results", []) if response.status_code == 200 else []
        if results and results[0]["id"] == image_id:
            return results[0]
        assert response.status_code in (200, 503), response.content[:300]
        assert time.monotonic() < deadline, f"not searchable within {timeout} s: {response.content[:300]!r}"
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_api_upload_lands_in_the_bucket_is_processed_by_a_worker_served_and_deleted(s3_media, celery_worker, callers):
    data = image_bytes(seed=4242, size=(600, 300))  # larger than a thumbnail: the worker makes one
    created = callers.staff_token.post(IMAGES_URL, {"image": upload(data), "label": "gneiss"})
    assert created.status_code == 201, created.content
    image = Image.objects.get(pk=created.json()["id"])
    # The original is in the bucket, byte for byte, under the prefix and its content address.
    assert image.file.name.startswith("images/") and image.sha256 in image.file.name
    assert s3_media.read(image.file.name) == data

    # The worker can only have read the original from the bucket (nothing is on the local disk).
    hit = _searchable(callers.anonymous, data, image.pk)
    assert hit["score"] == pytest.approx(1.0, abs=1e-4)
    assert Job.objects.get(kind=Job.Kind.PROCESS).status == Job.Status.SUCCEEDED
    image.refresh_from_db()
    assert image.thumbnail.name.endswith(".webp")
    thumbnail = s3_media.read(image.thumbnail.name)
    assert thumbnail[:4] == b"RIFF"

    # Pages and media are served by GeoSim from the bucket (which stays private).
    detail = callers.anonymous.get(f"{IMAGES_URL}{image.pk}/").json()
    assert detail["thumbnail_url"] == f"http://testserver/media/{image.thumbnail.name}"
    served = callers.anonymous.get(detail["thumbnail_url"])
    assert served.status_code == 200 and served["Content-Type"] == "image/webp"
    assert served["Content-Length"] == str(len(thumbnail))
    assert b"".join(served.streaming_content) == thumbnail
    original = callers.anonymous.get(detail["image_url"])
    assert original.status_code == 200 and b"".join(original.streaming_content) == data
    page = callers.anonymous.get(f"/images/{image.pk}/")
    assert page.status_code == 200 and f"/media/{image.thumbnail.name}".encode() in page.content

    # Deleting the image removes both objects and takes it out of the index.
    names = (image.file.name, image.thumbnail.name)
    image.delete()
    assert not any(s3_media.holds(name) for name in names)
    removal = wait_for_job(Job.objects.get(kind=Job.Kind.REMOVE).pk)
    assert removal.status == Job.Status.SUCCEEDED, removal.error
    assert callers.anonymous.get(detail["thumbnail_url"]).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_in_process_tasks_embed_search_and_export_from_the_bucket(s3_media, callers):
    images = [image_ingest(data=image_bytes(seed=seed), label="schist")[0] for seed in (1, 2, 3)]
    for seed, image in zip((1, 2, 3), images, strict=True):
        assert s3_media.read(image.file.name) == image_bytes(seed=seed)
    answer = engine.search_by_bytes(image_bytes(seed=2), k=1)
    assert answer.hits[0].image.pk == images[1].pk
    # A ZIP export copies the originals out of the bucket, byte for byte.
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(image_bytes(seed=2)), "k": 3, "format": "zip"})
    assert response.status_code == 200, response.content[:300]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    exported = [name for name in archive.namelist() if name.startswith("images/")]
    assert len(exported) == 3
    assert {hashlib.sha256(archive.read(name)).hexdigest() for name in exported} == {i.sha256 for i in images}


@pytest.mark.django_db
def test_a_body_damaged_on_the_way_is_refused_by_the_store(s3_media, monkeypatch):
    """Each PUT carries the MD5 of the bytes meant: the real server refuses a body that does not match it."""

    def damaging_put(self, key, data, *, content_md5, content):
        return self.bucket.Object(key).put(Body=data[:-10], ContentMD5=content_md5)["ETag"]

    monkeypatch.setattr(S3MediaStorage, "_put", damaging_put)
    name = "images/ab/cd/damaged.jpg"
    with pytest.raises(StorageVerificationFailed, match="damaged copy"):
        default_storage.save(name, ContentFile(image_bytes(seed=9)))
    assert not s3_media.holds(name)


@pytest.mark.django_db
def test_a_store_without_md5_etags_is_checked_by_reading_back(s3_media, monkeypatch):
    """Where ETags are not MD5s (SSE-KMS...), the object is read back: other bytes are removed and refused."""
    stored = {}

    def put_without_md5_etag(self, key, data, *, content_md5, content):
        self.bucket.Object(key).put(Body=stored.get("body", data))
        return '"3f2a9c-not-an-md5"'

    monkeypatch.setattr(S3MediaStorage, "_put", put_without_md5_etag)
    data = image_bytes(seed=10)
    assert default_storage.save("images/aa/00/intact.jpg", ContentFile(data)) == "images/aa/00/intact.jpg"
    assert s3_media.read("images/aa/00/intact.jpg") == data
    stored["body"] = data[:-10]  # the store keeps something else than it was sent
    with pytest.raises(StorageVerificationFailed, match="does not match what was sent"):
        default_storage.save("images/aa/00/truncated.jpg", ContentFile(data))
    assert not s3_media.holds("images/aa/00/truncated.jpg")


@pytest.mark.django_db
def test_a_verified_write_keeps_the_object(s3_media):
    data = image_bytes(seed=11)
    name = f"images/aa/bb/{hashlib.sha256(data).hexdigest()}.jpg"
    assert default_storage.stored_size(name) is None
    assert default_storage.save(name, ContentFile(data)) == name
    assert s3_media.read(name) == data
    assert default_storage.stored_size(name) == len(data)


@pytest.mark.django_db
def test_media_missing_from_the_bucket_is_a_404(s3_media, client):
    assert client.get("/media/images/00/00/missing.jpg").status_code == 404
    assert client.get("/media/images/../../etc/passwd.jpg").status_code in (400, 404)


@pytest.mark.django_db
def test_without_geosim_serving_media_urls_are_the_stores_signed_urls(s3_media, settings, object_store):
    data = image_bytes(seed=12)
    name = default_storage.save(f"images/cc/dd/{hashlib.sha256(data).hexdigest()}.jpg", ContentFile(data))
    assert default_storage.url(name) == f"/media/{name}"  # GeoSim serves it (the default)
    settings.GEOSIM_SERVE_MEDIA = False
    signed = default_storage.url(name)
    assert signed.startswith(f"{object_store.endpoint_url}/{s3_media.name}/{PREFIX}/{name}?")
    assert "Signature" in signed
    with urllib.request.urlopen(signed, timeout=10) as response:  # what a browser would fetch
        assert response.read() == data


@pytest.mark.django_db
def test_a_damaged_object_at_the_content_address_is_replaced(s3_media):
    data = image_bytes(seed=13)
    name = f"images/ee/ff/{hashlib.sha256(data).hexdigest()}.jpg"
    s3_media.client.put_object(Bucket=s3_media.name, Key=s3_media.key(name), Body=data[:100])  # cut short
    assert store_verified(name, data) == name
    assert s3_media.read(name) == data


@pytest.mark.django_db
def test_an_unreachable_object_store_is_a_503_and_adds_nothing(s3_media, settings, callers, monkeypatch):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": media_storage(f"s3://{s3_media.name}/{PREFIX}", endpoint_url=f"http://127.0.0.1:{closed}"),
    }
    response = callers.staff_token.post(IMAGES_URL, {"image": upload(image_bytes(seed=14)), "label": "gneiss"})
    assert response.status_code == 503, response.content[:300]
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert not Image.objects.exists()
    served = callers.anonymous.get("/media/images/00/00/any.jpg")  # an image stored before: 503, not cached
    assert served.status_code == 503 and served["Cache-Control"] == "no-store"
