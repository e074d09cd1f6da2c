"""Guards for /api/: refuse oversized bodies before reading them, and answer every error as JSON."""

from __future__ import annotations

from django.conf import settings

from search.api.exceptions import generic_error, json_error

API_PREFIX = "/api/"
# Room for the multipart envelope and the small form fields around the file itself; a file over the
# limit that fits in this slack is refused by the API's own size check, also with 413.
MULTIPART_SLACK_BYTES = 64 * 1024
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class ApiGuardMiddleware:
    """For /api/ requests: 413 for a declared body over GEOSIM_MAX_UPLOAD_BYTES; JSON for non-JSON errors.

    Errors raised outside DRF views (unknown URLs, a non-numeric id, a disallowed host, a crash)
    reach the client as Django's HTML pages; here they become the API's error document, with no
    traceback even when DEBUG is on.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        if request.method in {"POST", "PUT", "PATCH"}:
            limit = settings.GEOSIM_MAX_UPLOAD_BYTES
            if _declared_length(request) > limit + MULTIPART_SLACK_BYTES:
                return json_error(413, "too_large", f"The upload is too large: the limit is {limit:,} bytes.")
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            replacement = generic_error(response.status_code)
            for header in _KEPT_HEADERS:
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
