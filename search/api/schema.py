"""OpenAPI helpers shared by the views: the documented error answers."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse

from .serializers import ErrorSerializer

_DESCRIPTIONS = {
    400: "Invalid input (see error.fields): missing or unreadable image, bad k, unknown rock type…",
    401: "Not authenticated: log in, or send `Authorization: Token <key>`.",
    403: "Authenticated, but not a staff user.",
    404: "No such object, or for a list: 'Invalid page.' (a page past the last one, or not a positive number).",
    422: "The collection image has no embedding yet and its stored file cannot be read.",
    413: "The upload is larger than GEOSIM_MAX_UPLOAD_BYTES.",
    409: "Conflicts with work in progress (e.g. a training job is already running).",
    415: "The body is not multipart/form-data.",
    429: "Too many requests; Retry-After says when to try again.",
    503: (
        "No usable search index (none built yet, or being rebuilt), the database is down, or an upload could "
        "not be stored (full disk); see Retry-After."
    ),
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """`responses=` entries documenting the error document for these statuses."""
    return {code: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]) for code in statuses}
