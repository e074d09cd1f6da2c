"""Model versions: list them with their metrics (anyone), train one on the collection, activate one (staff)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from search import selectors
from search.models import ModelVersion
from search.services.indexing import model_version_activate
from search.services.model_training import training_request

from ..permissions import API_AUTHENTICATION
from ..schema import error_responses
from ..serializers import JobRefSerializer, ModelVersionSerializer, TrainRequestSerializer
from .jobs import StaffJobStartView, job_accepted


class ModelListView(APIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="models_list",
        summary="Model versions, newest first, with their held-out metrics",
        description=(
            "`metrics.heldout`: the model's P@1, P@5, MAP@R and R-precision on a held-out split; "
            "`metrics.active_on_heldout`: for a model trained by GeoSim, the model that was active then, "
            "scored on the same split."
        ),
        responses={200: ModelVersionSerializer(many=True)},
        tags=["models"],
    )
    def get(self, request: Request) -> Response:
        return Response(ModelVersionSerializer(selectors.model_versions(), many=True).data)


class ModelTrainView(StaffJobStartView):
    @extend_schema(
        operation_id="models_train",
        summary="Train a model on the collection's labelled images (rock types with at least 10 images)",
        description=(
            "Starts a training job; follow it at status_url (per-epoch progress and validation metrics in "
            "`result`). At the end the model is registered with its held-out metrics beside the active "
            "model's on the same split; with `activate` searches then switch to it."
        ),
        request=TrainRequestSerializer,
        responses={
            202: OpenApiResponse(JobRefSerializer, description="The training job."),
            **error_responses(400, 401, 403, 409),
        },
        tags=["models"],
    )
    def post(self, request: Request) -> Response:
        params = TrainRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        job = training_request(**params.validated_data, created_by=request.user)
        return job_accepted(request, job)


class ModelActivateView(StaffJobStartView):
    @extend_schema(
        operation_id="models_activate",
        summary="Switch searches to this model (re-embeds every image, then swaps the index in atomically)",
        description="The current model keeps answering until the new index is live. For the active model: a rebuild.",
        request=None,
        responses={
            202: OpenApiResponse(JobRefSerializer, description="The activation job."),
            **error_responses(401, 403, 404),
        },
        tags=["models"],
    )
    def post(self, request: Request, pk: int) -> Response:
        version = get_object_or_404(ModelVersion, pk=pk)
        return job_accepted(request, model_version_activate(version, created_by=request.user))
