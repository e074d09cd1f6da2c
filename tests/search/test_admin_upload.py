"""The admin upload page: several files or one archive, same service, summary message."""

import zipfile
from collections import Counter

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler
from django.urls import reverse

from search.models import Image
from tests.conftest import image_bytes, pack, zip_with_unreadable_members

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


def _zip_of(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path.read_bytes()


@pytest.mark.parametrize(
    "name, padding",
    [
        ("survey." + "b" * 244 + ".zip", 0),  # small: the view copies it to a temporary file
        ("x." + "y" * 253, 3_000_000),  # over FILE_UPLOAD_MAX_MEMORY_SIZE: Django's own temporary file
    ],
)
def test_archive_with_a_255_character_name_is_imported(staff_client, tmp_path, name, padding):
    assert len(name) == 255
    members = {f"rocks/marble/{i}.jpg": image_bytes(seed=60 + i) for i in range(2)}
    members["rocks/README.txt"] = np.random.default_rng(0).bytes(padding)  # documentation: not imported
    response = _upload(staff_client, archive=SimpleUploadedFile(name, _zip_of(tmp_path / "a.zip", members)))
    assert response.status_code == 200
    assert "added 2, duplicates 0, rejected 0" in response.content.decode()
    assert Image.objects.get(original_name="rocks/marble/0.jpg").source == name


def test_zip_with_encrypted_and_unsupported_members_imports_the_rest(staff_client, tmp_path):
    members = {f"rocks/gneiss/{i}.jpg": image_bytes(seed=70 + i) for i in range(3)}
    archive = zip_with_unreadable_members(
        tmp_path / "mixed.zip", members, encrypted={"rocks/gneiss/0.jpg"}, method={"rocks/gneiss/1.jpg": 98}
    )
    response = _upload(staff_client, archive=SimpleUploadedFile("mixed.zip", archive.read_bytes()))
    text = response.content.decode()
    assert "added 1, duplicates 0, rejected 2" in text
    assert "rocks/gneiss/0.jpg: encrypted" in text and "rocks/gneiss/1.jpg: compressed with zip method 98" in text
    assert list(Image.objects.values_list("original_name", flat=True)) == ["rocks/gneiss/2.jpg"]


@pytest.fixture
def bytes_stored_per_file(monkeypatch) -> Counter:
    """How many bytes of each uploaded file reached Django's memory or temporary-file handlers."""
    stored: Counter = Counter()

    def counting(original):
        def receive_data_chunk(self, raw_data, start):
            stored[self.file_name] += len(raw_data)
            return original(self, raw_data, start)

        return receive_data_chunk

    for handler in (MemoryFileUploadHandler, TemporaryFileUploadHandler):
        monkeypatch.setattr(handler, "receive_data_chunk", counting(handler.receive_data_chunk))
    return stored


def test_an_image_over_the_limit_is_reported_and_never_stored_whole(staff_client, settings, bytes_stored_per_file):
    settings.GEOSIM_MAX_UPLOAD_BYTES = 100_000
    big = image_bytes(seed=80, size=(320, 320), fmt="PNG")
    assert len(big) > 250_000
    files = [SimpleUploadedFile("small.jpg", image_bytes(seed=81)), SimpleUploadedFile("big.png", big)]
    text = _upload(staff_client, files=files).content.decode()
    assert "added 1, duplicates 0, rejected 1" in text
    assert "big.png: larger than the 100,000-byte limit" in text
    assert bytes_stored_per_file["big.png"] <= settings.GEOSIM_MAX_UPLOAD_BYTES


def test_an_archive_over_the_upload_limit_is_refused(staff_client, settings, tmp_path, bytes_stored_per_file):
    settings.GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES = 50_000
    members = {f"rocks/schist/{i}.jpg": image_bytes(seed=90 + i) for i in range(3)}
    members["rocks/README.txt"] = np.random.default_rng(1).bytes(60_000)
    archive = _zip_of(tmp_path / "big.zip", members)
    response = _upload(staff_client, archive=SimpleUploadedFile("big.zip", archive))
    assert "big.zip: larger than the 50,000-byte limit" in response.content.decode()
    assert bytes_stored_per_file["big.zip"] <= settings.GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES
    assert not Image.objects.exists()


def test_an_upload_declaring_more_than_the_limit_is_refused_unread(staff_client, settings, tmp_path):
    settings.GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES = 10_000
    members = {"rocks/schist/a.jpg": image_bytes(seed=95), "rocks/README.txt": b"x" * 200_000}
    response = staff_client.post(
        reverse("admin:search_image_upload"),
        {"archive": SimpleUploadedFile("huge.zip", _zip_of(tmp_path / "huge.zip", members))},
    )
    assert response.status_code == 413
    assert "manage.py import_images" in response.content.decode()
    assert not Image.objects.exists()
