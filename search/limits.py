"""Limits on what a request may ask for, shared by the pages, the API, the middleware and the CLI.

Torch-free on purpose: forms and middleware import it at start-up, the search engine only at search time.
"""

from __future__ import annotations

from django.conf import settings

MAX_K = 100
"""The most results one search may ask for (API ``k``, page ``k``, ``search_similar -k``)."""

MULTIPART_SLACK_BYTES = 64 * 1024
"""Room for the multipart envelope and the small form fields around an uploaded file."""


def k_error(k: int) -> str | None:
    """Why ``k`` is not an acceptable number of results, or None when it is."""
    return None if 1 <= k <= MAX_K else f"k must be between 1 and {MAX_K}."


def declared_body_bytes(request) -> int:
    """The request's declared Content-Length (0 when missing or not a number)."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def body_over_allowance(request) -> bool:
    """True when the declared body cannot hold an acceptable upload: refuse it before reading a byte."""
    return declared_body_bytes(request) > settings.GEOSIM_MAX_UPLOAD_BYTES + MULTIPART_SLACK_BYTES
