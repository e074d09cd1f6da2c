"""manage.py demo (what `make demo` runs), without serving: images, admin login, model, index."""

import hashlib
import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from search import engine
from search.models import Image, IndexVersion
from search.services.ingestion import image_ingest
from tests.conftest import ROCK_TYPES, image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_prepares_a_searchable_collection_and_prints_the_login():
    out = io.StringIO()
    call_command("demo", no_serve=True, per_class=4, port=8123, stdout=out)
    text = out.getvalue()
    assert "GeoSim is ready at http://127.0.0.1:8123/" in text
    password = re.search(r"user: admin  password: (\S+)", text).group(1)
    assert authenticate(username="admin", password=password).is_superuser
    token = re.search(r"API token of the staff user 'curator' \(uploads, rebuilds\): (\w+)", text).group(1)
    curator = Token.objects.get(key=token).user
    assert curator.username == "curator" and curator.is_staff and not curator.is_superuser
    assert curator.has_perms(["search.change_image", "search.change_indexversion"])
    assert not curator.has_usable_password()
    assert Image.objects.count() == 24
    assert set(Image.objects.values_list("label", flat=True)) == set(ROCK_TYPES)
    assert IndexVersion.objects.get(is_active=True).vector_count == 24
    assert len(engine.search_by_bytes(image_bytes(seed=1), k=5).hits) == 5

    again = io.StringIO()
    call_command("demo", no_serve=True, per_class=4, stdout=again)
    assert "Keeping the collection as it is (24 from generated textures)" in again.getvalue()
    assert "24 images in the collection." in again.getvalue()
    assert Image.objects.count() == 24
    assert f"(uploads, rebuilds): {token}" in again.getvalue()  # the same token: scripts keep working


def test_a_dataset_after_the_generated_demo_replaces_its_images(image_tree):
    call_command("demo", no_serve=True, per_class=3, stdout=io.StringIO())
    textures = set(Image.objects.values_list("sha256", flat=True))
    upload = image_ingest(data=image_bytes(seed=999), label="gneiss")[0]  # added outside the demo: kept

    out = io.StringIO()
    call_command("demo", no_serve=True, dataset=image_tree, stdout=out)
    text = out.getvalue()
    assert "Removing the 18 images of the previous demo (generated textures)" in text
    assert "Keeping 1 images added outside `make demo`" in text
    dataset_hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in image_tree.rglob("*.jpg")}
    assert set(Image.objects.values_list("sha256", flat=True)) == dataset_hashes | {upload.sha256}
    assert not textures & set(Image.objects.values_list("sha256", flat=True))

    live = IndexVersion.objects.get(is_active=True)
    assert live.vector_count == 10
    for hit in engine.search_by_bytes(image_bytes(seed=1), k=10).hits:  # searches answer from DATASET only
        assert hit.image.sha256 in dataset_hashes | {upload.sha256}

    rerun = io.StringIO()  # the same DATASET again: nothing removed, nothing added
    call_command("demo", no_serve=True, dataset=image_tree, stdout=rerun)
    assert "Removing" not in rerun.getvalue()
    assert Image.objects.count() == 10


def test_demo_with_dataset(image_tree):
    out = io.StringIO()
    call_command("demo", no_serve=True, dataset=image_tree, stdout=out)
    assert Image.objects.count() == 9
    assert "added 9" in out.getvalue()
