"""Background work: start an index rebuild, follow jobs (staff or staff token)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from search.models import Job
from search.services.indexing import reindex_request

from ..permissions import API_AUTHENTICATION, IsStaff
from ..schema import error_responses
from ..serializers import JobRefSerializer, JobSerializer


def job_accepted(request: Request, job: Job) -> Response:
    """202 with the job's id and the URL to follow it at: the answer of every endpoint that starts a job."""
    status_url = request.build_absolute_uri(reverse("api:job-detail", args=[job.pk]))
    return Response({"job": job.pk, "status_url": status_url}, status=status.HTTP_202_ACCEPTED)


class StaffJobStartView(APIView):
    """Base of the endpoints that start background work: staff users or staff tokens only."""

    authentication_classes = API_AUTHENTICATION
    permission_classes = [IsStaff]


class IndexRebuildView(StaffJobStartView):

    @extend_schema(
        operation_id="index_rebuild",
        summary="Rebuild the search index (embedding whatever is not embedded yet)",
        description="Joins a rebuild that is already pending or running instead of starting a second one.",
        request=None,
        responses={
            202: OpenApiResponse(JobRefSerializer, description="The rebuild job."),
            **error_responses(401, 403, 503),
        },
        tags=["jobs"],
    )
    def post(self, request: Request) -> Response:
        return job_accepted(request, reindex_request(created_by=request.user))


_JOB_ERRORS = error_responses(401, 403)


@extend_schema_view(
    get=extend_schema(
        operation_id="jobs_list",
        summary="Background jobs, newest first",
        responses={200: JobSerializer(many=True), **_JOB_ERRORS, **error_responses(400, 404)},
        tags=["jobs"],
    )
)
class JobListView(generics.ListAPIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [IsStaff]
    serializer_class = JobSerializer
    queryset = Job.objects.order_by("-created_at", "-id")


@extend_schema_view(
    get=extend_schema(
        operation_id="jobs_retrieve",
        summary="One job's status and progress",
        responses={200: JobSerializer, **_JOB_ERRORS, **error_responses(404)},
        tags=["jobs"],
    )
)
class JobDetailView(generics.RetrieveAPIView):
    authentication_classes = API_AUTHENTICATION
    permission_classes = [IsStaff]
    serializer_class = JobSerializer
    queryset = Job.objects.all()
