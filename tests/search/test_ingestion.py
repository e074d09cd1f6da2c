"""The ingestion service: validate, deduplicate, store, record, queue — and leave nothing for bad files."""

from pathlib import Path

import pytest
from django.conf import settings

from search.archives import ArchiveRejected, SourceFile
from search.imaging import ImageRejected
from search.models import Image, Job
from search.services.ingestion import image_ingest, images_import, images_import_path, normalize_label
from tests.conftest import image_bytes, pack

pytestmark = pytest.mark.django_db(transaction=True)


def _stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_ingest_creates_row_file_and_job():
    data = image_bytes(seed=1, size=(30, 20), fmt="PNG")
    image, created = image_ingest(data=data, label=" Gneiss ", original_name="a.png", source="test")
    assert created
    image.refresh_from_db()
    assert (image.label, image.width, image.height, image.format, image.byte_size) == (
        "gneiss",
        30,
        20,
        "PNG",
        len(data),
    )
    assert image.file.name == f"images/{image.sha256[:2]}/{image.sha256[2:4]}/{image.sha256}.png"
    assert Path(image.file.path).read_bytes() == data
    job = Job.objects.get(kind=Job.Kind.PROCESS)
    assert job.params == {"image_ids": [image.pk]}
    assert job.status == Job.Status.SUCCEEDED  # run in-process


def test_exact_duplicate_returns_existing():
    data = image_bytes(seed=2)
    first, created_first = image_ingest(data=data)
    second, created_second = image_ingest(data=data, label="schist")
    assert created_first and not created_second
    assert first.pk == second.pk
    assert Image.objects.count() == 1


@pytest.mark.parametrize(
    "data", [b"", b"not an image at all", image_bytes(size=(64, 64))[:200], b"<svg></svg>", b"%PDF-1.4 ..."]
)
def test_bad_file_leaves_nothing(data):
    with pytest.raises(ImageRejected):
        image_ingest(data=data, original_name="bad.jpg")
    assert Image.objects.count() == 0
    assert Job.objects.count() == 0
    assert _stored_files() == []


def test_bad_label_rejected():
    with pytest.raises(ImageRejected, match="rock type"):
        normalize_label("<script>")
    assert normalize_label("  Banded   Gneiss ") == "banded gneiss"
    assert normalize_label("") is None


def test_import_reports_each_outcome():
    files = [
        SourceFile("gneiss/a.jpg", image_bytes(seed=1), "gneiss"),
        SourceFile("gneiss/a-copy.jpg", image_bytes(seed=1), "gneiss"),
        SourceFile("schist/b.jpg", image_bytes(seed=2), "schist"),
        SourceFile("schist/text.jpg", b"hello", "schist"),
        SourceFile("schist/huge.jpg", None, "schist", "larger than the limit"),
    ]
    summary = images_import(files, source="unit")
    assert (summary.added, summary.duplicates, len(summary.rejected)) == (2, 1, 2)
    assert dict(summary.rejected)["schist/huge.jpg"] == "larger than the limit"
    assert sorted(Image.objects.values_list("label", flat=True)) == ["gneiss", "schist"]
    assert len(_stored_files()) == 2


def test_import_batches_each_get_a_job():
    files = [SourceFile(f"a/{i}.jpg", image_bytes(seed=i), "a") for i in range(7)]
    summary = images_import(files, batch_size=3)
    assert summary.added == 7
    assert len(summary.job_ids) == 3
    assert sum(len(j.params["image_ids"]) for j in Job.objects.all()) == 7


@pytest.mark.parametrize("suffix", [None, ".zip", ".tar.gz", ".tar.xz"])
def test_folder_and_archives_give_same_rows_once(image_tree, tmp_path, suffix):
    first = images_import_path(image_tree)
    assert first.added == 9
    rows = set(Image.objects.values_list("sha256", "label"))
    source = image_tree if suffix is None else pack(image_tree, tmp_path / f"again{suffix}")
    again = images_import_path(source)
    assert (again.added, again.duplicates) == (0, 9)
    assert set(Image.objects.values_list("sha256", "label")) == rows
    assert {label for _, label in rows} == {"andesite", "gneiss", "marble"}


def test_label_override(image_tree):
    images_import_path(image_tree, label="quartzite")
    assert set(Image.objects.values_list("label", flat=True)) == {"quartzite"}


def test_traversal_archive_leaves_nothing(tmp_path):
    import zipfile

    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rocks/gneiss/ok.jpg", image_bytes(seed=5))
        zf.writestr("rocks/../../../tmp/escape.jpg", image_bytes(seed=6))
    with pytest.raises(ArchiveRejected):
        images_import_path(archive)
    assert Image.objects.count() == 0
    assert _stored_files() == []
    assert not (tmp_path.parent / "tmp" / "escape.jpg").exists()


def test_thumbnail_made_for_large_images_only():
    small, _ = image_ingest(data=image_bytes(seed=1, size=(28, 28)))
    large, _ = image_ingest(data=image_bytes(seed=2, size=(1200, 600)))
    small.refresh_from_db()
    large.refresh_from_db()
    assert not small.thumbnail
    assert small.display_url == small.file.url
    assert large.thumbnail.name.endswith(".webp")
    assert large.display_url == large.thumbnail.url


def test_jpeg_named_png_is_stored_and_served_as_jpeg(db, client):
    """The stored name and the served type come from the decoded content, never from the upload's name."""
    image, created = image_ingest(data=image_bytes(fmt="JPEG", seed=77), original_name="actually-jpeg.png")
    assert created and image.format == "JPEG" and image.original_name == "actually-jpeg.png"
    assert image.file.name.endswith(".jpg")
    assert client.get(image.file.url)["Content-Type"] == "image/jpeg"
