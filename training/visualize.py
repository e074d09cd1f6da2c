"""Plot a checkpoint's embedding space: ``python -m training.visualize --checkpoint C --data DIR --out DIR``.

Writes, coloured by rock type (the parent folder's name): ``pca_2d.png``, ``pca_3d.png``,
``tsne_2d.png``, ``tsne_3d.png``, ``tsne_3d_rotating.gif`` and ``embedding_3d.html`` (interactive plotly,
PCA and t-SNE switchable, with plotly's JavaScript bundled in the file: it works offline, no CDN).
Large folders are subsampled per class (``--max-points``) because t-SNE is slow; ``--heldout-only``
plots only the images the checkpoint's training run held out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError
from .data import ImageSet, load_image_folder
from .evaluate import heldout_filter
from .inference import Embedder
from .projection import project

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def stratified_sample(images: ImageSet, max_points: int, seed: int) -> ImageSet:
    """At most ``max_points`` images, the same share of each class, chosen with ``seed``."""
    if len(images) <= max_points:
        return images
    rng = np.random.default_rng(seed)
    keep = [
        rng.permutation(np.flatnonzero(images.labels == label))[: max(1, round(max_points * share))]
        for label, share in zip(*np.unique(images.labels, return_counts=True), strict=True)
        for share in [share / len(images)]
    ]
    return images.subset(np.sort(np.concatenate(keep)))


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _scatter_png(coords: np.ndarray, labels: list[str], title: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    names = sorted(set(labels))
    fig = plt.figure(figsize=(6, 5), dpi=90)
    ax = fig.add_subplot(projection="3d" if coords.shape[1] == 3 else None)
    for i, name in enumerate(names):
        chosen = np.array([label == name for label in labels])
        ax.scatter(*coords[chosen].T, s=4, alpha=0.7, color=_colour(i), label=name)
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _rotating_gif(coords: np.ndarray, labels: list[str], title: str, path: Path, frames: int = 36) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    names = sorted(set(labels))
    fig = plt.figure(figsize=(4.5, 4.5), dpi=70)
    ax = fig.add_subplot(projection="3d")
    for i, name in enumerate(names):
        chosen = np.array([label == name for label in labels])
        ax.scatter(*coords[chosen].T, s=3, alpha=0.7, color=_colour(i), label=name)
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=7, loc="upper left")
    animation = FuncAnimation(fig, lambda f: ax.view_init(elev=20, azim=f * 360 / frames), frames=frames)
    animation.save(path, writer=PillowWriter(fps=12))
    plt.close(fig)


def _html(projections: dict[str, np.ndarray], labels: list[str], paths: list[str], path: Path) -> None:
    import plotly.graph_objects as go

    names = sorted(set(labels))
    fig = go.Figure()
    for method_index, coords in enumerate(projections.values()):
        for i, name in enumerate(names):
            chosen = np.array([label == name for label in labels])
            fig.add_trace(
                go.Scatter3d(
                    x=coords[chosen, 0], y=coords[chosen, 1], z=coords[chosen, 2],
                    mode="markers", name=name, legendgroup=name, showlegend=method_index == 0,
                    marker={"size": 2.5, "color": _colour(i)},
                    text=[p for p, keep in zip(paths, chosen, strict=True) if keep], hoverinfo="text+name",
                    visible=method_index == 0,
                )
            )
    per_method = len(names)
    buttons = [
        {
            "label": method.upper() if method == "pca" else "t-SNE",
            "method": "update",
            "args": [{"visible": [j // per_method == k for j in range(len(projections) * per_method)]}],
        }
        for k, method in enumerate(projections)
    ]
    fig.update_layout(
        title="GeoSim embeddings, coloured by rock type",
        updatemenus=[{"buttons": buttons, "direction": "right", "x": 0.0, "y": 1.08}],
        margin={"l": 0, "r": 0, "t": 60, "b": 0},
    )
    fig.write_html(path, include_plotlyjs=True, full_html=True)


def visualize(
    checkpoint: Path, data_dir: Path, out_dir: Path, max_points: int = 3000, seed: int = 0, heldout_only: bool = False
) -> list[Path]:
    """Write every plot to ``out_dir`` and return their paths (``heldout_only``: the checkpoint's test images)."""
    import matplotlib

    matplotlib.use("Agg")
    embedder = Embedder.from_checkpoint(checkpoint)
    keep = heldout_filter(embedder) if heldout_only else None
    images = load_image_folder(data_dir, size=embedder.input_size, keep=keep)
    images = stratified_sample(images, max_points, seed)
    if len(images) < 3:
        raise ValueError(f"need at least 3 images to plot, found {len(images)} under {data_dir}")
    labels = [path.split("/")[-2] if "/" in path else "" for path in images.paths]
    embeddings = embedder.embed_arrays(images.images)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    projections = {}
    for method in ("pca", "tsne"):
        for dims in (2, 3):
            coords = project(embeddings, method=method, dims=dims, seed=seed)
            if dims == 3:
                projections[method] = coords
            title = f"{'PCA' if method == 'pca' else 't-SNE'} {dims}-D of {len(labels)} embeddings"
            written.append(out_dir / f"{method}_{dims}d.png")
            _scatter_png(coords, labels, title, written[-1])
    written.append(out_dir / "tsne_3d_rotating.gif")
    _rotating_gif(projections["tsne"], labels, "t-SNE 3-D", written[-1])
    written.append(out_dir / "embedding_3d.html")
    _html(projections, labels, images.paths, written[-1])
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.visualize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder of class-named subfolders of images")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs, GIF and HTML")
    parser.add_argument("--max-points", type=int, default=3000, help="subsample per class above this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heldout-only", action="store_true", help="only the checkpoint's held-out test images")
    args = parser.parse_args(argv)
    try:
        written = visualize(args.checkpoint, args.data, args.out, args.max_points, args.seed, args.heldout_only)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
