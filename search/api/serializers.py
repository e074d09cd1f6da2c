"""Request validation and response shapes of the API (the response serializers also document the schema)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from rest_framework import serializers

from search import metadata_rules
from search.filters import FilterError, parse_filters
from search.labels import INPUT_PATTERN, InvalidLabel, normalize_label
from search.limits import MAX_K
from search.models import Image, Job, ModelVersion
from search.regions import InvalidRegion, parse_region
from search.services.feedback import FeedbackError, parse_ids

from .exceptions import PayloadTooLarge
from .export_format import format_field

# -- requests ------------------------------------------------------------------------------------------


_LABEL_PATTERN_MESSAGE = "Not a usable rock type: use letters, digits, spaces, '.', '_' or '-'."


def _label_field(help_text: str) -> serializers.CharField:
    """A rock-type input; the pattern (published in the schema) is checked first, then the one label rule."""
    return serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        validators=[RegexValidator(INPUT_PATTERN, message=_LABEL_PATTERN_MESSAGE)],
        help_text=f"{help_text} Matched case-insensitively, surrounding spaces ignored.",
    )


class _LabelMixin:
    def validate_label(self, value: str | None) -> str | None:
        try:
            return normalize_label(value)
        except InvalidLabel as exc:
            raise serializers.ValidationError(str(exc)) from None


def _checked_upload(upload):
    limit = settings.GEOSIM_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise PayloadTooLarge(limit)
    return upload


class FilterFieldsMixin(serializers.Serializer):
    """The metadata filters (search/filters.py), combined with AND; ``validated_data["filters"]`` holds them."""

    collection = serializers.CharField(required=False, allow_blank=True, help_text="Only this collection.")
    tag = serializers.CharField(required=False, allow_blank=True, help_text="Only images with this tag.")
    depth_min = serializers.CharField(required=False, allow_blank=True, help_text="Depth at least (m).")
    depth_max = serializers.CharField(required=False, allow_blank=True, help_text="Depth at most (m).")
    bbox = serializers.CharField(
        required=False, allow_blank=True, help_text="Location within min_lon,min_lat,max_lon,max_lat (degrees)."
    )

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        raw = {name: attrs.get(name) for name in ("label", "collection", "tag", "depth_min", "depth_max", "bbox")}
        try:
            attrs["filters"] = parse_filters(raw)
        except FilterError as exc:
            raise serializers.ValidationError({exc.param: [exc.message]}) from None
        return attrs


class SimilarQuerySerializer(_LabelMixin, FilterFieldsMixin, serializers.Serializer):
    format = format_field()
    k = serializers.IntegerField(
        min_value=1, max_value=MAX_K, default=5, required=False, help_text=f"Number of results, 1–{MAX_K}."
    )
    label = _label_field("Only images of this rock type.")


class ImageListQuerySerializer(_LabelMixin, FilterFieldsMixin, serializers.Serializer):
    format = format_field()
    label = _label_field("Only images of this rock type.")


class SearchRequestSerializer(SimilarQuerySerializer):
    image = serializers.FileField(
        required=False,
        help_text="The query image: JPEG, PNG, WebP, BMP, TIFF or GIF (first frame), at most GEOSIM_MAX_UPLOAD_BYTES. "
        "Optional when `positive` ids are given.",
    )
    region = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Search with this part of the image only: `x,y,w,h` in pixels of the uploaded image "
        "(after EXIF orientation), e.g. `120,40,200,200`.",
    )
    positive = serializers.CharField(
        required=False, allow_blank=True, help_text="Relevance feedback: ids of images to move towards, e.g. 12,40,7."
    )
    negative = serializers.CharField(
        required=False, allow_blank=True, help_text="Relevance feedback: ids of images to move away from."
    )

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        try:
            attrs["positive"] = parse_ids(attrs.get("positive"), "positive")
            attrs["negative"] = parse_ids(attrs.get("negative"), "negative")
        except FeedbackError as exc:
            raise serializers.ValidationError({exc.param: [exc.message]}) from None
        if attrs.get("region") and (attrs["positive"] or attrs["negative"]):
            raise serializers.ValidationError(
                {"region": ["A region searches part of the image alone: drop positive/negative."]}
            )
        if attrs.get("region") and attrs.get("image") is None:
            raise serializers.ValidationError({"region": ["A region needs the image it is a part of."]})
        if attrs.get("image") is None and not attrs["positive"]:
            raise serializers.ValidationError({"image": ["Send an image, or positive image ids, to search with."]})
        return attrs

    def validate_image(self, upload):
        return _checked_upload(upload)

    def validate_region(self, value: str):
        try:
            return parse_region(value)
        except InvalidRegion as exc:
            raise serializers.ValidationError(str(exc)) from None


class TrainRequestSerializer(serializers.Serializer):
    epochs = serializers.IntegerField(
        required=False, min_value=1, max_value=500, help_text="Training epochs (default: the training recipe's)."
    )
    name = serializers.CharField(required=False, max_length=100, help_text="Name of the new model version.")
    activate = serializers.BooleanField(
        required=False, default=False, help_text="Switch searches to the new model once it is trained."
    )


class ImageUploadSerializer(_LabelMixin, serializers.Serializer):
    image = serializers.FileField(help_text="JPEG, PNG, WebP, BMP, TIFF or GIF (first frame).")
    label = _label_field("Rock type, e.g. gneiss (optional).")

    def validate_image(self, upload):
        return _checked_upload(upload)


# -- responses -----------------------------------------------------------------------------------------


class _AbsoluteUrlMixin:
    def _absolute(self, url: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class ImageSerializer(_AbsoluteUrlMixin, serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField(help_text="The original file.")
    thumbnail_url = serializers.SerializerMethodField(help_text="A WebP thumbnail; null for small images.")
    display_url = serializers.SerializerMethodField(help_text="The thumbnail if there is one, else the original.")

    class Meta:
        model = Image
        fields = [
            "id",
            "label",
            "width",
            "height",
            "format",
            "byte_size",
            "sha256",
            "source",
            "original_name",
            "sample_id",
            "collection",
            "latitude",
            "longitude",
            "depth_m",
            "tags",
            "description",
            "created_at",
            "image_url",
            "thumbnail_url",
            "display_url",
        ]
        read_only_fields = fields

    def get_image_url(self, image: Image) -> str:
        return self._absolute(image.file.url)

    def get_thumbnail_url(self, image: Image) -> str | None:
        return self._absolute(image.thumbnail.url) if image.thumbnail else None

    def get_display_url(self, image: Image) -> str:
        return self._absolute(image.display_url)


class ImageUploadAnswerSerializer(ImageSerializer):
    near_duplicates = serializers.ListField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text=(
            "Ids of collection images this one is a near-duplicate of (re-encoded, resized, slightly cropped or "
            "recoloured copies; see docs/CURATION.md); empty when none."
        ),
    )

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "near_duplicates"]
        read_only_fields = fields


class DuplicateMemberSerializer(_AbsoluteUrlMixin, serializers.Serializer):
    id = serializers.IntegerField(source="image.id")
    label = serializers.CharField(source="image.label", allow_null=True)
    sample_id = serializers.CharField(source="image.sample_id")
    original_name = serializers.CharField(source="image.original_name")
    width = serializers.IntegerField(source="image.width")
    height = serializers.IntegerField(source="image.height")
    byte_size = serializers.IntegerField(source="image.byte_size")
    display_url = serializers.SerializerMethodField(help_text="The thumbnail if there is one, else the original.")
    correlation = serializers.FloatField(help_text="Its highest pixel-fingerprint correlation with another member.")
    cosine = serializers.FloatField(help_text="The embedding cosine with that member.")

    def get_display_url(self, member) -> str:
        return self._absolute(member.image.display_url)


class DuplicateGroupSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    resolution = serializers.CharField(help_text="Empty while open; keep_one, keep_all or delete_selected.")
    job = serializers.IntegerField(source="job_id", allow_null=True, help_text="The duplicates job that found it.")
    created_at = serializers.DateTimeField()
    images = DuplicateMemberSerializer(source="members.all", many=True)


class DuplicateResolveSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=["keep_one", "keep_all", "delete_selected"],
        help_text="keep_one: keep `keep`, delete the rest; keep_all: not duplicates; delete_selected: delete `delete`.",
    )
    keep = serializers.IntegerField(required=False, help_text="keep_one: the image to keep.")
    delete = serializers.ListField(
        child=serializers.IntegerField(), required=False, help_text="delete_selected: the images to delete."
    )


class ImageMetadataSerializer(_LabelMixin, serializers.ModelSerializer):
    """PATCH /api/v1/images/<id>/: the sample metadata and the rock type (rules: search/metadata_rules.py)."""

    tags = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text=f"Replaces the image's tags: up to {metadata_rules.TAGS_MAX}, each up to {metadata_rules.TAG_MAX} "
        "characters.",
    )
    label = _label_field("Rock type.")

    class Meta:
        model = Image
        fields = ["label", "sample_id", "collection", "latitude", "longitude", "depth_m", "tags", "description"]
        extra_kwargs = {"sample_id": {"validators": []}}  # uniqueness checked below, with a clearer message

    def validate_tags(self, value: list[str]) -> list[str]:
        try:
            return metadata_rules.normalize_tags(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def validate_sample_id(self, value: str) -> str:
        value = value.strip()
        taken = Image.objects.filter(sample_id=value).exclude(pk=getattr(self.instance, "pk", None))
        if value and taken.exists():
            raise serializers.ValidationError(f"Sample id {value!r} is already used by image #{taken.first().pk}.")
        return value

    def validate(self, attrs: dict) -> dict:
        latitude = attrs.get("latitude", getattr(self.instance, "latitude", None))
        longitude = attrs.get("longitude", getattr(self.instance, "longitude", None))
        try:
            metadata_rules.check_location_pair(latitude, longitude)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"latitude": exc.messages}) from None
        return attrs


class SearchHitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    score = serializers.FloatField(help_text="Cosine similarity, higher is closer; results are sorted by it.")
    similarity = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        help_text=(
            "Calibrated probability that the result shows the same rock type as the query, from the model's "
            "calibration fitted on held-out images (non-decreasing in the score). Models without a "
            "calibration report the score clipped to [0, 1]."
        ),
    )
    label = serializers.CharField(allow_null=True)
    image_url = serializers.URLField()
    match_box = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=4,
        max_length=4,
        required=False,
        help_text="For a result larger than the model's input: `[x, y, w, h]`, in pixels of the result "
        "image, of the part that matches the query best.",
    )


class SearchAnswerSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
    predicted_label = serializers.CharField(
        allow_null=True, help_text="Rock type by a similarity-weighted vote of the nearest neighbours."
    )
    vote = serializers.DictField(
        child=serializers.FloatField(), help_text="Rock type → share of the neighbours' similarity (sums to 1)."
    )
    model_version = serializers.CharField()
    index_version = serializers.IntegerField()
    took_ms = serializers.FloatField()


class ModelVersionSerializer(serializers.ModelSerializer):
    created = serializers.DateTimeField(source="created_at", read_only=True)
    metrics = serializers.JSONField(
        read_only=True,
        help_text="`heldout`: P@1, P@5, MAP@R, R-precision on a held-out split; `active_on_heldout`: the "
        "model active when this one was trained, on the same split; `heldout_images`; `split`.",
    )

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "is_active", "embedding_dim", "metrics", "created"]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "progress",
            "done",
            "total",
            "error",
            "result",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class JobRefSerializer(serializers.Serializer):
    job = serializers.IntegerField(help_text="The job's id; follow it at status_url.")
    status_url = serializers.URLField()


class _ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField(help_text="Machine-readable, e.g. invalid, invalid_image, not_found, throttled.")
    message = serializers.CharField(help_text="Human-readable.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per input field, what is wrong with it (validation errors only).",
    )


class ErrorSerializer(serializers.Serializer):
    error = _ErrorDetailSerializer()
