"""Pagination of the API's lists: page numbers, and a ``page_size`` that is checked, not silently ignored."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

MAX_PAGE_SIZE = 500
PAGE_NOT_FOUND = "A page number past the last page, or not a positive whole number, is answered 404 'Invalid page.'"


class CheckedPageNumberPagination(PageNumberPagination):
    """``?page=`` (404 "Invalid page." past the end) and ``?page_size=`` (1–500; anything else is a 400)."""

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            message = f"page_size must be a whole number between 1 and {self.max_page_size}."
            raise ValidationError({self.page_size_query_param: [message]})
        return int(raw)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = f"{parameter.get('description', '')} {PAGE_NOT_FOUND}".strip()
        return parameters
