"""Pages. Thin: read through selectors, render templates."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from search import selectors


def home(request: HttpRequest) -> HttpResponse:
    label = request.GET.get("label") or None
    page = Paginator(selectors.images_list(label=label), 60).get_page(request.GET.get("page"))
    return render(request, "search/home.html", {"page": page, "labels": selectors.label_counts(), "label": label})


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers; 503 otherwise. The index state joins this with the search engine."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = {"ok": True}
    except Exception as exc:
        database = {"ok": False, "error": type(exc).__name__}
    status = 200 if database["ok"] else 503
    return JsonResponse({"status": "ok" if status == 200 else "unavailable", "database": database}, status=status)
