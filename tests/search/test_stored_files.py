"""Storing uploads: a full disk leaves no partial file behind, and a damaged leftover is never trusted."""

from __future__ import annotations

import contextlib
import hashlib
import resource
import signal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from search import engine
from search.models import Image
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def _stored_path(data: bytes, extension: str = "png") -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return Path(settings.MEDIA_ROOT) / "images" / sha[:2] / sha[2:4] / f"{sha}.{extension}"


@contextlib.contextmanager
def disk_full_after(limit_bytes: int):
    """Files written by this process stop growing at ``limit_bytes`` with an OSError, as on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_truncated_file_at_the_content_addressed_path_is_replaced():
    data = image_bytes(seed=7, size=(120, 120), fmt="PNG")
    path = _stored_path(data)
    path.parent.mkdir(parents=True)
    path.write_bytes(data[: len(data) // 2])  # what a full disk left behind last time

    image, created = image_ingest(data=data, label="gneiss")

    assert created
    assert path.read_bytes() == data
    hit = engine.search_by_bytes(data, k=1).hits[0]
    assert hit.image.pk == image.pk and hit.score == pytest.approx(1.0, abs=1e-4)


def test_an_intact_existing_file_is_kept_as_it_is():
    data = image_bytes(seed=8, size=(64, 64), fmt="PNG")
    path = _stored_path(data)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    inode = path.stat().st_ino
    image_ingest(data=data)
    assert path.stat().st_ino == inode  # not rewritten


def test_disk_full_while_storing_an_upload_leaves_nothing_and_a_retry_succeeds(client):
    client.force_login(get_user_model().objects.create_user("curator", is_staff=True))
    data = image_bytes(seed=9, size=(200, 200), fmt="PNG")
    assert len(data) > 50_000
    path = _stored_path(data)

    with disk_full_after(20_000):
        response = client.post("/api/v1/images/", {"image": SimpleUploadedFile("rock.png", data, "image/png")})

    assert response.status_code == 503, response.content[:500]
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert not Image.objects.exists()
    assert not path.exists()
    leftovers = list(path.parent.iterdir()) if path.parent.exists() else []
    assert leftovers == []  # the temporary file is gone too

    response = client.post("/api/v1/images/", {"image": SimpleUploadedFile("rock.png", data, "image/png")})
    assert response.status_code == 201, response.content[:500]
    assert path.read_bytes() == data
    hit = engine.search_by_bytes(data, k=1).hits[0]
    assert hit.image.pk == response.json()["id"] and hit.score == pytest.approx(1.0, abs=1e-4)
