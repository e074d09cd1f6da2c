"""Pages: search, one image, the embedding explorer and the jobs monitor. Thin: services and selectors do the work."""

from __future__ import annotations

import base64
import io
import re
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from search import engine, query_tokens, selectors
from search.filters import NO_FILTER, FilterError, parse_filters
from search.forms import DEFAULT_K, SearchForm
from search.health import health_report
from search.imaging import ImageRejected, decode_image
from search.labels import InvalidLabel, normalize_label
from search.limits import body_over_allowance, declared_body_bytes
from search.live_index import IndexUnavailable
from search.models import Image, IndexVersion, Job
from search.regions import InvalidRegion
from search.services import export as export_formats
from search.services import projection
from search.services.feedback import FeedbackError, parse_ids, search_with_feedback
from search.services.query_uploads import query_bytes, query_keep

GRID_PAGE_SIZE = 48
K_CHOICES = (5, 10, 20, 50, 100)
_IMAGE_NUMBER = re.compile(r"[0-9]{1,18}")  # within a 64-bit primary key


# -- search ---------------------------------------------------------------------------------------


@csrf_exempt  # checked below, once the size is known to be acceptable (so a huge body is never parsed)
@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """The search page: upload an image or pick one of the collection; results, vote and the collection grid."""
    if request.method == "POST" and body_over_allowance(request):  # refused unread
        return _home_page(request, SearchForm(), error=_too_big(declared_body_bytes(request)), status=413)
    return _home_checked(request)


@csrf_protect
def _home_checked(request: HttpRequest) -> HttpResponse:
    try:
        normalize_label(request.GET.get("grid_label"))
    except InvalidLabel as exc:
        return _home_page(request, SearchForm(), error=str(exc), status=400)
    params = request.POST if request.method == "POST" else request.GET
    try:
        request.image_filter = parse_filters(params)
    except FilterError as exc:
        request.image_filter = NO_FILTER
        return _home_page(request, SearchForm(), error=f"Filter {exc}", status=400)
    if request.method == "POST":
        form = SearchForm(request.POST, request.FILES)
        return _search_upload(request, form)
    form = SearchForm(request.GET or None)
    if "image" in request.GET:
        return _search_collection_image(request, form, request.GET["image"])
    if "upload" in request.GET:  # an uploaded query again, on a region of it
        return _search_kept_upload(request, form, request.GET["upload"])
    if request.GET.get("k") or request.GET.get("label"):
        form.is_valid()  # show the chosen K and rock type back, and any error in them
    return _home_page(request, form)


def _search_upload(request: HttpRequest, form: SearchForm) -> HttpResponse:
    if not form.is_valid():
        return _home_page(request, form, error=_form_error(form), status=400)
    upload = form.cleaned_data["image"]
    try:
        positive = parse_ids(request.POST.getlist("positive"), "positive")
        negative = parse_ids(request.POST.getlist("negative"), "negative")
    except FeedbackError as exc:
        return _home_page(request, form, error=str(exc), status=400)
    if positive or negative:
        return _search_refined(request, form, positive=positive, negative=negative)
    if upload is None and form.cleaned_data["query_image"]:  # the same collection image, other K or rock type
        return redirect(
            _collection_search_url(
                form.cleaned_data["query_image"], form.cleaned_data, request.image_filter, request.POST.get("export")
            )
        )
    if upload is None and form.cleaned_data["query"]:
        return _search_saved_query(request, form, form.cleaned_data["query"])
    if upload is None:
        return _home_page(request, form, error="Choose an image file to search with.", status=400)
    if upload.size > settings.GEOSIM_MAX_UPLOAD_BYTES:
        return _home_page(request, form, error=_too_big(upload.size), status=413)
    return _search_bytes(request, form, upload.read(), name=upload.name)


def _search_kept_upload(request: HttpRequest, form: SearchForm, token: str) -> HttpResponse:
    """Re-run an uploaded query on a region of it, from the copy kept for an hour."""
    if not form.is_valid():
        return _home_page(request, form, error=_form_error(form), status=400)
    data = query_bytes(token)
    if data is None:
        return _home_page(request, form, error="That query image is no longer kept; upload it again.", status=404)
    return _search_bytes(request, form, data, name="your image")


def _search_bytes(request: HttpRequest, form: SearchForm, data: bytes, *, name: str) -> HttpResponse:
    region = form.cleaned_data["region"]
    try:
        answer = engine.search_by_bytes(data, k=form.cleaned_data["k"], filters=request.image_filter, region=region)
    except ImageRejected as exc:
        return _home_page(request, form, error=f"“{name}” cannot be searched: {exc}", status=400)
    except (engine.UnknownLabel, InvalidRegion) as exc:
        return _home_page(request, form, error=str(exc), status=400)
    except IndexUnavailable as exc:
        return _home_page(request, form, error=f"Search is not available yet. {exc}", status=503)
    src, width, height = _preview(data)
    query = {
        "name": name,
        "src": src,
        "image": None,
        "upload": query_keep(data),
        "width": width,
        "height": height,
        "region": region,
    }
    query["token"] = _query_token(answer, query)
    return _home_page(request, form, answer=answer, query=query)


def _search_saved_query(request: HttpRequest, form: SearchForm, token: str) -> HttpResponse:
    """The results page's uploaded query again, with the K and rock type now chosen."""
    try:
        saved = query_tokens.saved_query(token)
        answer = engine.search_by_vector(
            saved.vector,
            model_version_id=saved.model_version_id,
            k=form.cleaned_data["k"],
            filters=request.image_filter,
        )
    except (query_tokens.QueryTokenInvalid, engine.QueryOutdated) as exc:
        return _home_page(request, form, error=str(exc), status=400)
    except engine.UnknownLabel as exc:
        return _home_page(request, form, error=str(exc), status=400)
    except IndexUnavailable as exc:
        return _home_page(request, form, error=f"Search is not available yet. {exc}", status=503)
    query = {"name": saved.name, "src": saved.preview, "image": None, "token": token}
    return _home_page(request, form, answer=answer, query=query)


def _search_refined(request: HttpRequest, form: SearchForm, *, positive: list[int], negative: list[int]):
    """The results again, moved towards the images marked "more like this" and away from "less like this"."""
    upload, token, image_id = form.cleaned_data["image"], form.cleaned_data["query"], form.cleaned_data["query_image"]
    data = upload.read() if upload is not None else None
    saved = None
    try:
        saved = query_tokens.saved_query(token) if upload is None and token else None
        answer = search_with_feedback(
            data=data,
            base=saved.vector if saved else None,
            image_id=image_id if upload is None and saved is None else None,
            positive=positive,
            negative=negative,
            k=form.cleaned_data["k"],
            filters=request.image_filter,
        )
    except (ImageRejected, FeedbackError, query_tokens.QueryTokenInvalid, engine.UnknownLabel) as exc:
        return _home_page(request, form, error=str(exc), status=400)
    except IndexUnavailable as exc:
        return _home_page(request, form, error=f"Search is not available yet. {exc}", status=503)
    # Later rounds start from this round's refined query (a token for uploads, the image for collection images).
    if saved is not None:
        query = {"name": saved.name, "src": saved.preview, "image": None}
        query["token"] = _query_token(answer, query)
    elif upload is not None:
        query = {"name": upload.name, "src": _preview(data)[0], "image": None}
        query["token"] = _query_token(answer, query)
    elif image_id is not None:
        image = Image.objects.get(pk=image_id)
        query = {"name": f"#{image.pk} · {image.label or 'unlabelled'}", "src": image.display_url, "image": image}
    else:
        query = {"name": "the marked images", "src": "", "image": None}
    request.marked = {"positive": positive, "negative": negative}
    return _home_page(request, form, answer=answer, query=query)


def _query_token(answer: engine.SearchAnswer, query: dict) -> str:
    return query_tokens.query_token(
        vector=answer.query_vector, model_version_id=answer.model_version_id, name=query["name"], preview=query["src"]
    )


def _collection_search_url(image_id: int, cleaned: dict, image_filter, export: str | None = None) -> str:
    params = {"image": image_id, "k": cleaned["k"], **image_filter.as_params()}
    if export in export_formats.FORMATS:
        params["export"] = export
    if cleaned["label"]:
        params["label"] = cleaned["label"]
    return f"{reverse('home')}?{urlencode(params)}#results"


def _search_collection_image(request: HttpRequest, form: SearchForm, raw_id: str) -> HttpResponse:
    if not form.is_valid():
        return _home_page(request, form, error=_form_error(form), status=400)
    if not _IMAGE_NUMBER.fullmatch(raw_id):  # str.isdigit() also accepts "²", which int() refuses
        return _home_page(request, form, error=f"“{raw_id}” is not an image number.", status=400)
    region = form.cleaned_data["region"]
    try:
        answer = engine.search_by_image(
            int(raw_id), k=form.cleaned_data["k"], filters=request.image_filter, region=region
        )
    except engine.UnknownImage:
        return _home_page(request, form, error=f"There is no image #{raw_id} in the collection.", status=404)
    except engine.ImageUnreadable as exc:
        return _home_page(request, form, error=str(exc), status=422)
    except (engine.UnknownLabel, InvalidRegion) as exc:
        return _home_page(request, form, error=str(exc), status=400)
    except IndexUnavailable as exc:
        return _home_page(request, form, error=f"Search is not available yet. {exc}", status=503)
    image = answer.query_image
    query = {
        "name": f"#{image.pk} · {image.label or 'unlabelled'}",
        "src": image.display_url,
        "image": image,
        "width": image.width,
        "height": image.height,
        "region": region,
    }
    return _home_page(request, form, answer=answer, query=query)


def _home_page(request, form, *, answer=None, query=None, error: str = "", status: int = 200) -> HttpResponse:
    # Only with an answer: an oversized POST is answered here too, and its body must stay unread.
    export = (request.POST if request.method == "POST" else request.GET).get("export") if answer else None
    if export in export_formats.FORMATS:
        return export_formats.export_response(
            export_formats.rows_from_answer(answer),
            fmt=export,
            name="search-results",
            absolute_url=request.build_absolute_uri,
        )
    grid_label = _grid_label(request)
    image_filter = getattr(request, "image_filter", NO_FILTER)
    matching = selectors.images_list(label=grid_label, filters=image_filter)
    page = Paginator(matching, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    k = form.cleaned_data.get("k", DEFAULT_K) if form.is_bound and hasattr(form, "cleaned_data") else DEFAULT_K
    label = form.cleaned_data.get("label", "") if form.is_bound and hasattr(form, "cleaned_data") else ""
    context = {
        "form": form,
        "answer": answer,
        "query": query,
        "error": error,
        "k": k,
        "k_choices": sorted({*K_CHOICES, k}),
        "label": label,
        "labels": selectors.label_counts(),
        "page": page,
        "grid_label": grid_label,
        "max_upload_mb": settings.GEOSIM_MAX_UPLOAD_BYTES / 1e6,
        "image_filter": image_filter,
        "filter_params": image_filter.as_params(),
        "filter_query": urlencode(image_filter.as_params()),
        "filter_choices": selectors.filter_choices(),
        "location": selectors.location_summary(matching) if image_filter else None,
        "hits_location": selectors.location_summary_of_ids([hit.image.pk for hit in answer.hits]) if answer else None,
        "marked": getattr(request, "marked", {"positive": [], "negative": []}),
        "list_export_query": urlencode({**image_filter.as_params(), **({"label": grid_label} if grid_label else {})}),
    }
    return render(request, "search/home.html", context, status=status)


def _grid_label(request: HttpRequest) -> str | None:
    """The collection grid's rock-type filter, normalised (unusable text was answered 400 before)."""
    try:
        return normalize_label(request.GET.get("grid_label"))
    except InvalidLabel:
        return None


def _form_error(form: SearchForm) -> str:
    return " ".join(str(message) for messages in form.errors.values() for message in messages)


def _too_big(size: int) -> str:
    limit = settings.GEOSIM_MAX_UPLOAD_BYTES
    return f"The file is too big ({size / 1e6:.1f} MB); images up to {limit / 1e6:.0f} MB are accepted."


def _preview(data: bytes) -> tuple[str, int, int]:
    """The query image as a small inline PNG, and its width and height as shown (EXIF orientation applied)."""
    picture = decode_image(data, max_pixels=settings.GEOSIM_MAX_PIXELS).image
    width, height = picture.size
    picture.thumbnail((256, 256))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode(), width, height


# -- one image --------------------------------------------------------------------------------------


@require_GET
def image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One image: enlarged, its metadata and its most similar images."""
    image = get_object_or_404(Image.objects.select_related("uploaded_by"), pk=pk)
    form = SearchForm(request.GET)
    answer, notice, status = None, "", 200
    if not form.is_valid():
        notice, status = _form_error(form), 400
    else:
        try:
            answer = engine.search_by_image(image.pk, k=form.cleaned_data["k"], match_boxes=False)
        except IndexUnavailable as exc:
            notice = f"Similar images will appear once the index is built. {exc}"
        except engine.ImageUnreadable as exc:
            notice = str(exc)
    k = form.cleaned_data.get("k", DEFAULT_K) if hasattr(form, "cleaned_data") else DEFAULT_K
    context = {"image": image, "answer": answer, "notice": notice, "k": k, "k_choices": sorted({*K_CHOICES, k})}
    return render(request, "search/image_detail.html", context, status=status)


@require_GET
def image_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """Redirect to the image's display file (the explorer's tooltips know ids, not file names)."""
    image = get_object_or_404(Image.objects.only("file", "thumbnail"), pk=pk)
    response = redirect(image.display_url)
    response["Cache-Control"] = "public, max-age=86400"
    return response


# -- explorer -----------------------------------------------------------------------------------------


def _method(request: HttpRequest) -> str:
    method = request.GET.get("method", "pca")
    if method not in projection.METHODS:
        raise Http404(f"Unknown projection method {method!r}.")
    return method


@require_GET
def explore(request: HttpRequest) -> HttpResponse:
    """The 3-D embedding explorer; starts (or joins) the projection job when the live version has none.

    Never waits for the projection: the job runs on a worker (or a background thread in the embedded
    mode) and the page polls explore_status until the file is there.
    """
    method = _method(request)
    live = selectors.active_index_version()
    context = {"method": method, "methods": projection.METHODS, "live": live, "job": None, "cached": None}
    if live is not None:
        cached = projection.projection_cached(method=method, index_version=live.version)
        if cached is None:
            context.update(_projection_job(request, method=method, index_version=live.version))
            # Meanwhile, an older projection is better than an empty page.
            cached = projection.projection_cached(method=method)
        context["cached"] = cached
        context["stale"] = cached is not None and cached.index_version != live.version
    return render(request, "search/explore.html", context)


def _projection_job(request: HttpRequest, *, method: str, index_version: int) -> dict:
    """The job computing this projection (started if this visitor may), or why there is none."""
    if not projection.projection_may_start(method=method, user=request.user):
        job = projection.projection_open_job(method=method, index_version=index_version)
        return {"job": job, "staff_only": job is None}
    job = projection.projection_request(
        method=method, index_version=index_version, created_by=request.user if request.user.is_staff else None
    )
    job.refresh_from_db()
    if job.status == Job.Status.SUCCEEDED and projection.projection_job_is_for(
        job, method=method, index_version=index_version
    ):
        return {"job": None}  # finished already (inline jobs): the cached file is there
    return {
        "job": job,
        "queued_behind": not projection.projection_job_is_for(job, method=method, index_version=index_version),
    }


@require_GET
@never_cache
def explore_status(request: HttpRequest) -> JsonResponse:
    """Progress of the projection of the live index version (the explorer polls this).

    When the job it waited for was another projection (one runs at a time), this starts the wanted one.
    """
    method = _method(request)
    live = IndexVersion.objects.filter(is_active=True).first()
    if live is None:
        return JsonResponse({"ready": False, "status": "no_index", "progress": 0.0, "error": ""})
    if projection.projection_cached(method=method, index_version=live.version):
        return JsonResponse({"ready": True, "status": Job.Status.SUCCEEDED, "progress": 1.0, "error": ""})
    job = _projection_job(request, method=method, index_version=live.version).get("job")
    if job is None:
        job = Job.objects.filter(kind=Job.Kind.PROJECTION).order_by("-id").first()
    if job is None:
        return JsonResponse({"ready": False, "status": "missing", "progress": 0.0, "error": ""})
    if not projection.projection_job_is_for(job, method=method, index_version=live.version):
        return JsonResponse({"ready": False, "status": Job.Status.PENDING, "progress": 0.0, "error": ""})
    return JsonResponse({"ready": False, "status": job.status, "progress": job.progress, "error": job.error})


@require_GET
def explore_data(request: HttpRequest, name: str) -> HttpResponse:
    """A cached projection file (gzipped JSON; immutable: its name carries the index version and method)."""
    cached = projection.projection_by_name(name)
    if cached is None:
        raise Http404("No such projection.")
    gzipped = "gzip" in request.META.get("HTTP_ACCEPT_ENCODING", "")
    response = HttpResponse(projection.projection_bytes(cached, gzipped=gzipped), content_type="application/json")
    if gzipped:
        response["Content-Encoding"] = "gzip"
    response["Vary"] = "Accept-Encoding"
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


# -- jobs ------------------------------------------------------------------------------------------------


def _staff_json(view):
    """Staff only, answering 403 JSON (not a login redirect) to scripts that poll."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not (request.user.is_active and request.user.is_staff):
            return JsonResponse({"detail": "Staff only: log in at /admin/login/."}, status=403)
        return view(request, *args, **kwargs)

    return wrapped


@require_GET
@staff_member_required
def jobs(request: HttpRequest) -> HttpResponse:
    """Background jobs with live progress (staff only)."""
    recent = list(selectors.jobs_recent())
    return render(
        request,
        "search/jobs.html",
        {
            "jobs": recent,
            "any_open": any(not job.is_finished for job in recent),
            "status_url": reverse("jobs_status"),
        },
    )


@require_GET
@never_cache
@_staff_json
def jobs_status(request: HttpRequest) -> JsonResponse:
    """The recent jobs as JSON for the jobs page's live progress."""
    recent = list(selectors.jobs_recent())
    rows = [
        {
            "id": job.pk,
            "kind": job.get_kind_display(),
            "status": job.status,
            "status_display": job.get_status_display(),
            "progress": round(job.progress, 4),
            "done": job.done,
            "total": job.total,
            "error": job.error,
            "note": (job.result or {}).get("note", ""),
            "created_by": job.created_by.get_username() if job.created_by else "",
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        }
        for job in recent
    ]
    return JsonResponse({"jobs": rows, "open": sum(not job.is_finished for job in recent)})


# -- health ------------------------------------------------------------------------------------------------


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the live index are usable (status "ok", or "degraded"); 503 otherwise."""
    healthy, details = health_report()
    return JsonResponse(details, status=200 if healthy else 503)
