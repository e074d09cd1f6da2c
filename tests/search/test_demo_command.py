"""manage.py demo (what `make demo` runs), without serving: images, admin login, model, index."""

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from search import engine
from search.models import Image, IndexVersion
from tests.conftest import ROCK_TYPES, image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_prepares_a_searchable_collection_and_prints_the_login():
    out = io.StringIO()
    call_command("demo", no_serve=True, per_class=4, port=8123, stdout=out)
    text = out.getvalue()
    assert "GeoSim is ready at http://127.0.0.1:8123/" in text
    password = re.search(r"user: admin  password: (\S+)", text).group(1)
    assert authenticate(username="admin", password=password).is_superuser
    assert Image.objects.count() == 24
    assert set(Image.objects.values_list("label", flat=True)) == set(ROCK_TYPES)
    assert IndexVersion.objects.get(is_active=True).vector_count == 24
    assert len(engine.search_by_bytes(image_bytes(seed=1), k=5).hits) == 5

    again = io.StringIO()
    call_command("demo", no_serve=True, per_class=4, stdout=again)
    assert "24 images in the collection." in again.getvalue()
    assert Image.objects.count() == 24


def test_demo_with_dataset(image_tree):
    out = io.StringIO()
    call_command("demo", no_serve=True, dataset=image_tree, stdout=out)
    assert Image.objects.count() == 9
    assert "added 9" in out.getvalue()
