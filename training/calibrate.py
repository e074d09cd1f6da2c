"""Calibrate an existing checkpoint: ``python -m training.calibrate --checkpoint C --data DIR [--out FILE]``.

Checkpoints written by ``python -m training.train`` carry a calibration already. This adds one to a
checkpoint trained before calibrations existed: it fits :func:`training.calibration.fit_calibration`
on the validation images the training run recorded (``data.val_keys``, found under ``DIR`` by
``class/name``), so the fit stays on images the weights never saw, and rewrites the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .calibration import Calibration, fit_calibration
from .checkpoint import CheckpointError, save_checkpoint
from .data import image_key, load_image_folder
from .inference import Embedder


def calibrate_checkpoint(checkpoint: Path, data_dir: Path, out: Path | None = None) -> Calibration:
    """Fit a calibration for an existing checkpoint on its recorded validation images and write it in.

    For checkpoints trained before calibrations existed: the images are found under ``data_dir`` by the
    ``data.val_keys`` the training run recorded (``class/name``), so the fit stays on held-out images.
    The checkpoint is rewritten (atomically) in the current format, to ``out`` or in place.
    """
    embedder = Embedder.from_checkpoint(checkpoint)
    loaded = embedder.checkpoint
    keys = set(loaded.data.get("val_keys", []))
    if not keys:
        raise ValueError(f"{checkpoint} records no validation images (data.val_keys) to fit a calibration on")
    images = load_image_folder(data_dir, geometry=embedder.geometry, keep=lambda path: image_key(path) in keys)
    if len(images) < 2:
        raise ValueError(f"fewer than two of the checkpoint's validation images are under {data_dir}")
    labels = [path.split("/")[-2] for path in images.paths]
    calibration = fit_calibration(embedder.embed_arrays(images.images), labels)
    save_checkpoint(
        out or checkpoint, model=loaded.model, mean=loaded.mean, std=loaded.std, class_names=loaded.class_names,
        geometry=loaded.geometry, tta=loaded.tta, metrics=loaded.metrics, data=loaded.data,
        training=loaded.training, calibration=calibration,
    )
    return calibration


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m training.calibrate",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder holding the checkpoint's training images")
    parser.add_argument("--out", type=Path, default=None, help="write here instead of rewriting the checkpoint")
    args = parser.parse_args(argv)
    try:
        calibration = calibrate_checkpoint(args.checkpoint, args.data, args.out)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"written": str(args.out or args.checkpoint), **calibration.to_dict()["fitted_on"],
                      "breakpoints": len(calibration.cosines)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
