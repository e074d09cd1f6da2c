"""A rectangle of the query image to search with: ``x,y,w,h`` in pixels, after EXIF orientation.

Parsed once here for the API, the page and ``search_similar --region``; checked against the decoded
image (whose EXIF orientation is applied, so the numbers mean what the user saw) by :func:`check_region`.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

_FORMAT = "x,y,w,h: four whole numbers of pixels, e.g. 10,20,120,80"


class InvalidRegion(ValueError):
    """The region is malformed, empty or not inside the image; the message says which."""


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h

    def __str__(self) -> str:
        return ",".join(map(str, self.as_list()))


def parse_region(text: str | None) -> Region | None:
    """``"x,y,w,h"`` → Region; None for blank; InvalidRegion for anything else or an empty rectangle."""
    if text is None or not str(text).strip():
        return None
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) != 4 or not all(part.isascii() and part.isdigit() for part in parts):
        raise InvalidRegion(f"Region {str(text)[:40]!r} is not {_FORMAT}.")
    x, y, w, h = (int(part) for part in parts)
    if w == 0 or h == 0:
        raise InvalidRegion(f"Region {x},{y},{w},{h} is empty: its width and height must be at least 1 pixel.")
    return Region(x, y, w, h)


def check_region(image: Image.Image, region: Region) -> None:
    """InvalidRegion, saying why, when ``region`` does not lie wholly inside ``image``."""
    width, height = image.size
    if region.x + region.w > width or region.y + region.h > height:
        raise InvalidRegion(
            f"Region {region} lies outside the image, which is {width}×{height} pixels "
            f"(x + w must be at most {width}, y + h at most {height})."
        )
