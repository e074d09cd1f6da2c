"""Bounded uploads through the admin: no file is read whole, and none is kept past its size limit.

The admin upload page takes many image files or one archive in a single multipart request. Django
would write every file to memory or a temporary file in full before the view could look at its
size; :class:`BoundedUploadHandler` runs first instead, and stops storing a file the moment it passes
its limit (``GEOSIM_MAX_UPLOAD_BYTES`` per image, ``GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES`` for an archive),
so the rest of its bytes are read from the socket and dropped. The view then reports that file as
too large. Images are then read one at a time (:func:`source_files`), never all at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import (
    FileUploadHandler,
    MemoryFileUploadHandler,
    SkipFile,
    TemporaryFileUploadHandler,
)

from search.archives import ARCHIVE_SUFFIXES, SourceFile

ARCHIVE_FIELD = "archive"


def too_large_reason(limit: int) -> str:
    return f"larger than the {limit:,}-byte limit"


def field_limit(field_name: str) -> int:
    """The most bytes one file of this form field may have."""
    if field_name == ARCHIVE_FIELD:
        return settings.GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES
    return settings.GEOSIM_MAX_UPLOAD_BYTES


class BoundedUploadHandler(FileUploadHandler):
    """First in the chain: lets a file's bytes through until its field's limit, then skips the file.

    The names of skipped files are kept in ``oversized`` (field name, file name) for the view to report.
    """

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.oversized: list[tuple[str, str]] = []
        self._limit = 0

    def new_file(self, field_name, file_name, *args, **kwargs) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        self._limit = field_limit(field_name)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self._limit:
            self.oversized.append((self.field_name, self.file_name))
            raise SkipFile  # the parser drops the partial file and reads past the rest of its bytes
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers build the uploaded file


class ShortNameTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Django's temporary-file handler, but the temporary file's name never carries the upload's name.

    Django names it ``tmpXXXX.upload<extension of the upload>``: a 255-character name whose last dot
    comes early makes that longer than a file system allows (a 500 before the view runs).
    """

    def new_file(self, *args, **kwargs) -> None:
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = TemporaryUploadedFile(
            "upload" + archive_suffix(self.file_name), self.content_type, 0, self.charset, self.content_type_extra
        )
        self.file.name = self.file_name  # what the view sees (Django trims it to 255 characters)


def install_bounded_handlers(request) -> BoundedUploadHandler:
    """Replace the request's upload handlers (before its body is read); returns the bounding one."""
    bound = BoundedUploadHandler(request)
    request.upload_handlers = [bound, MemoryFileUploadHandler(request), ShortNameTemporaryFileUploadHandler(request)]
    return bound


def archive_suffix(name: str) -> str:
    """The archive suffix the name ends with (``.tar.gz``…), or "" (the content decides the format)."""
    lowered = os.path.basename(name).lower()
    return next((suffix for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True) if lowered.endswith(suffix)), "")


def source_files(uploads: Iterable[UploadedFile], oversized: Iterable[str] = ()) -> Iterator[SourceFile]:
    """The uploaded images, read one at a time; files over the limit are reported, never read."""
    limit = settings.GEOSIM_MAX_UPLOAD_BYTES
    for name in oversized:
        yield SourceFile(name=name, data=None, label=None, problem=too_large_reason(limit))
    for upload in uploads:
        if upload.size is not None and upload.size > limit:
            yield SourceFile(name=upload.name, data=None, label=None, problem=too_large_reason(limit))
            continue
        with upload.open("rb") as handle:
            data = handle.read(limit + 1)
        yield SourceFile(name=upload.name, data=data, label=None)
