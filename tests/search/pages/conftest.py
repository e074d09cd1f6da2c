"""Fixtures for the page tests: a small indexed collection, and users with and without staff rights."""

from __future__ import annotations

import pytest

from search.models import Image
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

LABELS = ("gneiss", "schist", "marble")


def add_images(count: int, *, labels=LABELS, start: int = 0) -> list[Image]:
    """Ingest ``count`` generated images; their processing jobs make them searchable (in-process)."""
    return [
        image_ingest(data=image_bytes(seed=i), label=labels[i % len(labels)])[0] for i in range(start, start + count)
    ]


@pytest.fixture
def indexed(db, django_capture_on_commit_callbacks) -> list[Image]:
    """Nine labelled images in a live index."""
    with django_capture_on_commit_callbacks(execute=True):
        images = add_images(9)
    return images


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("curator", password="pw-curator-123", is_staff=True)
    client.force_login(user)
    return client
