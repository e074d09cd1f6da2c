"""Forms: the admin upload page and the public search page."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from search import metadata_rules
from search.labels import LABEL_MAX_LENGTH, InvalidLabel, normalize_label
from search.limits import MAX_K
from search.models import Image
from search.regions import InvalidRegion, parse_region

DEFAULT_K = 10


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files at once and returns them as a list.

    Empty files pass the form: the ingestion service rejects them with its reason, per file, like
    every other bad file, instead of the whole upload failing on one of them.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)] if data else []


class BulkUploadForm(forms.Form):
    files = MultipleFileField(required=False, help_text="One or more image files.")
    archive = forms.FileField(required=False, help_text="Or one .zip/.tar/.tar.gz/.tar.xz of class-per-folder images.")
    label = forms.CharField(
        required=False,
        max_length=LABEL_MAX_LENGTH,
        help_text="Rock type for every image (default: the archive's folder names).",
    )

    def __init__(self, *args, oversized_files: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Files the upload handler dropped for their size: chosen, so reported, not "nothing chosen".
        self.oversized_files = oversized_files

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("files") and not cleaned.get("archive") and not self.oversized_files:
            raise forms.ValidationError("Choose image files or an archive to upload.")
        return cleaned


class SearchForm(forms.Form):
    """The public search form: an uploaded image or a collection image id, K, and an optional rock type."""

    image = forms.FileField(required=False, widget=forms.ClearableFileInput(attrs={"accept": "image/*"}))
    k = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_K,
        error_messages={
            "invalid": f"K must be a whole number between 1 and {MAX_K}.",
            "min_value": f"K must be between 1 and {MAX_K}.",
            "max_value": f"K must be between 1 and {MAX_K}.",
        },
    )
    label = forms.CharField(required=False, strip=False)
    region = forms.CharField(
        required=False, max_length=100, help_text="x,y,w,h in pixels of the query image: search only that part."
    )
    # The results page's query, so K and the rock type can change without choosing the file again:
    # a signed token for an upload (search.query_tokens), or the id of a collection image.
    query = forms.CharField(required=False, widget=forms.HiddenInput)
    query_image = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean_k(self) -> int:
        return self.cleaned_data.get("k") or DEFAULT_K

    def clean_region(self):
        try:
            return parse_region(self.cleaned_data.get("region"))
        except InvalidRegion as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_label(self) -> str:
        return _cleaned_label(self.cleaned_data.get("label"))


def _cleaned_label(value: str | None) -> str:
    try:
        return normalize_label(value) or ""
    except InvalidLabel as exc:
        raise forms.ValidationError(str(exc)) from None


class ModelVersionRegisterForm(forms.Form):
    """The admin's "add model version": a checkpoint file uploaded, or one already on the server."""

    checkpoint = forms.FileField(
        required=False, help_text="A checkpoint written by `python -m training.train` (a .pt file)."
    )
    path = forms.CharField(
        required=False,
        max_length=500,
        label="or path on the server",
        help_text="A checkpoint file under GEOSIM_DATA_DIR, e.g. models/lab.pt (relative to it) or an absolute path.",
    )
    name = forms.CharField(required=False, max_length=100, help_text="Default: the file name and its hash.")
    activate = forms.BooleanField(
        required=False, help_text="Then switch searches to it (re-embeds every image in the background)."
    )

    def clean(self):
        data = super().clean()
        if bool(data.get("checkpoint")) == bool((data.get("path") or "").strip()):
            raise forms.ValidationError("Upload a checkpoint file or give the path of one on the server (not both).")
        return data


class TrainModelForm(forms.Form):
    """The admin's "Train a model" button: optional epochs, name and activation."""

    epochs = forms.IntegerField(required=False, min_value=1, max_value=500)
    name = forms.CharField(required=False, max_length=100)
    activate = forms.BooleanField(required=False)


class TagsField(forms.CharField):
    """Tags typed as ``granite; core 3; weathered`` (';'-separated), stored as a normalised list."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return f"{metadata_rules.TAG_SEPARATOR} ".join(value)
        return value

    def to_python(self, value):
        try:
            return metadata_rules.normalize_tags(value or "")
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None


class ImageAdminForm(forms.ModelForm):
    tags = TagsField(required=False, help_text="Separated by ';', e.g. core; weathered; thin section")

    class Meta:
        model = Image
        fields = ["label", "sample_id", "collection", "latitude", "longitude", "depth_m", "tags", "description"]


class MetadataImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV (UTF-8) with a header; rows name their image by sha256, sample_id or original_name. "
        "Value columns: label, sample_id, collection, latitude, longitude, depth_m, tags (';'-separated), "
        "description. An empty cell leaves the field as it is."
    )
    dry_run = forms.BooleanField(required=False, help_text="Check and report only; change nothing.")
    skip_bad_rows = forms.BooleanField(
        required=False, help_text="Apply the good rows even if others have problems (otherwise nothing changes)."
    )
