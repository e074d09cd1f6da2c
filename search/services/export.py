"""Export search results and image lists: a CSV of every metadata field, or a ZIP of the images with that CSV.

Both are streamed: the CSV row by row, the ZIP file by file (images are stored uncompressed — JPEG, PNG
and WebP do not shrink — with data descriptors, so nothing is seeked or held whole in memory). Both are
bounded so one request cannot tie up a worker for long: at most :data:`MAX_CSV_ROWS` rows, and at most
:data:`MAX_ZIP_IMAGES` images and :data:`MAX_ZIP_BYTES` of image data per ZIP. A list beyond a bound is
refused with :class:`ExportTooLarge` (the API answers 400: narrow the filter), never cut silently.

Columns: :data:`CSV_COLUMNS`; ``score`` (cosine) and ``similarity`` (calibrated probability) are empty
for list exports and for answers without them; ``file`` is the image's path inside the ZIP.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.http import StreamingHttpResponse

from search.models import Image

FORMATS = ("csv", "zip")
MAX_CSV_ROWS = 100_000
MAX_ZIP_IMAGES = 2_000
MAX_ZIP_BYTES = 500 * 1024 * 1024
CSV_COLUMNS = (
    "rank",
    "id",
    "score",
    "similarity",
    "label",
    "sample_id",
    "collection",
    "latitude",
    "longitude",
    "depth_m",
    "tags",
    "description",
    "original_name",
    "sha256",
    "width",
    "height",
    "format",
    "byte_size",
    "source",
    "created_at",
    "image_url",
    "file",
)
CSV_NAME = "images.csv"


class ExportTooLarge(ValueError):
    """The export would pass a documented bound; nothing was sent."""


@dataclass(frozen=True)
class ExportRow:
    image: Image
    score: float | None = None
    similarity: float | None = None


def rows_from_answer(answer) -> list[ExportRow]:
    """Export rows for a search answer's hits, in rank order."""
    return [ExportRow(image=hit.image, score=hit.score, similarity=hit.similarity) for hit in answer.hits]


def rows_from_queryset(images) -> list[ExportRow]:
    """Export rows for a list of images (refuses more than MAX_CSV_ROWS)."""
    rows = list(images[: MAX_CSV_ROWS + 1])
    if len(rows) > MAX_CSV_ROWS:
        raise ExportTooLarge(f"More than {MAX_CSV_ROWS:,} images match: narrow the filter to export them.")
    return [ExportRow(image=image) for image in rows]


def export_response(
    rows: list[ExportRow], *, fmt: str, name: str, absolute_url: Callable[[str], str] = lambda url: url
) -> StreamingHttpResponse:
    """A streamed CSV or ZIP download of ``rows`` (``fmt`` in FORMATS); ExportTooLarge past a bound."""
    if fmt == "csv":
        response = StreamingHttpResponse(csv_stream(rows, absolute_url=absolute_url), content_type="text/csv")
    elif fmt == "zip":
        _check_zip_bounds(rows)
        response = StreamingHttpResponse(zip_stream(rows, absolute_url=absolute_url), content_type="application/zip")
    else:
        raise ValueError(f"Unknown export format {fmt!r}; use one of {', '.join(FORMATS)}.")
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


def csv_stream(rows: Iterable[ExportRow], *, absolute_url=lambda url: url) -> Iterator[bytes]:
    """The CSV, a header then one line per row, as UTF-8 chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, row in enumerate(rows, 1):
        writer.writerow(_cells(rank, row, absolute_url))
        if buffer.tell() > 64 * 1024:
            yield _drain(buffer)
    yield _drain(buffer)


def zip_stream(rows: list[ExportRow], *, absolute_url=lambda url: url) -> Iterator[bytes]:
    """A ZIP of the rows' image files under images/, then images.csv (whose ``file`` column names them)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for rank, row in enumerate(rows, 1):
            with row.image.file.open("rb") as source, archive.open(_zip_path(rank, row.image), mode="w") as target:
                while chunk := source.read(1 << 20):
                    target.write(chunk)
                    yield sink.take()
        archive.writestr(CSV_NAME, b"".join(csv_stream(rows, absolute_url=absolute_url)), zipfile.ZIP_DEFLATED)
    yield sink.take()


def _check_zip_bounds(rows: list[ExportRow]) -> None:
    if len(rows) > MAX_ZIP_IMAGES:
        raise ExportTooLarge(f"A ZIP holds at most {MAX_ZIP_IMAGES:,} images ({len(rows):,} asked): export CSV.")
    total = sum(row.image.byte_size for row in rows)
    if total > MAX_ZIP_BYTES:
        raise ExportTooLarge(
            f"The images add up to {total / 2**20:.0f} MB; a ZIP holds at most {MAX_ZIP_BYTES // 2**20} MB."
        )


def _cells(rank: int, row: ExportRow, absolute_url) -> list:
    image = row.image
    return [
        rank,
        image.pk,
        "" if row.score is None else f"{row.score:.6f}",
        "" if row.similarity is None else f"{row.similarity:.6f}",
        image.label or "",
        image.sample_id,
        image.collection,
        _number(image.latitude),
        _number(image.longitude),
        _number(image.depth_m),
        ";".join(image.tags or []),
        image.description,
        image.original_name,
        image.sha256,
        image.width,
        image.height,
        image.format,
        image.byte_size,
        image.source,
        image.created_at.isoformat() if image.created_at else "",
        absolute_url(image.file.url),
        _zip_path(rank, image),
    ]


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _zip_path(rank: int, image: Image) -> str:
    extension = image.file.name.rsplit(".", 1)[-1] if "." in image.file.name else "bin"
    return f"images/{rank:04d}_{image.pk}.{extension}"


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


class _Sink(io.RawIOBase):
    """A write-only, unseekable stream whose bytes are taken as they come (zipfile then writes data descriptors)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data
