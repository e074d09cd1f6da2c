"""Request guards: for /api/, bounded uploads, URLs with or without their trailing slash, JSON for every
error; for every URL, query strings a database cannot hold are refused."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.shortcuts import render
from django.urls import is_valid_path

from search.api.exceptions import PayloadTooLarge, generic_error, json_error
from search.limits import body_over_allowance

API_PREFIX = "/api/"
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class UploadLimitHandler(FileUploadHandler):
    """Stops parsing a multipart body as soon as one file passes GEOSIM_MAX_UPLOAD_BYTES (413).

    Runs first, so the bytes past the limit are never written to memory or to a temporary file.
    """

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.limit = settings.GEOSIM_MAX_UPLOAD_BYTES

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            raise PayloadTooLarge(self.limit)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handlers build the uploaded file


class ApiGuardMiddleware:
    """For /api/ requests.

    - A declared body over GEOSIM_MAX_UPLOAD_BYTES (plus the multipart envelope) is 413 before any of
      it is read; a file that grows past the limit while parsed is 413 as soon as it does.
    - ``/api/v1/search`` works like ``/api/v1/search/``: Django's APPEND_SLASH would redirect a POST
      (dropping its body) or, with DEBUG on, crash.
    - Errors raised outside DRF views (unknown URLs, a non-numeric id, a disallowed host, a crash)
      are Django HTML pages; they become the API's JSON error document, without a traceback even
      when DEBUG is on.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        if request.method in {"POST", "PUT", "PATCH"}:
            # A file over the limit that fits in the multipart slack is stopped by UploadLimitHandler.
            if body_over_allowance(request):
                limit = settings.GEOSIM_MAX_UPLOAD_BYTES
                return json_error(413, "too_large", f"The upload is too large: the limit is {limit:,} bytes.")
            request.upload_handlers.insert(0, UploadLimitHandler(request))
        if not request.path_info.endswith("/") and is_valid_path(request.path_info + "/"):
            request.path_info += "/"
            request.path += "/"
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            replacement = generic_error(response.status_code)
            for header in _KEPT_HEADERS:
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response


class QueryStringGuardMiddleware:
    """A NUL character in a query string (``?label=%00``) is a 400 on every page, admin list and API call.

    Postgres cannot store or compare text holding NUL and raises, which would be a 500 wherever a
    parameter reaches a query unvalidated (e.g. the admin's list filters and search box). Forms and
    serializers already refuse NUL in bodies; this covers the query strings they never see.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in key or "\x00" in value for key, value in _params(request)):
            message = "The address holds a NUL character, which no parameter may contain."
            if request.path_info.startswith(API_PREFIX):
                return json_error(400, "invalid", message)
            return render(request, "400.html", {"message": message}, status=400)
        return self.get_response(request)


def _params(request):
    for key, values in request.GET.lists():
        for value in values:
            yield key, value
