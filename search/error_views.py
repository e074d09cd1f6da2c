"""Error pages Django renders itself (``handler500``); the API's errors are JSON, see search/api/exceptions.py."""

from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.template import loader

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_S = 10


def server_error(request: HttpRequest) -> HttpResponse:
    """An unhandled error: 503 "try again shortly" when the database is unreachable, the plain 500 page otherwise.

    Both pages render without a request context: the context processors (the logged-in user, messages)
    would query the database that may be what failed.
    """
    exc = sys.exc_info()[1]
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("Database unavailable while serving %s: %s", request.path, exc)
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
    return HttpResponseServerError(loader.render_to_string("500.html"))
