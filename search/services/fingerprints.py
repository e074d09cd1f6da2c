"""Pixel fingerprints of the collection's images (:func:`search.imaging.pixel_fingerprint`), stored for
near-duplicate checks (search/services/duplicates.py).

Ingestion stores one for every new image from the picture it has just decoded; images imported before
fingerprints existed get theirs from their files when a duplicates job first runs
(:func:`fingerprints_fill`). Stored as float16 (128 bytes an image); :func:`fingerprint_table` keeps them
all in each process's memory for the upload check, refreshed incrementally by row id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db.models import Max
from PIL import Image as PILImage

from search.imaging import FINGERPRINT_EDGE, ImageRejected, decode_image, pixel_fingerprint
from search.models import Image, ImageFingerprint
from search.services.jobs import JobProgress

logger = logging.getLogger(__name__)

FINGERPRINT_DIM = FINGERPRINT_EDGE * FINGERPRINT_EDGE
_FILL_BATCH = 500


def fingerprint_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f2").tobytes()


def fingerprint_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype="<f2").astype(np.float32)


def fingerprints_save(pictures: Iterable[tuple[int, PILImage.Image]]) -> None:
    """Store the fingerprints of (image id, decoded picture) pairs; an image that has one keeps it."""
    rows = [
        ImageFingerprint(image_id=image_id, vector=fingerprint_bytes(pixel_fingerprint(picture)))
        for image_id, picture in pictures
    ]
    ImageFingerprint.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)


def fingerprints_fill(image_ids: np.ndarray, progress: JobProgress | None = None) -> int:
    """Fingerprint the images among ``image_ids`` that have none yet; returns how many were made.

    Reads the thumbnail where there is one (a large photo's fingerprint needs no more). An unreadable
    file is logged and skipped: that image takes no part in near-duplicate checks.
    """
    have = set(ImageFingerprint.objects.values_list("image_id", flat=True))  # all: no huge IN list
    missing = [int(i) for i in image_ids if int(i) not in have]
    if progress:
        progress.advance(len(image_ids) - len(missing))
    made = 0
    for start in range(0, len(missing), _FILL_BATCH):
        batch = missing[start : start + _FILL_BATCH]
        pictures = []
        for image in Image.objects.filter(pk__in=batch).only("pk", "file", "thumbnail"):
            try:
                with (image.thumbnail or image.file).open("rb") as handle:
                    pictures.append(
                        (image.pk, decode_image(handle.read(), max_pixels=settings.GEOSIM_MAX_PIXELS).image)
                    )
            except (OSError, ImageRejected) as exc:
                logger.warning("Image #%s has no fingerprint: its file cannot be read (%s).", image.pk, exc)
        fingerprints_save(pictures)
        made += len(pictures)
        if progress:
            progress.advance(len(batch))
    return made


def fingerprints_of(image_ids: list[int] | None) -> dict[int, np.ndarray]:
    """The stored fingerprints of these images, or of all (``None``), float32 by image id; images without one
    are absent."""
    rows = ImageFingerprint.objects.all()
    if image_ids is not None:
        rows = rows.filter(image_id__in=image_ids)
    return {image_id: fingerprint_from_bytes(vector) for image_id, vector in rows.values_list("image_id", "vector")}


@dataclass
class _FingerprintTable:
    """Every stored fingerprint in this process's memory (float16), refreshed by row id."""

    last_row: int = 0
    image_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, FINGERPRINT_DIM), np.float16))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refreshed(self) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            newest = ImageFingerprint.objects.aggregate(newest=Max("pk"))["newest"] or 0
            if newest < self.last_row:  # the table was emptied (tests, a restored database): start again
                self.last_row = 0
                self.image_ids = np.zeros(0, np.int64)
                self.vectors = np.zeros((0, FINGERPRINT_DIM), np.float16)
            if newest > self.last_row:
                rows = list(
                    ImageFingerprint.objects.filter(pk__gt=self.last_row, pk__lte=newest)
                    .order_by("pk")
                    .values_list("image_id", "vector")
                )
                ids = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
                data = b"".join(bytes(v) for _, v in rows)
                vectors = np.frombuffer(data, dtype="<f2").reshape(len(rows), FINGERPRINT_DIM)
                self.image_ids = np.concatenate([self.image_ids, ids])
                self.vectors = np.concatenate([self.vectors, vectors])
                self.last_row = newest
            return self.image_ids, self.vectors


_table = _FingerprintTable()


def fingerprint_table() -> tuple[np.ndarray, np.ndarray]:
    """(image ids, float16 N×D fingerprints) of every stored fingerprint, as this process last read them.

    Rows of since-deleted images may linger: use it to propose candidates, then check them in the database.
    """
    return _table.refreshed()
