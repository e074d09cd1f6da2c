"""GeoSim's data: images, model versions, stored embeddings, index versions and jobs."""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from search import metadata_rules as rules


class Image(models.Model):
    """One image of the collection, stored once under a content-addressed path."""

    file = models.FileField(max_length=255)
    sha256 = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=64, null=True, blank=True, db_index=True, help_text="Rock type")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=16)
    byte_size = models.PositiveIntegerField()
    thumbnail = models.FileField(max_length=255, blank=True, help_text="Empty when the original is small enough")
    original_name = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=255, blank=True, help_text="Collection or import this image came from")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Sample metadata (rules in search/metadata_rules.py): what a geology lab records about a specimen.
    sample_id = models.CharField(
        max_length=rules.SAMPLE_ID_MAX, blank=True, default="", help_text="The lab's identifier, unique when set"
    )
    collection = models.CharField(
        max_length=rules.COLLECTION_MAX, blank=True, default="", db_index=True, help_text="Collection, well or site"
    )
    latitude = models.FloatField(null=True, blank=True, validators=[rules.validate_latitude], help_text="WGS84 °")
    longitude = models.FloatField(null=True, blank=True, validators=[rules.validate_longitude], help_text="WGS84 °")
    depth_m = models.FloatField(
        null=True, blank=True, db_index=True, validators=[rules.validate_depth], help_text="Metres below the surface"
    )
    tags = models.JSONField(default=list, blank=True, validators=[rules.validate_tags])
    description = models.TextField(max_length=rules.DESCRIPTION_MAX, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["sample_id"], condition=~Q(sample_id=""), name="unique_sample_id_when_set")
        ]
        indexes = [models.Index(fields=["latitude", "longitude"], name="image_location")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.label or 'unlabelled'} {self.original_name}"

    def clean(self) -> None:
        try:
            rules.check_location_pair(self.latitude, self.longitude)
        except ValidationError as exc:
            raise ValidationError({"latitude": exc.messages}) from None

    @property
    def display_url(self) -> str:
        """The URL to show: the thumbnail for large images, else the original."""
        return (self.thumbnail or self.file).url


class ModelVersion(models.Model):
    """A trained embedding model; exactly one is active and serves searches."""

    name = models.CharField(max_length=100, unique=True)
    checkpoint = models.CharField(max_length=500, help_text="Path of the checkpoint file")
    checkpoint_sha256 = models.CharField(max_length=64)
    embedding_dim = models.PositiveSmallIntegerField()
    metrics = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_model")
        ]

    def __str__(self) -> str:
        return self.name


class Embedding(models.Model):
    """An image's vector under one model version, kept so an index can be rebuilt without the CNN."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="embeddings")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="embeddings")
    vector = models.BinaryField(help_text="float32, little-endian")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "model_version"], name="one_embedding_per_model")]

    def __str__(self) -> str:
        return f"embedding of image {self.image_id} under model {self.model_version_id}"

    def as_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.vector), dtype="<f4")


class Job(models.Model):
    """A unit of background work with visible status and progress."""

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        PROCESS = "process", "Process new images"
        REMOVE = "remove", "Remove deleted images"
        REINDEX = "reindex", "Rebuild index"
        ACTIVATE_MODEL = "activate_model", "Activate model"
        PROJECTION = "projection", "Embedding projection"
        TRAIN_MODEL = "train_model", "Train model"
        COMPACT_INDEX = "compact_index", "Compact index"
        DUPLICATES = "duplicates", "Find near-duplicates"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    progress = models.FloatField(default=0.0, help_text="0–1")
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from its worker")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED}


class IndexVersion(models.Model):
    """A saved FAISS index; the active one answers searches in every process."""

    version = models.PositiveIntegerField(unique=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="index_versions")
    path = models.CharField(max_length=500, help_text="Directory holding index.faiss and manifest.json")
    kind = models.CharField(max_length=32)
    vector_count = models.PositiveIntegerField(help_text="Searchable vectors: the base and its segments")
    segments = models.PositiveIntegerField(
        default=0, help_text="Segments (uploads, deletions) saved after the base; the first this many in its manifest"
    )
    recall_at_10 = models.FloatField(null=True, blank=True, help_text="Against exact search, for approximate kinds")
    labels_changed = models.PositiveIntegerField(
        default=0, help_text="Counts rock-type edits while live, so every process drops its cached label ids"
    )
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_index")
        ]

    def __str__(self) -> str:
        return f"index v{self.version} ({self.vector_count} vectors, {self.kind}, {self.segments} segments)"


class ImageFingerprint(models.Model):
    """An image's pixel fingerprint (search.imaging.pixel_fingerprint), kept for near-duplicate checks.

    Its own row with its own id (not the image's), so a process can load the new ones incrementally.
    """

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="fingerprint")
    vector = models.BinaryField(help_text="float16, little-endian, unit length")

    def __str__(self) -> str:
        return f"fingerprint of image {self.image_id}"


class DuplicateGroup(models.Model):
    """Images a duplicates job found to be near-copies of one another, and what a curator decided."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    class Resolution(models.TextChoices):
        KEEP_ONE = "keep_one", "Kept one, deleted the others"
        KEEP_ALL = "keep_all", "Not duplicates: kept all"
        DELETE_SELECTED = "delete_selected", "Deleted the selected ones"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    images = models.ManyToManyField(Image, through="DuplicateMember", related_name="duplicate_groups")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicate_groups")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"duplicate group #{self.pk} ({self.status})"


class DuplicateMember(models.Model):
    group = models.ForeignKey(DuplicateGroup, on_delete=models.CASCADE, related_name="members")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    correlation = models.FloatField(help_text="Its highest pixel correlation with another member")
    cosine = models.FloatField(help_text="Its embedding cosine with that member")

    class Meta:
        ordering = ["group", "image"]
        constraints = [models.UniqueConstraint(fields=["group", "image"], name="one_membership_per_group")]

    def __str__(self) -> str:
        return f"image {self.image_id} in duplicate group {self.group_id}"


class DistinctPair(models.Model):
    """Two images a curator reviewed and kept as not duplicates: no duplicates job proposes the pair again."""

    first = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["first", "second"], name="one_decision_per_pair"),
            models.CheckConstraint(condition=Q(first__lt=models.F("second")), name="pair_in_id_order"),
        ]

    def __str__(self) -> str:
        return f"images {self.first_id} and {self.second_id}: not duplicates"
