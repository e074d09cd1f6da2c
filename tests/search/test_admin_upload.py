"""The admin upload page: several files or one archive, same service, summary message."""

import pytest
from django.urls import reverse

from search.models import Image
from tests.conftest import image_bytes, pack

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("curator", password="pw-curator-1", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def _upload(client, **files):
    return client.post(reverse("admin:search_image_upload"), files, follow=True)


def test_upload_several_files_with_label(staff_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    files = [SimpleUploadedFile(f"r{i}.jpg", image_bytes(seed=i), "image/jpeg") for i in range(3)]
    files.append(SimpleUploadedFile("bad.jpg", b"not an image", "image/jpeg"))
    response = _upload(staff_client, files=files, label="schist")
    text = response.content.decode()
    assert "added 3, duplicates 0, rejected 1" in text
    assert "bad.jpg: Not a recognised image" in text
    assert set(Image.objects.values_list("label", flat=True)) == {"schist"}
    assert Image.objects.first().uploaded_by.username == "curator"


def test_upload_archive_uses_folder_labels(staff_client, image_tree, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    archive = pack(image_tree, tmp_path / "rocks.zip")
    response = _upload(staff_client, archive=SimpleUploadedFile("rocks.zip", archive.read_bytes()))
    assert "added 9, duplicates 0, rejected 0" in response.content.decode()
    assert set(Image.objects.values_list("label", flat=True)) == {"andesite", "gneiss", "marble"}


def test_empty_form_is_an_error(staff_client):
    response = staff_client.post(reverse("admin:search_image_upload"), {})
    assert "Choose image files or an archive" in response.content.decode()


def test_anonymous_cannot_upload(client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(reverse("admin:search_image_upload"), {"files": SimpleUploadedFile("a.jpg", image_bytes())})
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert Image.objects.count() == 0


def test_changelist_shows_preview_and_upload_link(staff_client):
    from search.services.ingestion import image_ingest

    image_ingest(data=image_bytes(seed=9), label="gneiss")
    response = staff_client.get(reverse("admin:search_image_changelist"))
    text = response.content.decode()
    assert response.status_code == 200
    assert reverse("admin:search_image_upload") in text
    assert "image-rendering:pixelated" in text
