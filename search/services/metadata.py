"""Sample metadata: edit one image's, or import a CSV of many (CLI, admin form, ``import_images``).

A CSV row names its image by ``sha256``, ``sample_id`` or ``original_name`` (tried in that order; an
original name matches the stored name or, when that is unique, its last path component, so
``0FVDN.jpg`` finds ``gneiss/0FVDN.jpg``) and sets any of :data:`VALUE_COLUMNS`. An empty cell leaves
the field as it is; tags are ``;``-separated and replace the image's tags.

The whole file is checked before anything is written: unknown columns, bad values, rows that match
nothing (or more than one image), two rows for one image and sample ids already taken are reported
with their line numbers. A file with any problem changes nothing, unless ``skip_bad_rows`` is set:
then the good rows are applied and the bad ones reported. The writes happen in one transaction.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError
from django.db import transaction

from search import live_index
from search import metadata_rules as rules
from search.labels import InvalidLabel, normalize_label
from search.models import Image
from search.services.ingestion import ImportSummary, images_import_path

KEY_COLUMNS = ("sha256", "sample_id", "original_name")
VALUE_COLUMNS = ("label", "sample_id", "collection", "latitude", "longitude", "depth_m", "tags", "description")
METADATA_FIELDS = ("sample_id", "collection", "latitude", "longitude", "depth_m", "tags", "description")
_FLOAT_FIELDS = ("latitude", "longitude", "depth_m")
MAX_CSV_BYTES = 50 * 1024 * 1024


class MetadataFileRejected(ValueError):
    """The file cannot be read as a metadata CSV at all (not text, no header, too big)."""


@dataclass(frozen=True)
class RowProblem:
    line: int  # 1 is the header
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class MetadataImportReport:
    rows: int = 0
    updated: int = 0  # rows applied (or that would be, in a dry run)
    problems: list[RowProblem] = field(default_factory=list)
    applied: bool = False
    dry_run: bool = False

    @property
    def bad_rows(self) -> int:
        return len({p.line for p in self.problems if p.line > 1})

    def line(self) -> str:
        verb = "would update" if self.dry_run else ("updated" if self.applied else "changed nothing;")
        count = f" {self.updated} image(s)" if self.applied or self.dry_run else ""
        return f"{self.rows} row(s): {verb}{count}, {len(self.problems)} problem(s)"


def image_metadata_update(image: Image, values: dict) -> Image:
    """Set metadata fields (and ``label``) on one image after the model's own validation."""
    for name, value in values.items():
        setattr(image, name, value)
    image.full_clean(exclude=_not_metadata())
    image.save(update_fields=list(values))
    return image


def metadata_import_csv(
    data: bytes | str, *, dry_run: bool = False, skip_bad_rows: bool = False
) -> MetadataImportReport:
    """Check and (unless ``dry_run``, and only if clean or ``skip_bad_rows``) apply a metadata CSV."""
    text = _decode(data)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if not header:
        raise MetadataFileRejected("The file is empty: the first line must name the columns.")
    reader.fieldnames = header
    report = MetadataImportReport(dry_run=dry_run)
    known = set(KEY_COLUMNS) | set(VALUE_COLUMNS)
    unknown = [name for name in header if name not in known]
    if unknown:
        report.problems.append(
            RowProblem(1, f"unknown column(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        )
    if not set(header) & set(KEY_COLUMNS):
        raise MetadataFileRejected(f"No column names the images: add one of {', '.join(KEY_COLUMNS)}.")

    lookup = _ImageLookup()
    changes: dict[int, tuple[int, dict]] = {}  # image id → (line, values)
    for row in reader:
        report.rows += 1
        line = reader.line_num
        if None in row:
            report.problems.append(RowProblem(line, f"{len(row[None])} more cell(s) than the header has columns"))
            continue
        try:
            image_id = lookup.match(row)
            values = _row_values(row)
        except ValidationError as exc:
            report.problems.extend(RowProblem(line, message) for message in exc.messages)
            continue
        if image_id in changes:
            report.problems.append(RowProblem(line, f"the same image as line {changes[image_id][0]}"))
            continue
        changes[image_id] = (line, values)

    updates = _validated_updates(changes, lookup, report)
    report.problems.sort(key=lambda problem: problem.line)
    report.updated = len(updates)
    if dry_run or (report.problems and not skip_bad_rows):
        report.updated = len(updates) if dry_run else 0
        return report
    _apply(updates)
    report.applied = True
    return report


def images_import_path_with_metadata(path, **options) -> tuple[ImportSummary, MetadataImportReport | None]:
    """Import a folder or archive, then apply its root ``metadata.csv`` if it has one (all or nothing)."""
    summary = images_import_path(path, **options)
    if summary.metadata_csv is None:
        return summary, None
    try:
        report = metadata_import_csv(summary.metadata_csv)
    except MetadataFileRejected as exc:
        report = MetadataImportReport(problems=[RowProblem(1, str(exc))])
    return summary, report


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    if len(data) > MAX_CSV_BYTES:
        raise MetadataFileRejected(f"The file is larger than {MAX_CSV_BYTES // 2**20} MB.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MetadataFileRejected("The file is not UTF-8 text (save the spreadsheet as CSV UTF-8).") from None


class _ImageLookup:
    """The collection's keys, loaded once (a per-row query would make a 30k-row file take minutes)."""

    def __init__(self) -> None:
        rows = list(Image.objects.values_list("pk", "sha256", "sample_id", "original_name"))
        self.by_sha = {sha: pk for pk, sha, _, _ in rows}
        self.by_sample = {sample: pk for pk, _, sample, _ in rows if sample}
        self.sample_of = {pk: sample for pk, _, sample, _ in rows}
        self.by_name: dict[str, list[int]] = {}
        self.by_basename: dict[str, list[int]] = {}
        for pk, _, _, name in rows:
            if name:
                self.by_name.setdefault(name, []).append(pk)
                self.by_basename.setdefault(PurePosixPath(name).name, []).append(pk)

    def match(self, row: dict) -> int:
        sha = (row.get("sha256") or "").strip().lower()
        if sha:
            return self._one(self.by_sha.get(sha), f"no image has sha256 {sha}")
        sample = (row.get("sample_id") or "").strip()
        name = (row.get("original_name") or "").strip()
        if sample and sample in self.by_sample:
            return self.by_sample[sample]
        if name:
            found = self.by_name.get(name) or self.by_basename.get(PurePosixPath(name).name) or []
            if len(found) > 1:
                raise ValidationError(f"{len(found)} images are named {name!r}; name the image by sha256 instead")
            return self._one(found[0] if found else None, f"no image is named {name!r}")
        if sample:
            raise ValidationError(f"no image has sample_id {sample!r}")
        raise ValidationError("the row names no image (sha256, sample_id or original_name are all empty)")

    @staticmethod
    def _one(found: int | None, message: str) -> int:
        if found is None:
            raise ValidationError(message)
        return found


def _row_values(row: dict) -> dict:
    """The row's non-empty value cells, parsed (not yet range-checked); ValidationError on bad text."""
    values: dict = {}
    errors: list[str] = []
    for name in VALUE_COLUMNS:
        raw = (row.get(name) or "").strip()
        if not raw:
            continue
        try:
            if name in _FLOAT_FIELDS:
                values[name] = _parse_float(raw, name)
            elif name == "tags":
                values[name] = rules.normalize_tags(raw)
            elif name == "label":
                values[name] = normalize_label(raw)
            else:
                values[name] = raw
        except ValidationError as exc:
            errors.extend(f"{name}: {message}" for message in exc.messages)
        except InvalidLabel as exc:
            errors.append(f"{name}: {exc}")
    if errors:
        raise ValidationError(errors)
    return values


def _parse_float(raw: str, name: str) -> float:
    try:
        value = float(raw.replace(",", ".") if raw.count(",") == 1 and "." not in raw else raw)
    except ValueError:
        raise ValidationError(f"{raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValidationError(f"{raw!r} is not a finite number")
    return value


def _validated_updates(changes: dict[int, tuple[int, dict]], lookup: _ImageLookup, report) -> dict[int, dict]:
    """Range/length checks through the model's validators, and sample ids unique across the result."""
    images = Image.objects.in_bulk(list(changes))
    exclude = _not_metadata()
    updates: dict[int, dict] = {}
    final_samples = dict(lookup.sample_of)
    for image_id, (line, values) in changes.items():
        image = images[image_id]
        for name, value in values.items():
            setattr(image, name, value)
        try:
            image.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            report.problems.extend(
                RowProblem(line, f"{name}: {message}" if name != "__all__" else message)
                for name, messages in exc.message_dict.items()
                for message in messages
            )
            continue
        updates[image_id] = values
        if "sample_id" in values:
            final_samples[image_id] = values["sample_id"]
    holders: dict[str, list[int]] = {}
    for image_id, sample in final_samples.items():
        if sample:
            holders.setdefault(sample, []).append(image_id)
    for sample, ids in holders.items():
        if len(ids) > 1:
            for image_id in ids:
                if image_id in updates and "sample_id" in updates[image_id]:
                    line = changes[image_id][0]
                    report.problems.append(RowProblem(line, f"sample_id {sample!r} would be held by {len(ids)} images"))
                    updates.pop(image_id)
    return updates


def _apply(updates: dict[int, dict]) -> None:
    images = Image.objects.in_bulk(list(updates))
    by_fields: dict[tuple[str, ...], list[Image]] = {}
    for image_id, values in updates.items():
        image = images[image_id]
        for name, value in values.items():
            setattr(image, name, value)
        by_fields.setdefault(tuple(sorted(values)), []).append(image)
    with transaction.atomic():
        # Clear the sample ids that move first, so a swap between two images never trips the constraint.
        moving = [pk for pk, values in updates.items() if "sample_id" in values]
        Image.objects.filter(pk__in=moving).exclude(sample_id="").update(sample_id="")
        for fields, rows in by_fields.items():
            Image.objects.bulk_update(rows, list(fields), batch_size=1000)
        if any("label" in fields for fields in by_fields):
            live_index.labels_changed()  # bulk_update sends no post_save


def _not_metadata() -> list[str]:
    editable = {*METADATA_FIELDS, "label"}
    return [f.name for f in Image._meta.fields if f.name not in editable]
