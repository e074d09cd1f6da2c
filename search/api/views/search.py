"""Similarity search: by an uploaded image, or by an image of the collection."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from search import engine
from search.services.export import ExportTooLarge, export_response, rows_from_answer
from search.services.feedback import search_with_feedback

from ..export_format import ExportNegotiation
from ..permissions import API_AUTHENTICATION
from ..schema import error_responses
from ..serializers import SearchAnswerSerializer, SearchRequestSerializer, SimilarQuerySerializer
from ..throttles import SearchThrottle


def _answer_response(request: Request, answer: engine.SearchAnswer, *, fmt: str = "json"):
    if fmt != "json":
        try:
            return export_response(
                rows_from_answer(answer), fmt=fmt, name="search-results", absolute_url=request.build_absolute_uri
            )
        except ExportTooLarge as exc:
            raise ValidationError({"format": [str(exc)]}) from None
    return Response(engine.answer_payload(answer, absolute_url=request.build_absolute_uri))


_EXPORT_RESPONSES = {
    (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="format=csv: the results as CSV."),
    (200, "application/zip"): OpenApiResponse(
        OpenApiTypes.BINARY, description="format=zip: the result images and images.csv."
    ),
}


class SearchView(APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]
    parser_classes = [MultiPartParser, FormParser]
    content_negotiation_class = ExportNegotiation

    @extend_schema(
        operation_id="search",
        summary="Find the images most similar to an uploaded image, refined by images marked positive/negative",
        request={"multipart/form-data": SearchRequestSerializer},
        responses={
            (200, "application/json"): SearchAnswerSerializer,
            **_EXPORT_RESPONSES,
            **error_responses(400, 413, 415, 429, 503),
        },
        tags=["search"],
    )
    def post(self, request: Request) -> Response:
        query = SearchRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        upload = params.get("image")
        data = upload.read() if upload is not None else None
        if params["positive"] or params["negative"]:
            answer = search_with_feedback(
                data=data,
                positive=params["positive"],
                negative=params["negative"],
                k=params["k"],
                label=params.get("label"),
                filters=params["filters"],
            )
        else:
            answer = engine.search_by_bytes(
                data, k=params["k"], label=params.get("label"), filters=params["filters"], region=params.get("region")
            )
        return _answer_response(request, answer, fmt=query.validated_data["format"])


class SimilarImagesView(APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]
    content_negotiation_class = ExportNegotiation

    @extend_schema(
        operation_id="images_similar",
        summary="The images most similar to an image of the collection (the image itself excluded)",
        parameters=[SimilarQuerySerializer],
        responses={
            (200, "application/json"): SearchAnswerSerializer,
            **_EXPORT_RESPONSES,
            **error_responses(400, 404, 422, 429, 503),
        },
        tags=["search"],
    )
    def get(self, request: Request, pk: int) -> Response:
        query = SimilarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        answer = engine.search_by_image(
            pk,
            k=query.validated_data["k"],
            label=query.validated_data.get("label"),
            filters=query.validated_data["filters"],
        )
        return _answer_response(request, answer, fmt=query.validated_data["format"])
