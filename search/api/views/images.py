"""The collection: list and read images (anyone), add one (staff or staff token)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from search import selectors
from search.models import Image
from search.services.duplicates import upload_near_duplicates
from search.services.export import ExportTooLarge, export_response, rows_from_queryset
from search.services.ingestion import image_ingest
from search.services.metadata import image_metadata_update

from ..export_format import ExportNegotiation
from ..pagination import CheckedPageNumberPagination
from ..permissions import API_AUTHENTICATION, IsStaff
from ..schema import error_responses
from ..serializers import (
    ImageListQuerySerializer,
    ImageMetadataSerializer,
    ImageSerializer,
    ImageUploadAnswerSerializer,
    ImageUploadSerializer,
)
from ..throttles import UploadThrottle


@extend_schema_view(
    get=extend_schema(
        operation_id="images_list",
        summary="The collection, newest first",
        parameters=[ImageListQuerySerializer],
        responses={
            (200, "application/json"): ImageSerializer(many=True),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="format=csv: every matching image (not one page)."
            ),
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="format=zip: their files and images.csv."
            ),
            **error_responses(400, 404),
        },
        tags=["images"],
    )
)
class ImageListView(generics.ListAPIView):
    authentication_classes = API_AUTHENTICATION
    throttle_classes = [UploadThrottle]
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = ImageSerializer
    pagination_class = CheckedPageNumberPagination
    content_negotiation_class = ExportNegotiation

    def get_permissions(self):
        """Anyone may read the collection; only staff may add to it."""
        return [AllowAny()] if self.request.method in SAFE_METHODS else [IsStaff()]

    def get_queryset(self):
        return selectors.images_list(filters=self._query()["filters"])

    def _query(self) -> dict:
        query = ImageListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    def list(self, request: Request, *args, **kwargs):
        fmt = self._query()["format"]
        if fmt == "json":
            return super().list(request, *args, **kwargs)
        try:
            rows = rows_from_queryset(self.get_queryset())
            return export_response(rows, fmt=fmt, name="images", absolute_url=request.build_absolute_uri)
        except ExportTooLarge as exc:
            raise ValidationError({"format": [str(exc)]}) from None

    @extend_schema(
        operation_id="images_create",
        summary="Add an image to the collection (it becomes searchable once its processing job has run)",
        request={"multipart/form-data": ImageUploadSerializer},
        responses={
            201: OpenApiResponse(
                ImageUploadAnswerSerializer, description="Added; a processing job makes it searchable."
            ),
            200: OpenApiResponse(
                ImageUploadAnswerSerializer, description="An exact duplicate: the image already stored."
            ),
            **error_responses(400, 401, 403, 413, 415, 429, 503),
        },
        tags=["images"],
    )
    def post(self, request: Request) -> Response:
        upload = ImageUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file = upload.validated_data["image"]
        data = file.read()
        image, created = image_ingest(
            data=data,
            label=upload.validated_data.get("label"),
            original_name=file.name or "",
            source="api",
            uploaded_by=request.user,
        )
        body = {**ImageSerializer(image, context={"request": request}).data}
        body["near_duplicates"] = upload_near_duplicates(image, data)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema_view(
    get=extend_schema(
        operation_id="images_retrieve",
        summary="One image and its metadata",
        responses={200: ImageSerializer, **error_responses(404)},
        tags=["images"],
    ),
    patch=extend_schema(
        operation_id="images_partial_update",
        summary="Change an image's sample metadata or rock type (staff or token)",
        request=ImageMetadataSerializer,
        responses={200: ImageSerializer, **error_responses(400, 401, 403, 404)},
        tags=["images"],
    ),
)
class ImageDetailView(generics.RetrieveUpdateAPIView):
    authentication_classes = API_AUTHENTICATION
    serializer_class = ImageSerializer
    queryset = Image.objects.all()
    http_method_names = ["get", "patch", "head", "options"]

    def get_permissions(self):
        """Anyone may read an image; only staff may change it."""
        return [AllowAny()] if self.request.method in SAFE_METHODS else [IsStaff()]

    def patch(self, request: Request, pk: int) -> Response:
        image = self.get_object()
        changes = ImageMetadataSerializer(image, data=request.data, partial=True)
        changes.is_valid(raise_exception=True)
        image_metadata_update(image, changes.validated_data)
        return Response(ImageSerializer(image, context={"request": request}).data)
