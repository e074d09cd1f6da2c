"""Selectors: read-only queries used by pages, the API and commands."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from search.models import Image, Job


def images_list(*, label: str | None = None) -> QuerySet[Image]:
    qs = Image.objects.all().order_by("-id")
    if label:
        qs = qs.filter(label=label)
    return qs


def label_counts() -> list[dict]:
    """Rock types present in the collection with their image counts, most common first."""
    return list(
        Image.objects.exclude(label=None).values("label").annotate(count=Count("id")).order_by("-count", "label")
    )


def jobs_recent(*, limit: int = 100) -> QuerySet[Job]:
    return Job.objects.select_related("created_by").order_by("-created_at", "-id")[:limit]
