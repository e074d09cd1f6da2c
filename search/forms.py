"""Forms shared by the admin upload page and (later) the public pages."""

from __future__ import annotations

from django import forms


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files at once and returns them as a list."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)] if data else []


class BulkUploadForm(forms.Form):
    files = MultipleFileField(required=False, help_text="One or more image files.")
    archive = forms.FileField(required=False, help_text="Or one .zip/.tar/.tar.gz/.tar.xz of class-per-folder images.")
    label = forms.CharField(
        required=False, max_length=64, help_text="Rock type for every image (default: the archive's folder names)."
    )

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("files") and not cleaned.get("archive"):
            raise forms.ValidationError("Choose image files or an archive to upload.")
        return cleaned
