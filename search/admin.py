"""Admin: browse and upload images, follow jobs, manage model and index versions."""

from __future__ import annotations

import tempfile
from pathlib import Path

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
from search.forms import (
    BulkUploadForm,
    ImageAdminForm,
    MetadataImportForm,
    ModelVersionRegisterForm,
    TrainModelForm,
)
from search.imaging import ImageRejected
from search.limits import MULTIPART_SLACK_BYTES, declared_body_bytes
from search.models import Embedding, Image, IndexVersion, Job, ModelVersion
from search.services.archive_import import archive_import_request, archive_store
from search.services.duplicates import stored_near_duplicates
from search.services.indexing import model_version_activate, reindex_request
from search.services.ingestion import images_import
from search.services.metadata import MetadataFileRejected, metadata_import_csv
from search.services.model_training import TrainingRejected, training_request
from search.services.model_versions import ModelVersionRejected, model_version_register
from search.stored_files import StorageFailed
from training.checkpoint import CheckpointError

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
                _near_duplicates_message(request, stored_near_duplicates(summary.image_ids))
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


def _near_duplicates_message(request, found: dict[int, list[int]]) -> None:
    if not found:
        return
    shown = "; ".join(f"#{new} ~ " + ", ".join(f"#{i}" for i in old) for new, old in list(found.items())[:10])
    more = f" (and {len(found) - 10} more)" if len(found) > 10 else ""
    messages.warning(
        request,
        f"{len(found)} uploaded image(s) are near-duplicates of collection images: {shown}{more}. "
        "Review them on the Duplicates page after “Find near-duplicates”.",
    )


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
    list_display = ("name", "is_active", "embedding_dim", "heldout_metrics", "active_model_on_same_split", "created_at")
    list_filter = ("is_active",)
    readonly_fields = (
        "checkpoint",
        "checkpoint_sha256",
        "embedding_dim",
        "heldout_metrics",
        "active_model_on_same_split",
        "metrics",
        "is_active",
        "created_at",
    )
    fields = ("name", "description", *readonly_fields)
    actions = ["activate_model"]
    change_list_template = "admin/search/modelversion/change_list.html"

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
        train = path("train/", self.admin_site.admin_view(self.train_view), name="search_modelversion_train")
        return [activate, train, *super().get_urls()]

    def activate_view(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        if request.method != "POST":
            return redirect(reverse("admin:search_modelversion_change", args=[pk]))
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        self._activate(request, version)
        return redirect("jobs")

    def train_view(self, request):
        """The changelist's "Train a model" button: one training job on the collection's labelled images."""
        if request.method != "POST":
            return redirect(reverse("admin:search_modelversion_changelist"))
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = TrainModelForm(request.POST)
        if not form.is_valid():
            errors = " ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
            self.message_user(request, f"Cannot train: {errors}", messages.ERROR)
            return redirect(reverse("admin:search_modelversion_changelist"))
        try:
            job = training_request(**form.cleaned_data, created_by=request.user)
        except TrainingRejected as exc:
            self.message_user(request, f"Cannot train: {exc}", messages.ERROR)
            return redirect(reverse("admin:search_modelversion_changelist"))
        _job_started(request, job, f"Training of {job.params['name']}")
        return redirect("jobs")

    def add_view(self, request, form_url="", extra_context=None):
        """Register a checkpoint (uploaded, or a path under GEOSIM_DATA_DIR) through the same service as the CLI."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ModelVersionRegisterForm(request.POST, request.FILES) if request.method == "POST" else None
        if form is not None and form.is_valid():
            try:
                version = _register_checkpoint(form.cleaned_data)
            except (CheckpointError, ModelVersionRejected) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Registered model version “{version}”.", messages.SUCCESS)
                if form.cleaned_data["activate"] and not version.is_active:
                    self._activate(request, version)
                    return redirect("jobs")
                return redirect(reverse("admin:search_modelversion_change", args=[version.pk]))
        context = {
            **self.admin_site.each_context(request),
            "form": form or ModelVersionRegisterForm(),
            "opts": self.model._meta,
            "title": "Register a model version",
        }
        return render(request, "admin/search/modelversion/register.html", context, status=400 if form else 200)

    def _activate(self, request, version: ModelVersion) -> None:
        if version.is_active:
            self.message_user(request, f"{version} is already the active model.", messages.INFO)
            return
        _job_started(request, model_version_activate(version, created_by=request.user), f"Switching to {version}")

    @admin.display(description="held-out metrics")
    def heldout_metrics(self, obj: ModelVersion) -> str:
        return _metrics_line(obj.metrics.get("heldout") or {})

    @admin.display(description="active model on the same split")
    def active_model_on_same_split(self, obj: ModelVersion) -> str:
        other = obj.metrics.get("active_on_heldout")
        if not other:
            return "—"
        return f"{other.get('model', '?')}: {_metrics_line(other)}"


_METRIC_NAMES = {"p_at_1": "P@1", "p_at_5": "P@5", "map_at_r": "MAP@R", "r_precision": "R-prec"}


def _metrics_line(metrics: dict) -> str:
    parts = [
        f"{name} {metrics[key]:.3f}" for key, name in _METRIC_NAMES.items() if isinstance(metrics.get(key), int | float)
    ]
    return ", ".join(parts) or "—"


def _register_checkpoint(data: dict) -> ModelVersion:
    """Register the uploaded file, or the named server file (only under GEOSIM_DATA_DIR)."""
    name = data.get("name") or None
    upload = data.get("checkpoint")
    if upload:
        with tempfile.TemporaryDirectory() as folder:
            # Keep the uploaded file's stem for the default name, never its directories or odd characters.
            stem = "".join(c for c in Path(upload.name).stem if c.isalnum() or c in "-_.")[:80] or "checkpoint"
            temp = Path(folder) / f"{stem}.pt"
            with temp.open("wb") as handle:
                for chunk in upload.chunks():
                    handle.write(chunk)
            return model_version_register(temp, name=name)
    root = Path(settings.GEOSIM_DATA_DIR).resolve()
    candidate = (root / data["path"].strip()).resolve()
    if not candidate.is_relative_to(root):
        raise ModelVersionRejected(f"Only checkpoint files under GEOSIM_DATA_DIR ({root}) can be registered by path.")
    return model_version_register(candidate, name=name)


@admin.register(IndexVersion)
class IndexVersionAdmin(RebuildIndexMixin, admin.ModelAdmin):
    list_display = (
        "version",
        "is_active",
        "kind",
        "vector_count",
        "segments",
        "recall_at_10",
        "model_version",
        "created_at",
    )
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
