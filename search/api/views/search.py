"""Similarity search: by an uploaded image, or by an image of the collection."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from search import engine

from ..permissions import API_AUTHENTICATION
from ..schema import error_responses
from ..serializers import SearchAnswerSerializer, SearchRequestSerializer, SimilarQuerySerializer
from ..throttles import SearchThrottle


def _answer_response(request: Request, answer: engine.SearchAnswer) -> Response:
    return Response(engine.answer_payload(answer, absolute_url=request.build_absolute_uri))


class SearchView(APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="search",
        summary="Find the images most similar to an uploaded image",
        request={"multipart/form-data": SearchRequestSerializer},
        responses={200: SearchAnswerSerializer, **error_responses(400, 413, 415, 429, 503)},
        tags=["search"],
    )
    def post(self, request: Request) -> Response:
        query = SearchRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        data = query.validated_data["image"].read()
        answer = engine.search_by_bytes(
            data,
            k=query.validated_data["k"],
            label=query.validated_data.get("label"),
            filters=query.validated_data["filters"],
            region=query.validated_data.get("region"),
        )
        return _answer_response(request, answer)


class SimilarImagesView(APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [AllowAny]
    throttle_classes = [SearchThrottle]

    @extend_schema(
        operation_id="images_similar",
        summary="The images most similar to an image of the collection (the image itself excluded)",
        parameters=[SimilarQuerySerializer],
        responses={200: SearchAnswerSerializer, **error_responses(400, 404, 422, 429, 503)},
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
        return _answer_response(request, answer)
