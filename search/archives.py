"""Reading image files out of folders and archives, safely.

Archives (.zip, .tar, .tar.gz/.tgz, .tar.xz, .tar.bz2) are never extracted to disk: members are read
into memory one at a time with bounded sizes. Before any member is read the whole listing is checked,
and an archive with an unsafe member — an absolute path, a ``..`` component, a symbolic or hard link,
a device — or with too many members or too many declared bytes is refused whole, so nothing of it is
imported. A member is read only if its declared size is within the limit, and never beyond that
size: ``zipfile`` and ``tarfile`` both stop reading a member at its declared size, so a zip bomb whose
header claims a small size cannot inflate past it (zipfile then rejects the member on its CRC check,
reported as unreadable). A member that cannot be read — encrypted, compressed with a method Python does
not support, or damaged — is reported with its reason and skipped; the other members are imported.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")
_ZIP_ENCRYPTED_FLAG = 0x1
_ZIP_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
_DOCUMENTATION = ("README", "LICENSE", "LICENCE")


class ArchiveRejected(ValueError):
    """The archive is unsafe or unreadable; nothing in it is imported."""


@dataclass(frozen=True)
class SourceFile:
    """One candidate image: where it came from, its bytes (or why they could not be read), its folder label."""

    name: str  # path relative to the folder or archive root, with forward slashes
    data: bytes | None
    label: str | None
    problem: str | None = None  # set when the member could not be read (too big, nested archive…)


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def label_from_path(relative: str) -> str | None:
    """The class label of a member: the name of its parent folder (None for files at the root)."""
    parts = PurePosixPath(relative).parts
    return parts[-2] if len(parts) >= 2 else None


def count_files(path: Path) -> int:
    """How many image-like entries :func:`iter_source_files` will yield (for progress bars)."""
    if path.is_dir():
        return sum(1 for _ in _walk_folder(path))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return sum(1 for info in archive.infolist() if not info.is_dir() and _is_candidate(info.filename))
    with _open_tar(path) as archive:
        return sum(1 for member in archive if member.isfile() and _is_candidate(member.name))


def iter_source_files(
    path: Path, *, max_file_bytes: int, max_total_bytes: int, max_members: int
) -> Iterator[SourceFile]:
    """Yield every image-like file of a folder or archive, safety-checked as described above."""
    if path.is_dir():
        yield from _iter_folder(path, max_file_bytes=max_file_bytes)
    elif not path.is_file():
        raise ArchiveRejected(f"{path} does not exist.")
    elif zipfile.is_zipfile(path):
        yield from _iter_zip(
            path, max_file_bytes=max_file_bytes, max_total_bytes=max_total_bytes, max_members=max_members
        )
    elif is_archive(path) or _is_tar(path):
        yield from _iter_tar(
            path, max_file_bytes=max_file_bytes, max_total_bytes=max_total_bytes, max_members=max_members
        )
    else:
        raise ArchiveRejected(f"{path.name} is neither a folder nor a .zip/.tar/.tar.gz/.tar.xz archive.")


def _is_candidate(name: str) -> bool:
    """Every file is looked at (and reported if it is not an image), except hidden files and the
    folder's own documentation (README, LICENSE), which accompany datasets as a matter of course."""
    pure = PurePosixPath(name)
    if any(part.startswith(".") for part in pure.parts) or pure.name.startswith("._"):
        return False  # hidden files, macOS resource forks
    return not pure.name.upper().startswith(_DOCUMENTATION)


def _walk_folder(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            full = Path(dirpath, filename)
            if _is_candidate(full.relative_to(root).as_posix()):
                yield full


def _iter_folder(root: Path, *, max_file_bytes: int) -> Iterator[SourceFile]:
    for full in _walk_folder(root):
        relative = full.relative_to(root).as_posix()
        label = label_from_path(relative)
        if full.is_symlink():
            yield SourceFile(relative, None, label, "symbolic links are not followed")
        elif full.name.lower().endswith(ARCHIVE_SUFFIXES):
            yield SourceFile(relative, None, label, "nested archives are not imported")
        elif full.stat().st_size > max_file_bytes:
            yield SourceFile(relative, None, label, f"larger than the {max_file_bytes:,}-byte limit")
        else:
            yield SourceFile(relative, full.read_bytes(), label)


def _check_member_name(name: str) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveRejected(f"The archive contains an absolute path ({name!r}); nothing was imported.")
    if ".." in pure.parts:
        raise ArchiveRejected(f"The archive contains a path leaving its folder ({name!r}); nothing was imported.")


def _check_totals(count: int, total: int, *, max_members: int, max_total_bytes: int) -> None:
    if count > max_members:
        raise ArchiveRejected(f"The archive has {count:,} members; the limit is {max_members:,}.")
    if total > max_total_bytes:
        raise ArchiveRejected(f"The archive unpacks to {total:,} bytes; the limit is {max_total_bytes:,}.")


def _iter_zip(path: Path, *, max_file_bytes: int, max_total_bytes: int, max_members: int) -> Iterator[SourceFile]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveRejected(f"{path.name} is not a readable zip archive ({exc}).") from None
    with archive:
        infos = archive.infolist()
        for info in infos:
            _check_member_name(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ArchiveRejected(
                    f"The archive contains a symbolic link ({info.filename!r}); nothing was imported."
                )
        _check_totals(
            len(infos), sum(i.file_size for i in infos), max_members=max_members, max_total_bytes=max_total_bytes
        )
        for info in infos:
            if info.is_dir() or not _is_candidate(info.filename):
                continue
            yield _read_member(
                info.filename,
                info.file_size,
                lambda info=info: archive.open(info),
                max_file_bytes,
                unreadable=_zip_member_problem(info),
            )


def _zip_member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member cannot be read without trying (zipfile would raise RuntimeError/NotImplementedError)."""
    if info.flag_bits & _ZIP_ENCRYPTED_FLAG:
        return "encrypted (password-protected) members are not imported"
    if info.compress_type not in _ZIP_METHODS:
        supported = ", ".join(_ZIP_METHODS.values())
        return f"compressed with zip method {info.compress_type}, which cannot be read (supported: {supported})"
    return None


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveRejected(f"{path.name} is not a readable tar archive ({exc}).") from None


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _iter_tar(path: Path, *, max_file_bytes: int, max_total_bytes: int, max_members: int) -> Iterator[SourceFile]:
    # First pass: check every member before anything is read (a tar has no central directory).
    count = total = 0
    try:
        with _open_tar(path) as archive:
            for member in archive:
                _check_member_name(member.name)
                if member.issym() or member.islnk():
                    raise ArchiveRejected(f"The archive contains a link ({member.name!r}); nothing was imported.")
                if not (member.isfile() or member.isdir()):
                    raise ArchiveRejected(
                        f"The archive contains a special file ({member.name!r}); nothing was imported."
                    )
                count += 1
                total += member.size
                _check_totals(count, total, max_members=max_members, max_total_bytes=max_total_bytes)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveRejected(f"{path.name} is damaged ({exc}); nothing was imported.") from None
    with _open_tar(path) as archive:
        for member in archive:
            if not member.isfile() or not _is_candidate(member.name):
                continue
            yield _read_member(member.name, member.size, lambda m=member: archive.extractfile(m), max_file_bytes)


def _read_member(
    name: str, declared_size: int, opener, max_file_bytes: int, *, unreadable: str | None = None
) -> SourceFile:
    """The member's bytes, or why it is skipped (``unreadable``: a reason known from its header)."""
    relative = PurePosixPath(name.replace("\\", "/")).as_posix()
    label = label_from_path(relative)
    if unreadable:
        return SourceFile(relative, None, label, unreadable)
    if name.lower().endswith(ARCHIVE_SUFFIXES):
        return SourceFile(relative, None, label, "nested archives are not imported")
    if declared_size > max_file_bytes:
        return SourceFile(relative, None, label, f"larger than the {max_file_bytes:,}-byte limit")
    try:
        with opener() as stream:
            # Bounded by the declared size just checked: both readers stop there (see the module docstring).
            data = stream.read(declared_size)
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        # RuntimeError, NotImplementedError: what zipfile raises for a member it cannot decode.
        return SourceFile(relative, None, label, f"could not be read from the archive ({exc})")
    return SourceFile(relative, data, label)
