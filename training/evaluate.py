"""Score a checkpoint on a folder: ``python -m training.evaluate --checkpoint C --data DIR [--json]``.

Leave-one-out retrieval over the folder's images: each image queries all the others; prints P@1,
P@5, MAP@R and R-precision (``--json``: one JSON object). ``--heldout-only`` keeps only the images
the checkpoint's training run held out as its test split (matched by ``class/name``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from .checkpoint import CheckpointError
from .data import image_key, load_image_folder
from .inference import Embedder
from .metrics import retrieval_metrics, top1_confusion


def heldout_filter(embedder: Embedder) -> Callable[[str], bool]:
    """A ``keep`` for :func:`load_image_folder`: true for the images the checkpoint held out as its test set."""
    keys = set((embedder.checkpoint.data if embedder.checkpoint else {}).get("test_keys", []))
    if not keys:
        raise ValueError("this checkpoint records no held-out test images")
    return lambda path: image_key(path) in keys


def evaluate_folder(
    embedder: Embedder, data_dir: Path, heldout_only: bool = False, keys: Iterable[str] | None = None
) -> dict:
    """Metrics, image count and top-1 confusion table for the images under ``data_dir``.

    ``heldout_only`` keeps the embedder's own checkpoint's held-out test images; ``keys`` (``class/name``
    image keys, e.g. another checkpoint's ``data["test_keys"]``) keeps exactly those, so two models can
    be scored on the same split. Images are read with the embedder's input geometry.
    """
    if heldout_only and keys is not None:
        raise ValueError("give either heldout_only or keys, not both")
    keep = heldout_filter(embedder) if heldout_only else None
    if keys is not None:
        wanted = set(keys)
        if not wanted:
            raise ValueError("keys is empty: no images to evaluate")
        keep = lambda path: image_key(path) in wanted  # noqa: E731
    images = load_image_folder(data_dir, geometry=embedder.geometry, keep=keep)
    if (heldout_only or keys is not None) and len(images) < 2:
        raise ValueError(f"fewer than two of the selected held-out images are under {data_dir}")
    labels = [path.split("/")[-2] if "/" in path else "" for path in images.paths]
    embeddings = embedder.embed_arrays(images.images)
    classes, table = top1_confusion(embeddings, labels)
    return {
        **retrieval_metrics(embeddings, labels),
        "images": len(labels),
        "classes": classes,
        "top1_confusion": table.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder of class-named subfolders of images")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--heldout-only", action="store_true", help="only the checkpoint's held-out test images")
    args = parser.parse_args(argv)
    try:
        result = evaluate_folder(Embedder.from_checkpoint(args.checkpoint), args.data, args.heldout_only)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['images']} images, leave-one-out retrieval")
    for key in ("p_at_1", "p_at_5", "map_at_r", "r_precision"):
        print(f"  {key:12s} {result[key]:.4f}")
    width = max(len(c) for c in result["classes"])
    print("top-1 neighbour (rows: query class, columns: neighbour class)")
    print(" " * (width + 2) + " ".join(f"{c[:6]:>6s}" for c in result["classes"]))
    for name, row in zip(result["classes"], result["top1_confusion"], strict=True):
        print(f"  {name:{width}s}" + " ".join(f"{v:6d}" for v in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
