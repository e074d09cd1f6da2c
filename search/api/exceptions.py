"""One JSON error shape for every 4xx and 5xx under /api/.

    {"error": {"status": 400, "code": "invalid", "message": "k: Ensure this value is ...",
               "fields": {"k": ["Ensure this value is ..."]}}}

``fields`` is present only for input that failed validation. The DRF exception handler below maps the
search engine's domain errors to HTTP; :mod:`search.middleware` answers the errors raised outside DRF
views (unknown URLs, oversized bodies, crashes) with the same shape.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.exceptions import APIException, ErrorDetail
from rest_framework.views import exception_handler as drf_exception_handler

from search.engine import ImageUnreadable, IndexUnavailable, UnknownImage, UnknownLabel
from search.filters import FilterError
from search.imaging import ImageRejected
from search.labels import InvalidLabel
from search.regions import InvalidRegion
from search.services.feedback import FeedbackError
from search.services.model_training import TrainingBusy, TrainingRejected
from search.services.model_versions import ModelVersionRejected
from search.stored_files import StorageFailed
from training.checkpoint import CheckpointError

logger = logging.getLogger(__name__)

INDEX_RETRY_AFTER_S = 10


class ApiError(APIException):
    """An error with an explicit status, code, message and optional per-field messages."""

    def __init__(self, message: str, *, status_code: int, code: str, fields: dict | None = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.fields = fields


class PayloadTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The upload is too large: the limit is {limit:,} bytes.",
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            code="too_large",
        )


def error_body(status_code: int, code: str, message: str, fields: dict | None = None) -> dict:
    """The error document every /api/ error answers with."""
    error = {"status": status_code, "code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def json_error(status_code: int, code: str, message: str, fields: dict | None = None) -> JsonResponse:
    """A plain Django response carrying the error document (for code outside DRF views)."""
    return JsonResponse(error_body(status_code, code, message, fields), status=status_code)


def generic_error(status_code: int) -> JsonResponse:
    """The error document for a status alone, when nothing more specific is known."""
    phrase = HTTPStatus(status_code).phrase if status_code in HTTPStatus._value2member_map_ else "Error"
    messages = {
        404: "Not found: there is no API endpoint or object at this address.",
        500: "Internal server error: the problem has been logged.",
    }
    return json_error(
        status_code, phrase.lower().replace(" ", "_").replace("-", "_"), messages.get(status_code, f"{phrase}.")
    )


def api_exception_handler(exc: Exception, context: dict):
    """DRF EXCEPTION_HANDLER: domain errors → 4xx/503, every APIException → the error document.

    Anything else returns None, so Django logs it as a crash; the middleware then answers a JSON 500.
    """
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = error_body(response.status_code, _code(exc), _message(exc), _fields(exc))
    if response.status_code == status.HTTP_503_SERVICE_UNAVAILABLE and "Retry-After" not in response:
        response["Retry-After"] = str(INDEX_RETRY_AFTER_S)
    return response


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, InvalidLabel):
        return ApiError(str(exc), status_code=400, code="invalid", fields={"label": [str(exc)]})
    if isinstance(exc, ImageRejected):
        return ApiError(str(exc), status_code=400, code="invalid_image", fields={"image": [str(exc)]})
    if isinstance(exc, UnknownLabel):
        return ApiError(str(exc), status_code=400, code="unknown_label", fields={"label": [str(exc)]})
    if isinstance(exc, InvalidRegion):
        return ApiError(str(exc), status_code=400, code="invalid_region", fields={"region": [str(exc)]})
    if isinstance(exc, TrainingBusy):
        return ApiError(str(exc), status_code=409, code="training_running")
    if isinstance(exc, TrainingRejected | ModelVersionRejected):
        return ApiError(str(exc), status_code=400, code="invalid")
    if isinstance(exc, FeedbackError):
        return ApiError(str(exc), status_code=400, code="invalid_feedback", fields={exc.param: [exc.message]})
    if isinstance(exc, FilterError):
        return ApiError(str(exc), status_code=400, code="invalid_filter", fields={exc.param: [exc.message]})
    if isinstance(exc, DjangoValidationError):  # a model rule the serializer did not repeat
        return exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, ImageUnreadable):
        return ApiError(str(exc), status_code=422, code="image_unreadable")
    if isinstance(exc, UnknownImage):
        return ApiError(str(exc), status_code=404, code="not_found")
    if isinstance(exc, IndexUnavailable):
        # The engine's message may go on to name index files on disk: log it whole, answer its first sentence.
        logger.warning("Search index unavailable: %s", exc)
        return ApiError(_first_sentence(str(exc)), status_code=503, code="index_unavailable")
    if isinstance(exc, StorageFailed):
        logger.error("Upload not stored: %s", exc)
        return ApiError(
            "The image could not be stored (the server's storage may be full or unreachable); nothing was added. "
            "Try again later.",
            status_code=503,
            code="storage_unavailable",
        )
    if isinstance(exc, CheckpointError):
        logger.error("Embedding model unavailable: %s", exc)
        return ApiError(
            "No usable embedding model is installed; the server log says why.",
            status_code=503,
            code="model_unavailable",
        )
    if isinstance(exc, OperationalError | InterfaceError):
        # A restarting database: a temporary condition, not a crash; connections are re-checked per request.
        # (Integrity or programming errors are bugs: they stay 500s, logged with their traceback.)
        logger.warning("Database unavailable: %s", exc)
        return ApiError("The database is unavailable; try again shortly.", status_code=503, code="database_unavailable")
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def _first_sentence(text: str) -> str:
    head = text.split(". ", 1)[0].strip()
    return head if head.endswith(".") else head + "."


def _code(exc: APIException) -> str:
    if isinstance(exc.detail, ErrorDetail) and exc.detail.code:
        return str(exc.detail.code)
    return exc.default_code


def _fields(exc: APIException) -> dict | None:
    if isinstance(exc, ApiError):
        return exc.fields
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return {name: _plain(messages) for name, messages in detail.items()}
    return None


def _plain(messages):
    if isinstance(messages, list):
        return [_plain(message) for message in messages]
    if isinstance(messages, dict):
        return {key: _plain(value) for key, value in messages.items()}
    return str(messages)


def _message(exc: APIException) -> str:
    fields = _fields(exc) if isinstance(exc, exceptions.ValidationError) else None
    if fields is None:
        return str(exc.detail)
    parts = []
    for name, messages in fields.items():
        first = messages[0] if isinstance(messages, list) and messages else messages
        parts.append(str(first) if name == "non_field_errors" else f"{name}: {first}")
    return " ".join(parts) or "Invalid input."
