"""Archives are read in memory with bounds; unsafe archives are refused whole."""

import io
import tarfile
import zipfile

import pytest

from search.archives import ArchiveRejected, count_files, iter_source_files, label_from_path
from tests.conftest import image_bytes, pack, zip_with_unreadable_members

LIMITS = {"max_file_bytes": 1_000_000, "max_total_bytes": 10_000_000, "max_members": 1000}


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz", ".tar.xz"])
def test_archive_yields_same_files_as_folder(image_tree, tmp_path, suffix):
    from_folder = {(f.name, f.label, f.data) for f in iter_source_files(image_tree, **LIMITS)}
    archive = pack(image_tree, tmp_path / f"tree{suffix}")
    from_archive = {(f.name.split("/", 1)[1], f.label, f.data) for f in iter_source_files(archive, **LIMITS)}
    assert from_folder == from_archive
    assert count_files(archive) == len(from_folder) == 9


def test_label_is_parent_folder():
    assert label_from_path("geological_similarity/gneiss/0FVDN.jpg") == "gneiss"
    assert label_from_path("loose.jpg") is None


def _tar_with(tmp_path, name: str, data: bytes = b"x", kind=tarfile.REGTYPE, linkname: str = ""):
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        good = tarfile.TarInfo("rocks/gneiss/ok.jpg")
        payload = image_bytes()
        good.size = len(payload)
        tf.addfile(good, io.BytesIO(payload))
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


@pytest.mark.parametrize(
    ("name", "kind", "linkname", "reason"),
    [
        ("../escape.jpg", tarfile.REGTYPE, "", "leaving its folder"),
        ("rocks/../../escape.jpg", tarfile.REGTYPE, "", "leaving its folder"),
        ("/etc/evil.jpg", tarfile.REGTYPE, "", "absolute path"),
        ("rocks/link.jpg", tarfile.SYMTYPE, "/etc/passwd", "link"),
        ("rocks/hard.jpg", tarfile.LNKTYPE, "rocks/gneiss/ok.jpg", "link"),
        ("rocks/dev", tarfile.CHRTYPE, "", "special file"),
    ],
)
def test_unsafe_tar_refused_before_reading_anything(tmp_path, name, kind, linkname, reason):
    archive = _tar_with(tmp_path, name, kind=kind, linkname=linkname)
    with pytest.raises(ArchiveRejected, match=reason):
        list(iter_source_files(archive, **LIMITS))


def test_unsafe_zip_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rocks/gneiss/ok.jpg", image_bytes())
        zf.writestr("../../escape.jpg", image_bytes())
    with pytest.raises(ArchiveRejected, match="leaving its folder"):
        list(iter_source_files(archive, **LIMITS))


def test_zip_symlink_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("rocks/link.jpg")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveRejected, match="symbolic link"):
        list(iter_source_files(archive, **LIMITS))


def test_declared_total_size_bounded(tmp_path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rocks/a/zeros.jpg", b"\0" * 3_000_000)
    with pytest.raises(ArchiveRejected, match="unpacks to"):
        list(iter_source_files(archive, max_file_bytes=10_000_000, max_total_bytes=1_000_000, max_members=10))


def test_zip_bomb_member_is_never_inflated_past_its_declared_size(tmp_path, monkeypatch):
    """A member whose header claims 100 bytes but inflates to 5 MB: at most 100 bytes are ever read, and
    zipfile's CRC check then rejects it (the readers stop at the declared size; nothing else cuts it off)."""
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rocks/a/bomb.jpg", b"\0" * 5_000_000)
    raw = bytearray(archive.read_bytes())
    # Patch the uncompressed size in the central directory to claim 100 bytes.
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    delivered = []
    real_read = zipfile.ZipExtFile.read

    def counting_read(self, n=-1):
        data = real_read(self, n)
        delivered.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", counting_read)
    files = list(iter_source_files(archive, max_file_bytes=1000, max_total_bytes=10_000, max_members=10))
    assert len(files) == 1 and files[0].data is None
    assert "could not be read from the archive" in files[0].problem and "CRC" in files[0].problem
    assert sum(delivered) <= 100


def test_a_member_declared_over_the_limit_is_not_read(tmp_path, monkeypatch):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("rocks/a/big.jpg", b"\0" * 5_000)
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("an oversize member was opened"))
    files = list(iter_source_files(archive, max_file_bytes=1000, max_total_bytes=10_000, max_members=10))
    assert files[0].data is None and "larger than the 1,000-byte limit" in files[0].problem


def test_nested_archive_and_oversize_member_reported_not_read(tmp_path):
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("rocks/a/inner.zip", b"PK")
        zf.writestr("rocks/a/huge.jpg", b"\xff" * 5000)
        zf.writestr("rocks/a/ok.jpg", image_bytes())
    files = {f.name: f for f in iter_source_files(archive, max_file_bytes=4000, max_total_bytes=10**6, max_members=10)}
    assert files["rocks/a/inner.zip"].problem == "nested archives are not imported"
    assert "limit" in files["rocks/a/huge.jpg"].problem
    assert files["rocks/a/ok.jpg"].data is not None


def test_too_many_members(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(20):
            zf.writestr(f"r/a/{i}.jpg", b"x")
    with pytest.raises(ArchiveRejected, match="members"):
        list(iter_source_files(archive, max_file_bytes=10, max_total_bytes=10**6, max_members=5))


def test_not_an_archive(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ArchiveRejected, match="neither a folder nor"):
        list(iter_source_files(path, **LIMITS))


def test_folder_skips_hidden_and_symlinks(image_tree, tmp_path):
    (image_tree / ".cache").mkdir()
    (image_tree / ".cache" / "x.jpg").write_bytes(image_bytes())
    (image_tree / "andesite" / "link.jpg").symlink_to(image_tree / "andesite" / "IMG000.jpg")
    files = {f.name: f for f in iter_source_files(image_tree, **LIMITS)}
    assert not any(name.startswith(".cache") for name in files)
    assert files["andesite/link.jpg"].data is None


def test_encrypted_and_unsupported_zip_members_are_reported_and_the_rest_read(tmp_path):
    members = {f"rocks/gneiss/{i}.jpg": image_bytes(seed=i) for i in range(4)}
    archive = zip_with_unreadable_members(
        tmp_path / "mixed.zip", members, encrypted={"rocks/gneiss/1.jpg"}, method={"rocks/gneiss/2.jpg": 98}
    )
    found = {f.name: f for f in iter_source_files(archive, **LIMITS)}
    for readable in ("rocks/gneiss/0.jpg", "rocks/gneiss/3.jpg"):
        assert found[readable].data == members[readable]
    assert found["rocks/gneiss/1.jpg"].data is None
    assert "encrypted" in found["rocks/gneiss/1.jpg"].problem
    assert found["rocks/gneiss/2.jpg"].data is None
    assert "zip method 98" in found["rocks/gneiss/2.jpg"].problem
    assert count_files(archive) == 4
