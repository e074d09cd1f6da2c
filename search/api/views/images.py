"""The collection: list and read images (anyone), add one (staff or staff token)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from search import selectors
from search.models import Image
from search.services.ingestion import image_ingest

from ..permissions import API_AUTHENTICATION, IsStaff
from ..schema import error_responses
from ..serializers import ImageListQuerySerializer, ImageSerializer, ImageUploadSerializer
from ..throttles import UploadThrottle


class ImagePagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema_view(
    get=extend_schema(
        operation_id="images_list",
        summary="The collection, newest first",
        parameters=[ImageListQuerySerializer],
        tags=["images"],
    )
)
class ImageListView(generics.ListAPIView):
    authentication_classes = API_AUTHENTICATION
    throttle_classes = [UploadThrottle]
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = ImageSerializer
    pagination_class = ImagePagination

    def get_permissions(self):
        """Anyone may read the collection; only staff may add to it."""
        return [AllowAny()] if self.request.method in SAFE_METHODS else [IsStaff()]

    def get_queryset(self):
        query = ImageListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.images_list(label=query.validated_data.get("label"))

    @extend_schema(
        operation_id="images_create",
        summary="Add an image to the collection (it becomes searchable once its processing job has run)",
        request={"multipart/form-data": ImageUploadSerializer},
        responses={
            201: OpenApiResponse(ImageSerializer, description="Added; a processing job makes it searchable."),
            200: OpenApiResponse(ImageSerializer, description="An exact duplicate: the image already stored."),
            **error_responses(400, 401, 403, 413, 415, 429),
        },
        tags=["images"],
    )
    def post(self, request: Request) -> Response:
        upload = ImageUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file = upload.validated_data["image"]
        image, created = image_ingest(
            data=file.read(),
            label=upload.validated_data.get("label"),
            original_name=file.name or "",
            source="api",
            uploaded_by=request.user,
        )
        body = ImageSerializer(image, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema_view(
    get=extend_schema(
        operation_id="images_retrieve",
        summary="One image and its metadata",
        responses={200: ImageSerializer, **error_responses(404)},
        tags=["images"],
    )
)
class ImageDetailView(generics.RetrieveAPIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [AllowAny]
    serializer_class = ImageSerializer
    queryset = Image.objects.all()
