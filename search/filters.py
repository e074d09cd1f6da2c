"""Metadata filters shared by search (API, page, CLI), the image list and the page grid.

``label``, ``collection``, ``tag``, ``depth_min``, ``depth_max`` and ``bbox=min_lon,min_lat,max_lon,max_lat``
combine with AND. :func:`parse_filters` turns query parameters (strings) into an :class:`ImageFilter`,
raising :class:`FilterError` with a message naming the parameter for malformed input (the API answers
400). ``label`` is normalised like every rock type; ``collection`` matches exactly; ``tag`` matches one
element of the image's tag list. A bbox whose min_lon > max_lon crosses the antimeridian.

The tag test is JSON containment on PostgreSQL (GIN-indexed, see migration 0003) and a match on the
JSON text elsewhere, which is exact because tags cannot contain quotes (search/metadata_rules.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet

from search import metadata_rules as rules
from search.labels import InvalidLabel, normalize_label
from search.models import Image

FILTER_PARAMS = ("label", "collection", "tag", "depth_min", "depth_max", "bbox")


class FilterError(ValueError):
    """A malformed filter parameter; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class ImageFilter:
    label: str | None = None
    collection: str | None = None
    tag: str | None = None
    depth_min: float | None = None
    depth_max: float | None = None
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    @property
    def only_label(self) -> bool:
        """Only a rock type is asked for: the live index's cached label ids answer it."""
        return self.label is not None and not ImageFilter(**{**self.as_dict(), "label": None})

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (for links: export, pagination)."""
        params = {}
        for name, value in self.as_dict().items():
            if name == "bbox" and value is not None:
                params[name] = ",".join(f"{v:g}" for v in value)
            elif isinstance(value, float):
                params[name] = f"{value:g}"
            elif value is not None:
                params[name] = value
        return params

    def q(self) -> Q:
        """The filter as a Q on Image."""
        q = Q()
        if self.label is not None:
            q &= Q(label=self.label)
        if self.collection is not None:
            q &= Q(collection=self.collection)
        if self.tag is not None:
            if connection.vendor == "postgresql":
                q &= Q(tags__contains=[self.tag])
            else:
                q &= Q(tags__icontains=f'"{self.tag}"')
        if self.depth_min is not None:
            q &= Q(depth_m__gte=self.depth_min)
        if self.depth_max is not None:
            q &= Q(depth_m__lte=self.depth_max)
        if self.bbox is not None:
            min_lon, min_lat, max_lon, max_lat = self.bbox
            q &= Q(latitude__gte=min_lat, latitude__lte=max_lat)
            if min_lon <= max_lon:
                q &= Q(longitude__gte=min_lon, longitude__lte=max_lon)
            else:
                q &= Q(longitude__gte=min_lon) | Q(longitude__lte=max_lon)
        return q

    def apply(self, queryset: QuerySet[Image]) -> QuerySet[Image]:
        return queryset.filter(self.q()) if self else queryset

    def matching_ids(self) -> np.ndarray:
        """Ids of every image the filter admits (int64, unsorted)."""
        ids = Image.objects.filter(self.q()).values_list("pk", flat=True)
        return np.fromiter(ids, dtype=np.int64)


NO_FILTER = ImageFilter()


def parse_filters(params) -> ImageFilter:
    """An ImageFilter from query/form parameters (a QueryDict or a dict of strings); FilterError if malformed."""
    values = {name: _text(params.get(name)) for name in FILTER_PARAMS}
    label = collection = tag = None
    if values["label"]:
        try:
            label = normalize_label(values["label"])
        except InvalidLabel as exc:
            raise FilterError("label", str(exc)) from None
    if values["collection"]:
        collection = values["collection"]
        if len(collection) > rules.COLLECTION_MAX:
            raise FilterError("collection", f"at most {rules.COLLECTION_MAX} characters")
    if values["tag"]:
        try:
            tag = rules.normalize_tag(values["tag"])
        except ValidationError as exc:
            raise FilterError("tag", exc.messages[0]) from None
    depth_min = _number("depth_min", values["depth_min"])
    depth_max = _number("depth_max", values["depth_max"])
    if depth_min is not None and depth_max is not None and depth_min > depth_max:
        raise FilterError("depth_min", f"depth_min ({depth_min:g}) is greater than depth_max ({depth_max:g})")
    bbox = _bbox(values["bbox"]) if values["bbox"] else None
    return ImageFilter(label=label, collection=collection, tag=tag, depth_min=depth_min, depth_max=depth_max, bbox=bbox)


def _text(value) -> str:
    if isinstance(value, list | tuple):
        value = value[-1] if value else ""
    return "" if value is None else str(value).strip()


def _number(param: str, raw: str) -> float | None:
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise FilterError(param, f"{raw!r} is not a number") from None
    if not math.isfinite(value):
        raise FilterError(param, f"{raw!r} is not a finite number")
    return value


def _bbox(raw: str) -> tuple[float, float, float, float]:
    parts = raw.split(",")
    if len(parts) != 4:
        raise FilterError("bbox", "expected four numbers: min_lon,min_lat,max_lon,max_lat")
    min_lon, min_lat, max_lon, max_lat = (_number("bbox", part.strip()) for part in parts)
    if None in (min_lon, min_lat, max_lon, max_lat):
        raise FilterError("bbox", "expected four numbers: min_lon,min_lat,max_lon,max_lat")
    for value, (low, high), name in (
        (min_lon, rules.LONGITUDE_RANGE, "min_lon"),
        (max_lon, rules.LONGITUDE_RANGE, "max_lon"),
        (min_lat, rules.LATITUDE_RANGE, "min_lat"),
        (max_lat, rules.LATITUDE_RANGE, "max_lat"),
    ):
        if not low <= value <= high:
            raise FilterError("bbox", f"{name} must be between {low:g} and {high:g}")
    if min_lat > max_lat:
        raise FilterError("bbox", "min_lat is greater than max_lat")
    return min_lon, min_lat, max_lon, max_lat
