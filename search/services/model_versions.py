"""Model versions: register a trained checkpoint, make sure one is active.

Switching to another model is a rebuild onto it: :func:`search.services.indexing.model_version_activate`.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction

from search.models import ModelVersion
from training.checkpoint import load_checkpoint


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_version_register(checkpoint: Path, *, name: str | None = None, description: str = "") -> ModelVersion:
    """Validate a checkpoint, copy it into the data dir (content-addressed) and record it (inactive).

    Registering the same file twice returns the existing version. Raises CheckpointError for a file
    that is not a readable GeoSim checkpoint, before anything is written.
    """
    checkpoint = Path(checkpoint)
    loaded = load_checkpoint(checkpoint)
    sha = _sha256_file(checkpoint)
    existing = ModelVersion.objects.filter(checkpoint_sha256=sha).first()
    if existing:
        return existing
    target = Path(settings.GEOSIM_MODEL_DIR) / f"{sha}.pt"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_suffix(".tmp")
        shutil.copyfile(checkpoint, temp)
        temp.replace(target)
    test_metrics = loaded.metrics.get("test") or loaded.metrics.get("val") or {}
    return ModelVersion.objects.create(
        name=name or f"{checkpoint.stem}-{sha[:8]}",
        checkpoint=str(target),
        checkpoint_sha256=sha,
        embedding_dim=loaded.embedding_dim,
        metrics={k: v for k, v in test_metrics.items() if isinstance(v, int | float)},
        description=description or str(loaded.data.get("description", ""))[:2000],
    )


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_ensure_active() -> ModelVersion:
    """The active model version; the shipped default checkpoint is registered and activated if none is."""
    active = model_version_active()
    if active:
        return active
    with transaction.atomic():
        version = model_version_register(settings.GEOSIM_DEFAULT_CHECKPOINT, name=None)
        ModelVersion.objects.filter(is_active=True).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.refresh_from_db()
    return version

