"""python manage.py import_images: folder or archive, summary line, idempotent, bad files reported."""

import io
import tarfile

import pytest
from django.core.management import CommandError, call_command

from search.models import Image, Job
from tests.conftest import ROCK_TYPES, image_bytes, pack, zip_with_unreadable_members

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_images", *map(str, args), "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_folder_then_again_adds_nothing(image_tree):
    out, _ = _run(image_tree)
    assert "added 9, duplicates 0, rejected 0" in out
    out, _ = _run(image_tree)
    assert "added 0, duplicates 9, rejected 0" in out
    assert Image.objects.count() == 9


def test_import_tar_gz_with_bad_files(image_tree, tmp_path):
    (image_tree / "gneiss" / "notes.jpg").write_text("this is text, not a JPEG")
    (image_tree / "gneiss" / "empty.png").write_bytes(b"")
    out, err = _run(pack(image_tree, tmp_path / "rocks.tar.gz"))
    assert "added 9, duplicates 0, rejected 2" in out
    assert "rejected geological_similarity/gneiss/notes.jpg: Not a recognised image" in err
    assert "rejected geological_similarity/gneiss/empty.png: The file is empty." in err
    assert Image.objects.count() == 9


def test_zip_with_encrypted_and_unsupported_members_imports_the_rest(tmp_path):
    members = {f"rocks/schist/{i}.jpg": image_bytes(seed=40 + i) for i in range(4)}
    archive = zip_with_unreadable_members(
        tmp_path / "mixed.zip", members, encrypted={"rocks/schist/1.jpg"}, method={"rocks/schist/3.jpg": 99}
    )
    out, err = _run(archive)
    assert "added 2, duplicates 0, rejected 2" in out
    assert "rejected rocks/schist/1.jpg: encrypted" in err
    assert "rejected rocks/schist/3.jpg: compressed with zip method 99" in err
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["rocks/schist/0.jpg", "rocks/schist/2.jpg"]


def test_label_option(image_tree):
    _run(image_tree, "--label", "Marble")
    assert set(Image.objects.values_list("label", flat=True)) == {"marble"}


def test_traversal_archive_is_a_command_error(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("../../outside.jpg")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(CommandError, match="leaving its folder"):
        _run(archive)
    assert Image.objects.count() == 0


def test_missing_path(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        _run(tmp_path / "nope")


@pytest.mark.realdata
def test_import_real_images_sample(real_images_dir, tmp_path):
    """A sample of the real dataset imports cleanly with its six rock types (the full set is in bench/)."""
    sample = tmp_path / "sample"
    for folder in sorted(real_images_dir.iterdir()):
        (sample / folder.name).mkdir(parents=True)
        for path in sorted(folder.glob("*.jpg"))[:50]:
            (sample / folder.name / path.name).write_bytes(path.read_bytes())
    out, err = _run(sample)
    assert "rejected 0" in out, err
    assert Image.objects.count() == 300
    assert set(Image.objects.values_list("label", flat=True)) == set(ROCK_TYPES)
    assert set(Image.objects.values_list("width", "height", "format")) == {(28, 28, "JPEG")}
    assert Job.objects.filter(status=Job.Status.SUCCEEDED).exists()


def test_progress_bar_ends_on_the_summary_counts(image_tree, capsys):
    """Files already in the collection are only known as duplicates when their batch is committed: the bar
    used to call them "accepted" (22,799 accepted, 1 duplicate) while the summary said added 22,797, 3 duplicates."""
    import re

    from search.services.ingestion import image_ingest

    already = sorted((image_tree / "gneiss").iterdir())[:2]
    for path in already:
        image_ingest(data=path.read_bytes(), label="gneiss")
    (image_tree / "marble" / "copy.jpg").write_bytes(already[0].read_bytes())  # and one repeated inside the import
    (image_tree / "marble" / "notes.jpg").write_text("not an image")
    out = io.StringIO()
    call_command("import_images", str(image_tree), stdout=out, stderr=io.StringIO())
    summary = re.search(r"added (\d+), duplicates (\d+), rejected (\d+)", out.getvalue()).groups()
    assert summary == ("7", "3", "1")
    bar = capsys.readouterr().err
    last = re.findall(r"added=(\d+), duplicates=(\d+), rejected=(\d+)", bar)[-1]
    assert last == summary, bar[-500:]
    assert "to_commit" not in bar.rsplit("\r", 1)[-1]
