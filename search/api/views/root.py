"""GET /api/v1/ — where a script starts: every endpoint of the API, its schema and its docs."""

from __future__ import annotations

import re

from django.urls import get_resolver
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def _template(route: str) -> str:
    """``images/<int:pk>/similar/`` → ``images/{id}/similar/`` (the names the OpenAPI schema uses)."""
    return _CONVERTER.sub(lambda match: "{id}" if match.group(1) == "pk" else "{" + match.group(1) + "}", route)


class ApiRootView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="api_root",
        summary="The API's endpoints, by name",
        responses=inline_serializer(
            "ApiRoot",
            {
                "name": serializers.CharField(),
                "version": serializers.CharField(),
                "endpoints": serializers.DictField(child=serializers.CharField(), help_text="name → URL template"),
                "schema": serializers.URLField(),
                "docs": serializers.URLField(),
            },
        ),
        tags=["api"],
    )
    def get(self, request: Request) -> Response:
        _prefix, api = get_resolver().namespace_dict["api"]
        base = request.build_absolute_uri(request.path)
        endpoints = {
            pattern.name: base + _template(str(pattern.pattern))
            for pattern in api.url_patterns
            if pattern.name and str(pattern.pattern) and pattern.name not in {"root", "schema", "docs"}
        }
        return Response(
            {
                "name": "GeoSim API",
                "version": "v1",
                "endpoints": endpoints,
                "schema": base + "schema/",
                "docs": base + "docs/",
            }
        )
