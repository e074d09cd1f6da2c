"""The near-duplicates review page (staff): open groups with thumbnails, one decision form per group.

Thin: finding, listing and resolving live in search/services/duplicates.py.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from search.models import Job
from search.services.duplicates import (
    MIN_CORRELATION,
    MIN_COSINE,
    ReviewRejected,
    UnknownGroup,
    duplicates_request,
    group_resolve,
    open_groups,
)

GROUPS_PER_PAGE = 20


@require_GET
@staff_member_required
def duplicates(request: HttpRequest) -> HttpResponse:
    """Open near-duplicate groups to review, and the button that looks for new ones."""
    return _page(request)


@require_POST
@staff_member_required
def duplicates_find(request: HttpRequest) -> HttpResponse:
    job = duplicates_request(created_by=request.user)
    messages.info(request, f"Looking for near-duplicates (job #{job.pk}); reload this page when it has finished.")
    return redirect("duplicates")


@require_POST
@staff_member_required
def duplicate_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    """Apply one group's form: keep one, keep all, or delete the selected images."""
    try:
        keep = _optional_int(request.POST.get("keep"))
        delete = [int(value) for value in request.POST.getlist("delete")]
    except ValueError:
        return _page(request, error="The form named an image that is not a number.", status=400)
    try:
        group_resolve(pk, action=request.POST.get("action", ""), keep=keep, delete=delete, user=request.user)
    except UnknownGroup as exc:
        return _page(request, error=str(exc), status=404)
    except ReviewRejected as exc:
        return _page(request, error=f"Group #{pk}: {exc}", status=400)
    messages.info(request, f"Group #{pk} resolved.")
    return redirect(reverse("duplicates") + (f"?page={request.GET['page']}" if request.GET.get("page") else ""))


def _optional_int(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


def _page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    page = Paginator(open_groups(), GROUPS_PER_PAGE).get_page(request.GET.get("page"))
    for group in page:
        members = list(group.members.all())
        # Suggested keeper: the most pixels, then the oldest.
        group.suggested = min(members, key=lambda m: (-m.image.width * m.image.height, m.image_id)).image_id
        group.member_list = members
    last_job = Job.objects.filter(kind=Job.Kind.DUPLICATES).order_by("-created_at", "-id").first()
    context = {
        "page": page,
        "last_job": last_job,
        "error": error,
        "min_correlation": MIN_CORRELATION,
        "min_cosine": MIN_COSINE,
    }
    return render(request, "search/duplicates.html", context, status=status)
