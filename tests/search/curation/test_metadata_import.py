"""import_metadata (service, command, admin form, import_images' metadata.csv): rows applied, bad rows refused."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from search.archives import SourceFile
from search.models import Image
from search.services.ingestion import images_import
from search.services.metadata import METADATA_FIELDS, metadata_import_csv
from tests.conftest import image_bytes, write_tree

HEADER = "sha256,original_name,sample_id,label,collection,latitude,longitude,depth_m,tags,description"


@pytest.fixture
def images(db) -> list[Image]:
    files = [SourceFile(name=f"gneiss/R{i}.jpg", data=image_bytes(seed=i), label="gneiss") for i in range(4)]
    images_import(files)
    return list(Image.objects.order_by("pk"))


def snapshot() -> list[tuple]:
    return list(Image.objects.order_by("pk").values_list("pk", "label", *METADATA_FIELDS))


def test_rows_match_by_sha256_original_name_basename_and_sample_id(images):
    Image.objects.filter(pk=images[3].pk).update(sample_id="OLD-3")
    csv = "\n".join(
        [
            HEADER,
            f"{images[0].sha256},,S-0,Schist,Well A,56.5,3.25,2840.5,core; Weathered ;core,Banded",
            ",gneiss/R1.jpg,S-1,,Well A,,,10,,",
            ",R2.jpg,,,Outcrop,-33.9,18.4,,thin section,",
            ",,OLD-3,,,,,,,renamed by its sample id",
        ]
    )
    report = metadata_import_csv(csv.encode())
    assert report.problems == [] and report.applied and report.updated == 4
    first, second, third, fourth = (Image.objects.get(pk=image.pk) for image in images)
    assert (first.sample_id, first.label, first.collection) == ("S-0", "schist", "Well A")
    assert (first.latitude, first.longitude, first.depth_m) == (56.5, 3.25, 2840.5)
    assert first.tags == ["core", "weathered"] and first.description == "Banded"
    assert (second.sample_id, second.depth_m, second.latitude, second.label) == ("S-1", 10.0, None, "gneiss")
    assert (third.collection, third.tags, third.latitude) == ("Outcrop", ["thin section"], -33.9)
    assert (fourth.sample_id, fourth.description) == ("OLD-3", "renamed by its sample id")


BAD_ROWS = {
    "unknown column": ("original_name,colour\ngneiss/R0.jpg,red", 1, "unknown column(s) colour"),
    "not a number": ("original_name,depth_m\ngneiss/R3.jpg,5\ngneiss/R0.jpg,deep", 3, "not a number"),
    "latitude out of range": ("original_name,latitude,longitude\ngneiss/R0.jpg,91,3", 2, "between -90"),
    "longitude out of range": ("original_name,latitude,longitude\ngneiss/R0.jpg,1,181", 2, "between -180"),
    "negative depth": ("original_name,depth_m\ngneiss/R0.jpg,-5", 2, "Depth must be between"),
    "half a location": ("original_name,latitude\ngneiss/R0.jpg,45", 2, "both latitude and longitude"),
    "bad tag": ('original_name,tags\ngneiss/R0.jpg,"ok;bad""quote"', 2, "not a usable tag"),
    "bad label": ("original_name,label\ngneiss/R0.jpg,<b>", 2, "not a usable rock type"),
    "sample id too long": (f"original_name,sample_id\ngneiss/R0.jpg,{'x' * 65}", 2, "at most 64"),
    "matches nothing": ("original_name,depth_m\ngneiss/R0.jpg,1\nnowhere.jpg,2", 3, "no image is named"),
    "unknown sha256": (f"sha256,depth_m\n{'0' * 64},1", 2, "no image has sha256"),
    "same image twice": ("original_name,depth_m\ngneiss/R0.jpg,1\nR0.jpg,2", 3, "the same image as line 2"),
    "sample id taken": ("original_name,sample_id\ngneiss/R0.jpg,A\ngneiss/R1.jpg,A", 2, "would be held by 2"),
    "extra cells": ("original_name,depth_m\ngneiss/R0.jpg,1,2", 2, "more cell(s) than the header"),
    "no key": ("sample_id,depth_m\n,4", 2, "names no image"),
}


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_a_file_with_a_bad_row_changes_nothing_and_names_its_line(images, kind):
    text, line, message = BAD_ROWS[kind]
    before = snapshot()
    report = metadata_import_csv(text.encode())
    assert not report.applied and report.updated == 0
    assert any(p.line == line and message in p.message for p in report.problems), report.problems
    assert snapshot() == before


def test_skip_bad_rows_applies_the_good_ones(images):
    text = "original_name,depth_m,collection\ngneiss/R0.jpg,12,Core store\nnowhere.jpg,2,\ngneiss/R1.jpg,-1,\n"
    report = metadata_import_csv(text.encode(), skip_bad_rows=True)
    assert report.applied and report.updated == 1 and {p.line for p in report.problems} == {3, 4}
    assert Image.objects.get(pk=images[0].pk).collection == "Core store"
    assert Image.objects.get(pk=images[1].pk).depth_m is None


def test_dry_run_reports_and_changes_nothing(images):
    before = snapshot()
    report = metadata_import_csv(b"original_name,depth_m\ngneiss/R0.jpg,12\n", dry_run=True)
    assert report.updated == 1 and not report.applied and not report.problems
    assert snapshot() == before


def test_swapping_two_sample_ids_in_one_file_is_fine(images):
    Image.objects.filter(pk=images[0].pk).update(sample_id="A")
    Image.objects.filter(pk=images[1].pk).update(sample_id="B")
    report = metadata_import_csv(f"sha256,sample_id\n{images[0].sha256},B\n{images[1].sha256},A\n".encode())
    assert report.applied, report.problems
    assert Image.objects.get(pk=images[0].pk).sample_id == "B"


def test_command_reports_lines_and_fails_without_changing_anything(images, tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("original_name,depth_m\ngneiss/R0.jpg,12\nnowhere.jpg,3\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("import_metadata", str(path), stdout=io.StringIO(), stderr=err)
    assert f"{path}:3: no image is named 'nowhere.jpg'" in err.getvalue()
    assert Image.objects.get(pk=images[0].pk).depth_m is None
    out = io.StringIO()
    call_command("import_metadata", str(path), "--skip-bad-rows", stdout=out, stderr=io.StringIO())
    assert "updated 1 image(s)" in out.getvalue()
    assert Image.objects.get(pk=images[0].pk).depth_m == 12


def test_command_refuses_a_file_that_is_not_text(images, tmp_path):
    path = tmp_path / "meta.csv"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("import_metadata", str(path), stdout=io.StringIO(), stderr=io.StringIO())


def test_import_images_applies_a_root_metadata_csv(tmp_path, db):
    tree = write_tree(tmp_path / "geological_similarity", per_class=2)
    (tree / "metadata.csv").write_text("original_name,collection,tags\ngneiss/IMG100.jpg,Well 7,core;fresh\n")
    out = io.StringIO()
    call_command("import_images", str(tree), "--no-progress", stdout=out, stderr=io.StringIO())
    assert "added 6, duplicates 0, rejected 0" in out.getvalue()  # the CSV is not an image to reject
    assert "metadata.csv: 1 row(s): updated 1 image(s)" in out.getvalue()
    image = Image.objects.get(original_name="gneiss/IMG100.jpg")
    assert (image.collection, image.tags) == ("Well 7", ["core", "fresh"])


def test_admin_form_imports_a_file(images, client, django_user_model):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(django_user_model.objects.create_superuser("boss", "b@example.org", "pw-boss-123"))
    upload = SimpleUploadedFile("meta.csv", b"original_name,collection\ngneiss/R2.jpg,Drawer 4\n", "text/csv")
    response = client.post("/admin/search/image/metadata/", {"file": upload})
    assert response.status_code == 302
    assert Image.objects.get(pk=images[2].pk).collection == "Drawer 4"
    bad = SimpleUploadedFile("meta.csv", b"original_name,collection\nnowhere.jpg,X\n", "text/csv")
    response = client.post("/admin/search/image/metadata/", {"file": bad})
    assert response.status_code == 200 and "line 2: no image is named" in response.content.decode()
