"""The checkpoint file: weights plus everything needed to use them the way they were trained.

A checkpoint is a ``torch.save`` dict (loaded with ``weights_only=True``: plain data and tensors,
no pickled code) with these keys::

    format          "geosim-embedding"
    format_version  FORMAT_VERSION
    state_dict      EmbeddingNet weights (float32)
    architecture    ModelConfig.to_dict()
    preprocessing   {"input_size", "mean", "std", "resize"}
    geometry        InputGeometry.to_dict(): input size, crop size, working side, crop cap (version 2)
    class_names     rock types, in label order
    embedding_dim   128
    tta             True: embeddings are averaged over the 8 flips/quarter-turns
    metrics         {"val": {...}, "test": {...}, "baselines": {...}, ...} (free-form)
    data            description of the training data and split (incl. held-out image keys)
    training        hyperparameters and timing (free-form)
    calibration     cosine → probability of the same rock type (``training.calibration.Calibration.to_dict``);
                    optional: a checkpoint without it answers with ``calibration.FALLBACK``
    created         ISO timestamp

Version 2 added ``geometry``. Version 1 files (the whole-image 28 px model) are still read: their
geometry is :meth:`InputGeometry.whole_image` at the stored input size, so they embed exactly as before.
Readers refuse any other ``format_version`` with a :class:`CheckpointError` naming the file and the
versions it reads, rather than failing deep inside ``load_state_dict``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from .calibration import FALLBACK, Calibration
from .geometry import InputGeometry
from .model import EmbeddingNet, ModelConfig

FORMAT_NAME = "geosim-embedding"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class CheckpointError(Exception):
    """The file is missing, is not a GeoSim checkpoint, or has a format version this code cannot read."""


@dataclass
class LoadedCheckpoint:
    """A checkpoint ready for use; ``model`` is in eval mode on the CPU."""

    path: Path
    model: EmbeddingNet
    architecture: ModelConfig
    input_size: int
    mean: list[float]
    std: list[float]
    class_names: list[str]
    embedding_dim: int
    tta: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration = FALLBACK
    format_version: int = FORMAT_VERSION
    created: str = ""
    geometry: InputGeometry = field(default_factory=InputGeometry)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """Input size and normalisation statistics, as stored."""
        return {"input_size": self.input_size, "mean": self.mean, "std": self.std}


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON-clean copy (numpy scalars, tuples, str subclasses → plain types) that ``weights_only`` loads."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def save_checkpoint(
    path: str | Path,
    *,
    model: EmbeddingNet,
    mean: list[float],
    std: list[float],
    class_names: list[str],
    geometry: InputGeometry | None = None,
    tta: bool = True,
    metrics: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file, fsync, rename) and return its path.

    ``geometry`` defaults to the whole-image 28 px geometry.
    """
    geometry = geometry or InputGeometry.whole_image()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "architecture": model.config.to_dict(),
        "preprocessing": {
            "input_size": int(geometry.input_size),
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
            "resize": (
                "training.preprocessing.to_working_resolution (RGB, short side at most working_side), "
                "then crops (training.geometry.crop_grid)"
                if geometry.tiled
                else "training.preprocessing.to_model_input (RGB, centre square crop, Lanczos)"
            ),
        },
        "geometry": geometry.to_dict(),
        "class_names": list(class_names),
        "embedding_dim": int(model.config.embedding_dim),
        "tta": bool(tta),
        "metrics": _plain(metrics or {}),
        "data": _plain(data or {}),
        "training": _plain(training or {}),
        **({"calibration": _plain(calibration.to_dict())} if calibration is not None else {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temp_name, 0o666 & ~umask)  # mkstemp's 0600 would hide the model from a service user
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read and validate a checkpoint; raise :class:`CheckpointError` for anything but a readable one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign files (zip, pickle, EOF…)
        raise CheckpointError(
            f"{path} is not a GeoSim checkpoint (format {FORMAT_NAME!r} version {FORMAT_VERSION}): "
            f"torch could not read it ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path} is not a GeoSim checkpoint: expected format {FORMAT_NAME!r} version {FORMAT_VERSION}, "
            f"found {type(payload).__name__} without that format marker"
        )
    version = payload.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, but this code reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (writes version {FORMAT_VERSION}); "
            "retrain it with `python -m training.train` or use a matching GeoSim release"
        )
    try:
        config = ModelConfig.from_dict(payload["architecture"])
        model = EmbeddingNet(config)
        model.load_state_dict(payload["state_dict"])
        preprocessing = payload["preprocessing"]
        geometry = (
            InputGeometry.from_dict(payload["geometry"])
            if version >= 2
            else InputGeometry.whole_image(int(preprocessing["input_size"]))
        )
        loaded = LoadedCheckpoint(
            path=path,
            model=model.eval(),
            architecture=config,
            input_size=geometry.input_size,
            mean=list(preprocessing["mean"]),
            std=list(preprocessing["std"]),
            class_names=list(payload["class_names"]),
            embedding_dim=int(payload["embedding_dim"]),
            tta=bool(payload["tta"]),
            metrics=payload.get("metrics", {}),
            data=payload.get("data", {}),
            training=payload.get("training", {}),
            calibration=Calibration.from_dict(payload.get("calibration")),
            format_version=version,
            created=payload.get("created", ""),
            geometry=geometry,
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{path} claims format version {version} but is incomplete or inconsistent: {error}"
        ) from error
    return loaded
