"""Embed a folder: ``python -m training.embed --checkpoint C --data DIR --out FILE.npz``.

The npz holds ``paths`` (str, relative to DIR), ``labels`` (str, the parent folder's name) and
``embeddings`` (float32 N×D, L2-normalised, with the checkpoint's test-time augmentation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .checkpoint import CheckpointError
from .data import load_image_folder
from .inference import Embedder


def embed_folder(embedder: Embedder, data_dir: Path, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """``{"paths", "labels", "embeddings"}`` for every readable image under ``data_dir``."""
    images = load_image_folder(data_dir, geometry=embedder.geometry)
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc="embedding", unit="batch", file=sys.stderr):
        chunks.append(embedder.embed_arrays(images.images[start : start + batch_size]))
    return {
        "paths": np.array(images.paths, dtype=str),
        "labels": np.array([path.split("/")[-2] if "/" in path else "" for path in images.paths], dtype=str),
        "embeddings": np.concatenate(chunks).astype(np.float32),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.embed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder of class-named subfolders of images")
    parser.add_argument("--out", type=Path, required=True, help="npz file to write")
    args = parser.parse_args(argv)
    try:
        arrays = embed_folder(Embedder.from_checkpoint(args.checkpoint), args.data)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as stream:  # a file object, so numpy does not append ".npz"
        np.savez(stream, **arrays)
    print(f"wrote {len(arrays['paths'])} embeddings of dimension {arrays['embeddings'].shape[1]} to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
