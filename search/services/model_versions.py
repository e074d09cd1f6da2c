"""Model versions: register a checkpoint, make sure one is active, switch searches to another.

Metrics of a version (``ModelVersion.metrics``, also served by ``GET /api/v1/models/``)::

    heldout            this model's retrieval metrics (p_at_1, p_at_5, map_at_r, r_precision) on a
                       held-out split: for a model trained by GeoSim, the split its training job held
                       out; for a registered file, the test split its own training recorded
    active_on_heldout  the model that was active when the training job ran, scored on the SAME split
                       (with its name): the side-by-side comparison; only for models trained here
    heldout_images     how many images that split holds
    split              where the split comes from, in words

Switching to another model is a rebuild onto it: :func:`search.services.indexing.model_version_activate`.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from search import object_sync
from search.models import ModelVersion
from training.checkpoint import load_checkpoint

RETRIEVAL_METRICS = ("p_at_1", "p_at_5", "map_at_r", "r_precision")


class ModelVersionRejected(ValueError):
    """A model version cannot be registered as asked (e.g. its name is taken); the message says why."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def retrieval_numbers(metrics: dict) -> dict[str, float]:
    """The retrieval metrics of a metrics dict, rounded, in a fixed order (free-form keys dropped)."""
    numbers = {key: metrics.get(key) for key in RETRIEVAL_METRICS}
    return {key: round(float(value), 4) for key, value in numbers.items() if isinstance(value, int | float)}


def model_version_register(
    checkpoint: Path, *, name: str | None = None, description: str = "", metrics: dict | None = None
) -> ModelVersion:
    """Validate a checkpoint, copy it into GEOSIM_MODEL_DIR (content-addressed) and record it, inactive.

    Registering the same file twice returns the existing version. Raises
    ``training.checkpoint.CheckpointError`` for a file that is not a readable GeoSim checkpoint and
    :class:`ModelVersionRejected` for a name another version has, both before anything is written.
    ``metrics`` (see the module docstring) replaces what the checkpoint records about itself.
    """
    checkpoint = Path(checkpoint)
    loaded = load_checkpoint(checkpoint)
    sha = _sha256_file(checkpoint)
    existing = ModelVersion.objects.filter(checkpoint_sha256=sha).first()
    if existing:
        return existing
    name = (name or "").strip() or f"{checkpoint.stem}-{sha[:8]}"
    if ModelVersion.objects.filter(name=name).exists():
        raise ModelVersionRejected(f"A model version named {name!r} exists already; choose another name.")
    if metrics is None:
        own_split = loaded.metrics.get("test") or loaded.metrics.get("val") or {}
        metrics = {"heldout": retrieval_numbers(own_split), "split": "the checkpoint's own held-out split"}
        test_keys = loaded.data.get("test_keys") or []
        if test_keys:
            metrics["heldout_images"] = len(test_keys)
    target = Path(settings.GEOSIM_MODEL_DIR) / f"{sha}.pt"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_suffix(".tmp")
        shutil.copyfile(checkpoint, temp)
        temp.replace(target)
    object_sync.checkpoint_publish(target, sha)  # with object storage: before any row names it
    return ModelVersion.objects.create(
        name=name[:100],
        checkpoint=str(target),
        checkpoint_sha256=sha,
        embedding_dim=loaded.embedding_dim,
        metrics=metrics,
        description=description or str(loaded.data.get("description", ""))[:2000],
    )


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_make_active(version: ModelVersion) -> None:
    """THE flip of the active model (in the caller's transaction): every other version stops being active.

    Only the index rebuild (once the new model's index is complete) and :func:`model_version_ensure_active`
    (the very first model) call it; anything else that wants another model asks for
    ``indexing.model_version_activate``, so searches never use a model whose vectors are not indexed.
    """
    ModelVersion.objects.exclude(pk=version.pk).filter(is_active=True).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True


def model_version_ensure_active() -> ModelVersion:
    """The active model version; the shipped default checkpoint is registered and activated if none is."""
    active = model_version_active()
    if active:
        return active
    try:
        with transaction.atomic():
            version = model_version_register(settings.GEOSIM_DEFAULT_CHECKPOINT, name=None)
            model_version_make_active(version)
    except IntegrityError:
        # Another process (a worker, another machine's web process) registered it at the same moment.
        active = model_version_active()
        if active is None:
            raise
        return active
    version.refresh_from_db()
    return version
