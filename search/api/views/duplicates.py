"""Near-duplicate groups: find, list the open ones, resolve one (staff or staff token); see services/duplicates.py."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from search.services.duplicates import ReviewRejected, UnknownGroup, duplicates_request, group_resolve, open_groups

from ..pagination import CheckedPageNumberPagination
from ..permissions import API_AUTHENTICATION, IsStaff
from ..schema import error_responses
from ..serializers import DuplicateGroupSerializer, DuplicateResolveSerializer, JobRefSerializer
from .jobs import StaffJobStartView, job_accepted


@extend_schema_view(
    get=extend_schema(
        operation_id="duplicates_list",
        summary="Open groups of near-duplicate images, oldest first",
        description=(
            "Groups found by the last duplicates job (start one with POST duplicates/find/ or on /duplicates/) "
            "that no curator has resolved yet. Pairs a curator kept as distinct are never proposed again."
        ),
        responses={200: DuplicateGroupSerializer(many=True), **error_responses(400, 401, 403, 404)},
        tags=["duplicates"],
    )
)
class DuplicateListView(generics.ListAPIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [IsStaff]
    serializer_class = DuplicateGroupSerializer
    pagination_class = CheckedPageNumberPagination

    def get_queryset(self):
        return open_groups()


class DuplicateFindView(StaffJobStartView):
    @extend_schema(
        operation_id="duplicates_find",
        summary="Start a duplicates job (joins one already pending or running)",
        request=None,
        responses={
            202: OpenApiResponse(JobRefSerializer, description="The duplicates job."),
            **error_responses(401, 403),
        },
        tags=["duplicates"],
    )
    def post(self, request: Request) -> Response:
        return job_accepted(request, duplicates_request(created_by=request.user))


class DuplicateResolveView(StaffJobStartView):
    @extend_schema(
        operation_id="duplicates_resolve",
        summary="Resolve an open group: keep one, keep all (not duplicates) or delete the selected images",
        request=DuplicateResolveSerializer,
        responses={200: DuplicateGroupSerializer, **error_responses(400, 401, 403, 404)},
        tags=["duplicates"],
    )
    def post(self, request: Request, pk: int) -> Response:
        decision = DuplicateResolveSerializer(data=request.data)
        decision.is_valid(raise_exception=True)
        try:
            group = group_resolve(pk, user=request.user, **decision.validated_data)
        except UnknownGroup as exc:
            raise NotFound(str(exc)) from None
        except ReviewRejected as exc:
            raise ValidationError({exc.field: [str(exc)]}) from None
        return Response(DuplicateGroupSerializer(group, context={"request": request}).data)
