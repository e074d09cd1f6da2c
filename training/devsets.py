"""Development collections for the scale-aware model, generated on the fly (never committed as images).

``python -m training.devsets mosaics SOURCE OUT [--tiles 8] [--per-class N] [--seed S]`` stitches real
28×28 patches of one rock type into larger images (8×8 patches → 224 px): a collection of large images
whose classes are the real ones, with the texture detail at the patches' own scale. Every patch is used
in one mosaic at most, so a held-out mosaic shares no pixels with a training one. The large synthetic
textures (grains, foliation, veins at several scales) are ``search.demo_textures.write_texture_collection``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .data import find_images


def write_mosaic_collection(
    source: str | Path, out_dir: str | Path, *, tiles: int = 8, per_class: int | None = None, seed: int = 0,
    progress: bool = False,
) -> int:
    """Write ``out_dir/<class>/mosaic_<NNNN>.png``, each ``tiles × tiles`` distinct patches of one class.

    ``source`` is a folder of class-named subfolders of equally sized images (the real 28×28 set).
    ``per_class`` None makes as many mosaics as the class's patches allow. Deterministic for a seed.
    Returns the number of mosaics written.
    """
    source, out_dir = Path(source), Path(out_dir)
    if tiles < 1:
        raise ValueError(f"tiles must be positive, got {tiles}")
    by_class: dict[str, list[Path]] = {}
    for path in find_images(source):
        by_class.setdefault(path.parent.name, []).append(path)
    if not by_class:
        raise ValueError(f"no images under {source}")
    rng = np.random.default_rng(seed)
    written = 0
    wanted = {name: len(paths) // tiles**2 for name, paths in by_class.items()}
    if per_class is not None:
        wanted = {name: min(count, per_class) for name, count in wanted.items()}
    with tqdm(total=sum(wanted.values()), desc="mosaics", unit="img", disable=not progress, file=sys.stderr) as bar:
        for name in sorted(by_class):
            paths = [by_class[name][i] for i in rng.permutation(len(by_class[name]))]
            folder = out_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(wanted[name]):
                chosen = paths[index * tiles**2 : (index + 1) * tiles**2]
                patches = [np.asarray(Image.open(path).convert("RGB")) for path in chosen]
                side = patches[0].shape[0]
                rows = [np.concatenate(patches[r * tiles : (r + 1) * tiles], axis=1) for r in range(tiles)]
                mosaic = np.concatenate(rows, axis=0)
                if mosaic.shape[:2] != (tiles * side, tiles * side):
                    raise ValueError(f"patches of {name} are not all {side}×{side}")
                Image.fromarray(mosaic).save(folder / f"mosaic_{index:04d}.png")
                written += 1
                bar.update()
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.devsets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    mosaics = commands.add_parser("mosaics", help="stitch real patches of one class into large images")
    mosaics.add_argument("source", type=Path, help="folder of class-named subfolders of 28×28 images")
    mosaics.add_argument("out", type=Path)
    mosaics.add_argument("--tiles", type=int, default=8, help="patches per side (default 8 → 224 px)")
    mosaics.add_argument("--per-class", type=int, default=None, help="default: as many as the patches allow")
    mosaics.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        written = write_mosaic_collection(
            args.source, args.out, tiles=args.tiles, per_class=args.per_class, seed=args.seed, progress=True
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written} mosaics to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
