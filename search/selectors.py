"""Selectors: read-only queries used by pages, the API and commands."""

from __future__ import annotations

from django.db import connection
from django.db.models import Avg, Count, Max, Min, QuerySet

from search.filters import NO_FILTER, ImageFilter
from search.models import Image, IndexVersion, Job, ModelVersion


def images_list(*, label: str | None = None, filters: ImageFilter = NO_FILTER) -> QuerySet[Image]:
    """The collection, newest first, narrowed by a rock type and/or metadata filters."""
    qs = filters.apply(Image.objects.all()).order_by("-id")
    if label:
        qs = qs.filter(label=label)
    return qs


def label_counts() -> list[dict]:
    """Rock types present in the collection with their image counts, most common first."""
    return list(
        Image.objects.exclude(label=None).values("label").annotate(count=Count("id")).order_by("-count", "label")
    )


def filter_choices(*, limit: int = 200) -> dict[str, list[str]]:
    """Collections and tags present in the collection, for the filter form's suggestions."""
    collections = (
        Image.objects.exclude(collection="").values_list("collection", flat=True).distinct().order_by("collection")
    )
    tags: set[str] = set()
    for row in Image.objects.exclude(tags=[]).values_list("tags", flat=True)[:5000]:
        tags.update(row)
    return {"collections": list(collections[:limit]), "tags": sorted(tags)[:limit]}


def location_summary(images: QuerySet[Image]) -> dict:
    """Where a set of images comes from, without a map: counts, the bounding box and centre, the depth range."""
    located = images.exclude(latitude=None).exclude(longitude=None)
    summary = located.aggregate(
        located=Count("id"),
        min_lat=Min("latitude"),
        max_lat=Max("latitude"),
        min_lon=Min("longitude"),
        max_lon=Max("longitude"),
        mean_lat=Avg("latitude"),
        mean_lon=Avg("longitude"),
    )
    summary.update(
        images.exclude(depth_m=None).aggregate(
            with_depth=Count("id"), min_depth=Min("depth_m"), max_depth=Max("depth_m")
        )
    )
    summary["total"] = images.count()
    summary["collections"] = list(
        images.exclude(collection="").values("collection").annotate(count=Count("id")).order_by("-count")[:5]
    )
    return summary


def location_summary_of_ids(ids: list[int]) -> dict:
    return location_summary(Image.objects.filter(pk__in=ids))


def active_index_version() -> IndexVersion | None:
    """The index version that answers searches now, with its model version."""
    return IndexVersion.objects.filter(is_active=True).select_related("model_version").first()


def model_versions() -> QuerySet[ModelVersion]:
    """Every model version, newest first."""
    return ModelVersion.objects.order_by("-created_at", "-id")


def jobs_recent(*, limit: int = 100) -> QuerySet[Job]:
    return Job.objects.select_related("created_by").order_by("-created_at", "-id")[:limit]


_ANSWER_FIELDS = ("id", "label", "file", "thumbnail", "width", "height")


def images_for_answer(ids: set[int]) -> dict[int, Image]:
    """The rows a search answer shows, by id: a hand-written query on the hottest path.

    The ORM spends more time compiling an ``id IN (…)`` query than the database spends answering it
    (0.28 ms vs 0.09 ms a search); rows still become real ``Image`` instances through ``from_db``.
    """
    if not ids:
        return {}
    quote = connection.ops.quote_name
    # from_db expects the values in the model's field order.
    fields = [f.attname for f in Image._meta.concrete_fields if f.attname in _ANSWER_FIELDS]
    columns = ", ".join(quote(name) for name in fields)
    placeholders = ", ".join(["%s"] * len(ids))
    sql = f"SELECT {columns} FROM {quote(Image._meta.db_table)} WHERE {quote('id')} IN ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, list(ids))
        return {row[0]: Image.from_db(connection.alias, fields, row) for row in cursor.fetchall()}
