"""What a sample's metadata may hold: limits, tag normalisation and the validators the model, the API,
the admin and the CSV import all share (one rule, one place).

Depth is metres below the surface (0 at the surface, positive downwards); the deepest boreholes reach
~12 km, so 20 km bounds typing errors without refusing any real sample.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

SAMPLE_ID_MAX = 64
COLLECTION_MAX = 100
DESCRIPTION_MAX = 2000
TAG_MAX = 32
TAGS_MAX = 20
DEPTH_MAX_M = 20_000.0
LATITUDE_RANGE = (-90.0, 90.0)
LONGITUDE_RANGE = (-180.0, 180.0)

# Tags are stored as a JSON list of these strings; no quotes or backslashes, so a tag's JSON form is
# always exactly "<tag>" (the tag filter relies on it on databases without JSON containment).
_TAG_RE = re.compile(rf"^[a-z0-9][a-z0-9 _.\-/]{{0,{TAG_MAX - 1}}}$")
TAG_SEPARATOR = ";"


def normalize_tag(tag: str) -> str:
    """Lower-case, single-spaced tag; ValidationError if it has unusable characters or is too long."""
    value = " ".join(str(tag).strip().lower().split())
    if not _TAG_RE.match(value):
        raise ValidationError(
            f"{tag!r} is not a usable tag: up to {TAG_MAX} letters, digits, spaces, '.', '_', '-' or '/'.",
            code="invalid_tag",
        )
    return value


def normalize_tags(tags) -> list[str]:
    """A clean, de-duplicated, order-keeping tag list from a list or a ';'-separated string."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(TAG_SEPARATOR)
    if not isinstance(tags, list | tuple):
        raise ValidationError("Tags must be a list of strings.", code="invalid_tags")
    clean: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise ValidationError("Tags must be a list of strings.", code="invalid_tags")
        if tag.strip():
            value = normalize_tag(tag)
            if value not in clean:
                clean.append(value)
    if len(clean) > TAGS_MAX:
        raise ValidationError(f"At most {TAGS_MAX} tags per image ({len(clean)} given).", code="too_many_tags")
    return clean


def validate_tags(value) -> None:
    """Model-field validator: the stored list must already be normalised."""
    if normalize_tags(value) != value:
        raise ValidationError("Tags must be a list of distinct, normalised tags.", code="invalid_tags")


def validate_latitude(value: float) -> None:
    _check_range(value, *LATITUDE_RANGE, "Latitude", "°")


def validate_longitude(value: float) -> None:
    _check_range(value, *LONGITUDE_RANGE, "Longitude", "°")


def validate_depth(value: float) -> None:
    _check_range(value, 0.0, DEPTH_MAX_M, "Depth", " m")


def _check_range(value: float, low: float, high: float, name: str, unit: str) -> None:
    if value is None:
        return
    if value != value or not low <= value <= high:  # NaN compares unequal to itself
        raise ValidationError(f"{name} must be between {low:g}{unit} and {high:g}{unit}.", code="out_of_range")


def check_location_pair(latitude, longitude) -> None:
    """A location is both coordinates or neither."""
    if (latitude is None) != (longitude is None):
        raise ValidationError("Give both latitude and longitude, or neither.", code="incomplete_location")
