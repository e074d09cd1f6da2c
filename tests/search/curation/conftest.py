"""A small indexed collection with sample metadata, shared by the curation tests (filters, export, feedback)."""

from __future__ import annotations

import pytest

from search.archives import SourceFile
from search.models import Image
from search.services.ingestion import images_import
from tests.conftest import image_bytes
from tests.search.api.conftest import api_defaults, callers, collection  # noqa: F401 — shared API fixtures

LABELS = ("gneiss", "schist", "marble")
# Per image i (of 12): collection, tags, depth, location; chosen so each filter keeps a different subset.
COLLECTIONS = ("well-a", "well-b", "outcrop")


def metadata_for(i: int) -> dict:
    return {
        "sample_id": f"S-{i:03d}",
        "collection": COLLECTIONS[i % 3],
        "tags": ["core"] + (["weathered"] if i % 4 == 0 else []),
        "depth_m": float(i * 100),
        "latitude": 50.0 + i,
        "longitude": -5.0 + i,
        "description": f"specimen {i}",
    }


def build_collection(count: int, *, with_metadata=metadata_for) -> list[Image]:
    files = [
        SourceFile(name=f"{LABELS[i % 3]}/{i:04d}.jpg", data=image_bytes(seed=i), label=LABELS[i % 3])
        for i in range(count)
    ]
    summary = images_import(files)
    images = list(Image.objects.filter(pk__in=summary.image_ids).order_by("pk"))
    for i, image in enumerate(images):
        for name, value in (with_metadata(i) or {}).items():
            setattr(image, name, value)
    fields = ["sample_id", "collection", "tags", "depth_m", "latitude", "longitude", "description"]
    Image.objects.bulk_update(images, fields)
    return images


@pytest.fixture
def curated(transactional_db) -> list[Image]:
    """Twelve indexed images with sample metadata (see metadata_for)."""
    return build_collection(12)
