"""Selectors: the hand-written answer query returns the same rows as the ORM."""

import pytest

from search.models import Image
from search.selectors import images_for_answer
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_images_for_answer_matches_the_orm():
    ids = {image_ingest(data=image_bytes(seed=i, size=(300 + i, 300)), label="gneiss")[0].pk for i in range(3)}
    fast = images_for_answer(ids | {999_999})
    assert set(fast) == ids
    for pk, row in Image.objects.in_bulk(ids).items():
        got = fast[pk]
        assert (got.pk, got.label, got.file.name, got.thumbnail.name, got.width, got.height) == (
            row.pk,
            row.label,
            row.file.name,
            row.thumbnail.name,
            row.width,
            row.height,
        )
        assert got.display_url == row.display_url
    assert images_for_answer(set()) == {}
