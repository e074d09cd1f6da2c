"""Admin: browse and upload images, follow jobs, manage model and index versions."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from search.access import may_curate
from search.admin_uploads import (
    ARCHIVE_FIELD,
    install_bounded_handlers,
    source_files,
    too_large_reason,
)
from search.archives import ArchiveRejected
from search.forms import BulkUploadForm, ImageAdminForm, MetadataImportForm
from search.imaging import ImageRejected
from search.limits import MULTIPART_SLACK_BYTES, declared_body_bytes
from search.models import Embedding, Image, IndexVersion, Job, ModelVersion
from search.services.archive_import import archive_import_request, archive_store
from search.services.indexing import model_version_activate, reindex_request
from search.services.ingestion import images_import
from search.services.metadata import MetadataFileRejected, metadata_import_csv
from search.stored_files import StorageFailed

admin.site.site_header = "GeoSim administration"
admin.site.site_title = "GeoSim admin"


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    form = ImageAdminForm
    list_display = ("preview", "id", "label", "sample_id", "collection", "depth_m", "format", "source", "created_at")
    list_display_links = ("preview", "id")
    list_filter = ("label", "collection", "format", "source")
    search_fields = ("sha256", "original_name", "source", "label", "sample_id", "collection", "description")
    readonly_fields = (
        "large_preview",
        "file",
        "thumbnail",
        "sha256",
        "width",
        "height",
        "format",
        "byte_size",
        "uploaded_by",
        "created_at",
    )
    fields = (
        "large_preview",
        "label",
        "sample_id",
        "collection",
        ("latitude", "longitude"),
        "depth_m",
        "tags",
        "description",
        "original_name",
        "source",
        *readonly_fields[1:],
    )
    list_per_page = 100
    change_list_template = "admin/search/image/change_list.html"

    @admin.display(description="image")
    def preview(self, obj: Image) -> str:
        return format_html(
            '<img src="{}" width="56" height="56" style="image-rendering:pixelated" alt="">', obj.display_url
        )

    @admin.display(description="preview")
    def large_preview(self, obj: Image) -> str:
        return format_html('<img src="{}" width="224" style="image-rendering:pixelated" alt="">', obj.display_url)

    def has_add_permission(self, request) -> bool:
        return False  # images are added through the upload page, which validates and deduplicates them

    def get_urls(self):
        # CSRF is checked by upload_view, once bounded_upload_view has put the upload handlers in place
        # (checking it reads the form, and so the whole body).
        bounded = self.admin_site.admin_view(csrf_exempt(self.bounded_upload_view))
        upload = path("upload/", bounded, name="search_image_upload")
        metadata = path(
            "metadata/", self.admin_site.admin_view(self.metadata_view), name="search_image_import_metadata"
        )
        return [upload, metadata, *super().get_urls()]

    def metadata_view(self, request):
        """Import a metadata CSV (same service and checks as ``manage.py import_metadata``)."""
        if not self.has_change_permission(request):
            return redirect("admin:index")
        form = MetadataImportForm(request.POST, request.FILES) if request.method == "POST" else MetadataImportForm()
        report = None
        if request.method == "POST" and form.is_valid():
            try:
                report = metadata_import_csv(
                    form.cleaned_data["file"].read(),
                    dry_run=form.cleaned_data["dry_run"],
                    skip_bad_rows=form.cleaned_data["skip_bad_rows"],
                )
            except MetadataFileRejected as exc:
                form.add_error("file", str(exc))
            else:
                if report.applied and not report.problems:
                    messages.success(request, f"Metadata: {report.line()}.")
                    return redirect(reverse("admin:search_image_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "report": report,
            "opts": self.model._meta,
            "title": "Import sample metadata (CSV)",
        }
        return render(request, "admin/search/image/import_metadata.html", context)

    def bounded_upload_view(self, request):
        """Refuse an oversized body unread, and bound each file, before anything reads the body."""
        if not may_curate(request.user):
            return redirect("admin:index")
        if request.method == "POST":
            limit = settings.GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES
            if declared_body_bytes(request) > limit + MULTIPART_SLACK_BYTES:
                error = (
                    f"The upload is larger than the {limit:,}-byte limit for one upload here "
                    "(GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES); import large collections with `manage.py import_images`."
                )
                return self._upload_page(request, BulkUploadForm(), error=error, status=413)
            request.geosim_upload_bound = install_bounded_handlers(request)
        return csrf_protect(self.upload_view)(request)

    def upload_view(self, request):
        """Upload several files or one archive; same service and validation as the CLI import."""
        if request.method != "POST":
            return self._upload_page(request, BulkUploadForm())
        data, files = request.POST, request.FILES  # parses the body, through the bounding handler
        bound = getattr(request, "geosim_upload_bound", None)
        oversized = bound.oversized if bound else []
        too_big_archive = [name for field, name in oversized if field == ARCHIVE_FIELD]
        form = BulkUploadForm(data, files, oversized_files=len(oversized))
        if too_big_archive:
            limit = settings.GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES
            form.add_error("archive", f"{too_big_archive[0]}: {too_large_reason(limit)} for uploads here.")
        if form.is_valid():
            if form.cleaned_data.get("archive"):
                return self._archive_import_started(request, form.cleaned_data)
            try:
                oversized_images = [name for field, name in oversized if field != ARCHIVE_FIELD]
                summary = _import_uploads(form.cleaned_data, oversized_images, user=request.user)
            except (ArchiveRejected, ImageRejected, StorageFailed) as exc:
                form.add_error(None, str(exc))
            else:
                _upload_message(request, summary.line(), summary.rejected)
                return self._after_upload(request)
        return self._upload_page(request, form)

    def _upload_page(self, request, form, *, error: str | None = None, status: int = 200):
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "upload_error": error,
            "image_limit": settings.GEOSIM_MAX_UPLOAD_BYTES,
            "upload_limit": settings.GEOSIM_MAX_ARCHIVE_UPLOAD_BYTES,
            "opts": self.model._meta,
            "title": "Upload images",
        }
        return render(request, "admin/search/image/upload.html", context, status=status)

    def _archive_import_started(self, request, data: dict):
        """An archive is imported by a job (it may hold thousands of images): the page answers at once."""
        upload = data["archive"]
        try:
            stored_name = archive_store(upload)
        except OSError as exc:  # e.g. the disk is full: nothing was queued
            messages.error(request, f"Upload of {upload.name} could not be stored ({exc.strerror or exc}).")
            return redirect("admin:search_image_upload")
        job = archive_import_request(
            stored_name=stored_name,
            label=data.get("label") or None,
            source=upload.name,
            uploaded_by=request.user,
        )
        job.refresh_from_db()
        if job.status == Job.Status.SUCCEEDED:  # in-process jobs run inline (GEOSIM_IN_PROCESS_JOBS=inline)
            rejected = [tuple(line.split(": ", 1)) for line in job.result.get("rejected", [])]
            _upload_message(request, job.result["line"], rejected)
            return self._after_upload(request)
        if job.status == Job.Status.FAILED:
            messages.error(request, f"Upload of {upload.name}: {job.error}")
            return redirect("admin:search_image_upload")
        _job_started(request, job, f"Import of {upload.name}")
        return redirect("jobs")

    def _after_upload(self, request):
        # A staff user without the admin's view permission follows the processing on /jobs/.
        return redirect("admin:search_image_changelist" if self.has_view_permission(request) else "jobs")


def _upload_message(request, line: str, rejected) -> None:
    level = messages.WARNING if rejected else messages.SUCCESS
    shown = "; ".join(f"{name}: {reason}" for name, reason in list(rejected)[:10])
    messages.add_message(request, level, f"Upload: {line}." + (f" Rejected — {shown}" if shown else ""))


def _import_uploads(data: dict, oversized_images: list[str], *, user):
    """Image files uploaded together, read one at a time (archives go to an import job: _archive_import_started)."""
    files = source_files(data["files"], oversized_images)
    return images_import(files, label=data.get("label") or None, source="admin upload", uploaded_by=user)


class RebuildIndexMixin:
    """A "Rebuild index" button (POST) on the changelist; the job's progress shows on /jobs/."""

    def get_urls(self):
        name = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        rebuild = path("rebuild/", self.admin_site.admin_view(self.rebuild_view), name=f"{name}_rebuild")
        return [rebuild, *super().get_urls()]

    def rebuild_view(self, request):
        if request.method != "POST":
            return redirect(reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_changelist"))
        if not may_curate(request.user):
            raise PermissionDenied
        job = reindex_request(created_by=request.user)
        _job_started(request, job, "Index rebuild")
        return redirect("jobs")


def _job_started(request, job: Job, what: str) -> None:
    messages.success(
        request,
        format_html('{} started: job #{} — <a href="{}">follow its progress</a>.', what, job.pk, reverse("jobs")),
    )


@admin.register(Job)
class JobAdmin(RebuildIndexMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "progress_percent",
        "done",
        "total",
        "created_by",
        "created_at",
        "finished_at",
        "short_error",
    )
    list_filter = ("status", "kind")
    search_fields = ("error",)
    readonly_fields = [f.name for f in Job._meta.fields]

    @admin.display(description="progress")
    def progress_percent(self, obj: Job) -> str:
        return f"{obj.progress:.0%}"

    @admin.display(description="error")
    def short_error(self, obj: Job) -> str:
        return obj.error[:80]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "is_active", "embedding_dim", "metrics_summary", "created_at")
    list_filter = ("is_active",)
    readonly_fields = ("checkpoint_sha256", "embedding_dim", "metrics", "is_active", "created_at")
    actions = ["activate_model"]

    @admin.action(description="Activate this model (re-embeds every image, then switches searches over)")
    def activate_model(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model to activate.", messages.ERROR)
            return
        self._activate(request, queryset.get())

    def get_urls(self):
        activate = path(
            "<int:pk>/activate/", self.admin_site.admin_view(self.activate_view), name="search_modelversion_activate"
        )
        return [activate, *super().get_urls()]

    def activate_view(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        if request.method != "POST":
            return redirect(reverse("admin:search_modelversion_change", args=[pk]))
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        self._activate(request, version)
        return redirect("jobs")

    def _activate(self, request, version: ModelVersion) -> None:
        if version.is_active:
            self.message_user(request, f"{version} is already the active model.", messages.INFO)
            return
        _job_started(request, model_version_activate(version, created_by=request.user), f"Switching to {version}")

    @admin.display(description="metrics")
    def metrics_summary(self, obj: ModelVersion) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in obj.metrics.items() if isinstance(v, int | float))


@admin.register(IndexVersion)
class IndexVersionAdmin(RebuildIndexMixin, admin.ModelAdmin):
    list_display = ("version", "is_active", "kind", "vector_count", "recall_at_10", "model_version", "created_at")
    list_filter = ("is_active", "kind")
    readonly_fields = [f.name for f in IndexVersion._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # index versions are built by jobs ("Rebuild index"), never typed in


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin):
    list_display = ("id", "image", "model_version", "created_at")
    list_filter = ("model_version",)
    raw_id_fields = ("image",)
    readonly_fields = ("image", "model_version", "created_at")
    exclude = ("vector",)

    def has_add_permission(self, request) -> bool:
        return False  # vectors come from the model, through processing and rebuild jobs
