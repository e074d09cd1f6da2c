"""Train a model on the collection's own labelled images: a TRAIN_MODEL job from request to registered version.

The job writes a folder of symlinks ``<label>/<image id>.<ext>`` (the layout ``training/`` reads) under
GEOSIM_DATA_DIR/training/, runs :func:`training.train.train` on it with per-epoch progress on the job row,
then scores the new model AND the active one on the split the training held out (the same images for
both), registers the checkpoint as a model version with both sets of metrics and, when asked, starts
switching searches to it (the usual re-embed + atomic swap). The folder is removed at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from search import embedder
from search.imaging import decode_image
from search.models import Image, Job, ModelVersion
from search.services.indexing import model_version_activate
from search.services.jobs import JobProgress, job_create
from search.services.model_versions import (
    model_version_ensure_active,
    model_version_register,
    retrieval_numbers,
)
from training.data import IMAGE_SUFFIXES
from training.evaluate import evaluate_folder
from training.inference import Embedder
from training.train import TrainConfig, train

logger = logging.getLogger(__name__)

MIN_IMAGES_PER_LABEL = 10
MAX_EPOCHS = 500
MAX_HELDOUT_FRACTION = 0.25  # of each rock type, for validation and for test (2 of 10 at the minimum)
_OPEN = (Job.Status.PENDING, Job.Status.RUNNING)


class TrainingRejected(ValueError):
    """A training run cannot start as asked; the message says why and what to do."""


class TrainingBusy(TrainingRejected):
    """Another training job is pending or running."""


def trainable_labels() -> dict[str, int]:
    """Rock types with at least MIN_IMAGES_PER_LABEL images → their image counts."""
    rows = (
        Image.objects.exclude(label=None)
        .exclude(label="")
        .values("label")
        .annotate(count=Count("id"))
        .filter(count__gte=MIN_IMAGES_PER_LABEL)
        .order_by("label")
    )
    return {row["label"]: row["count"] for row in rows}


def _check_labels() -> dict[str, int]:
    labels = trainable_labels()
    if len(labels) < 2:
        found = ", ".join(f"{name} ({count})" for name, count in labels.items()) or "none"
        raise TrainingRejected(
            f"Training needs at least 2 rock types with {MIN_IMAGES_PER_LABEL} or more labelled images each; "
            f"found {len(labels)}: {found}. Import labelled images (a class-per-folder tree) first."
        )
    return labels


def training_request(
    *, epochs: int | None = None, name: str | None = None, activate: bool = False, created_by=None
) -> Job:
    """Check that a training run can start, then create its job (raises TrainingRejected, nothing created).

    One training runs at a time: while one is pending or running, asking again is refused.
    """
    if epochs is not None and not 1 <= epochs <= MAX_EPOCHS:
        raise TrainingRejected(f"epochs must be between 1 and {MAX_EPOCHS}.")
    name = (name or "").strip() or f"trained-{timezone.now():%Y%m%d-%H%M%S}"
    if len(name) > 100:
        raise TrainingRejected("The model name must be at most 100 characters.")
    if ModelVersion.objects.filter(name=name).exists():
        raise TrainingRejected(f"A model version named {name!r} exists already; choose another name.")
    _check_labels()
    running = Job.objects.filter(kind=Job.Kind.TRAIN_MODEL, status__in=_OPEN).first()
    if running is not None:
        raise TrainingBusy(f"Training job #{running.pk} is {running.status}; wait for it to finish.")
    params = {"epochs": epochs, "name": name, "activate": bool(activate)}
    return job_create(kind=Job.Kind.TRAIN_MODEL, params=params, created_by=created_by)


def model_train(job: Job, progress: JobProgress) -> dict:
    """Handle a TRAIN_MODEL job: export, train, evaluate both models on the held-out split, register."""
    labels = _check_labels()
    # Epochs None: the training recipe chooses them (and the input geometry) from the collection.
    config = TrainConfig(epochs=job.params.get("epochs"))
    config.val_fraction, config.test_fraction = _heldout_fractions(config, min(labels.values()))
    workdir = Path(settings.GEOSIM_DATA_DIR) / "training" / f"job-{job.pk}"
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        data_dir = _export_labelled_images(workdir / "images", labels)
        progress.report(images=sum(labels.values()), labels=labels, note="Training started.")
        history: list[dict] = []

        def on_epoch(info: dict) -> None:
            if not history:
                progress.set_total(int(info["epochs"]) + 1)  # the epochs, then the evaluation of both models
            history.append(_epoch_row(info))
            progress.advance(1, force=True)
            progress.report(epochs=history, note=_epoch_note(history[-1]))

        with embedder.torch_threads(settings.GEOSIM_BUILD_THREADS):
            summary = train(data_dir, workdir / "model.pt", config, on_epoch=on_epoch)
            checkpoint = Path(summary.get("checkpoint") or workdir / "model.pt")
            progress.report(note="Evaluating the new and the active model on the held-out split.")
            metrics = _compare_on_heldout(checkpoint, data_dir)
        version = model_version_register(
            checkpoint,
            name=job.params["name"],
            description=f"Trained by job #{job.pk} on {sum(labels.values())} images of {len(labels)} rock types.",
            metrics=metrics,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    progress.advance(1, force=True)
    result = {
        "model_version_id": version.pk,
        "model_version": version.name,
        "metrics": metrics,
        "epochs": history,
        "note": _comparison_note(metrics),
    }
    if job.params.get("activate"):
        result["activation_job"] = model_version_activate(version, created_by=job.created_by).pk
    return result


def _heldout_fractions(config: TrainConfig, smallest_class: int) -> tuple[float, float]:
    """Validation and test shares that hold out at least 2 images of every rock type.

    Retrieval metrics need a second image of the class in the split; with the recipe's 10 % and 15 %,
    a rock type of 10 images would give 1 validation image, and the run would fail.
    """
    floor = min(2.0 / smallest_class + 1e-9, MAX_HELDOUT_FRACTION)
    return max(config.val_fraction, floor), max(config.test_fraction, floor)


def _export_labelled_images(root: Path, labels: dict[str, int]) -> Path:
    """The folder ``root/<label>/<id>.<ext>`` of the trainable images: symlinks, or decoded copies.

    A symlink costs nothing; a file the training reader cannot open (a GIF, or a storage without local
    paths) is written out once as PNG through the service's own decoding.
    """
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
    images = Image.objects.filter(label__in=list(labels)).only("pk", "label", "file").order_by("pk")
    for image in images.iterator(chunk_size=2000):
        suffix = Path(image.file.name).suffix.lower()
        target = root / image.label / f"{image.pk}{suffix}"
        try:
            source = Path(image.file.path)
        except NotImplementedError:  # a remote storage: no local path
            source = None
        if source is not None and suffix in IMAGE_SUFFIXES and source.is_file():
            os.symlink(source, target)
            continue
        try:
            with image.file.open("rb") as handle:
                picture = decode_image(handle.read(), max_pixels=settings.GEOSIM_MAX_PIXELS).image
            picture.save(target.with_suffix(".png"))
        except Exception as exc:  # one lost file must not stop the training
            logger.warning("Image %s left out of training: %s", image.pk, exc)
    return root


def _compare_on_heldout(checkpoint: Path, data_dir: Path) -> dict:
    """Score the new and the active model on the images the training held out (the same images for both)."""
    new = Embedder.from_checkpoint(checkpoint)
    keys = list((new.checkpoint.data if new.checkpoint else {}).get("test_keys") or [])
    if len(keys) < 2:
        raise TrainingRejected("The training held out fewer than 2 images; label more images per rock type.")
    new_scores = evaluate_folder(new, data_dir, keys=keys)
    active = model_version_ensure_active()
    active_scores = evaluate_folder(embedder.get_embedder(active), data_dir, keys=keys)
    return {
        "heldout": retrieval_numbers(new_scores),
        "active_on_heldout": {"model": active.name, "model_version_id": active.pk, **retrieval_numbers(active_scores)},
        "heldout_images": int(new_scores.get("images", len(keys))),
        "split": "the stratified split held out by the training job",
    }


def _epoch_row(info: dict) -> dict:
    row = {key: info[key] for key in ("epoch", "epochs", "loss", "seconds") if key in info}
    val = info.get("val")
    row["val"] = retrieval_numbers(val) if isinstance(val, dict) else val
    return row


def _epoch_note(row: dict) -> str:
    parts = [f"epoch {row.get('epoch')}/{row.get('epochs')}"]
    if isinstance(row.get("loss"), int | float):
        parts.append(f"loss {row['loss']:.4f}")
    val = row.get("val")
    if isinstance(val, dict) and val:
        parts.append("val " + " ".join(f"{_LABELS.get(k, k)} {v:.3f}" for k, v in val.items() if k in _SHOWN))
    return " · ".join(parts)


def _comparison_note(metrics: dict) -> str:
    new, old = metrics["heldout"], metrics["active_on_heldout"]
    return (
        f"held-out P@1 {new.get('p_at_1', 0):.3f} MAP@R {new.get('map_at_r', 0):.3f}; "
        f"active model {old['model']}: P@1 {old.get('p_at_1', 0):.3f} MAP@R {old.get('map_at_r', 0):.3f}"
    )


_SHOWN = ("p_at_1", "map_at_r")
_LABELS = {"p_at_1": "P@1", "p_at_5": "P@5", "map_at_r": "MAP@R", "r_precision": "R-prec"}
