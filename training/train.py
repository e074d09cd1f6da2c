"""Train the embedding model: ``python -m training.train --data DIR --out CHECKPOINT [--epochs N] [--seed S]``.

The input geometry is chosen from the collection's image sizes (:func:`training.geometry.choose_geometry`)
unless the config fixes it: 28×28 images keep the whole-image recipe below unchanged; larger images are
read once at a working resolution and trained on random crops of it (one crop per image per epoch, mild
scale jitter), with as many epochs as a fixed budget of crops allows (:data:`TILED_CROP_BUDGET`), so a
1,500-image collection trains in minutes with nothing to tune.

Recipe: class-balanced batches (``MPerClassSampler``), flips/quarter-turns (colour jitter optional),
triplet loss on every margin-violating triplet of the batch plus a normalised-softmax auxiliary loss,
AdamW with a one-cycle schedule, an exponential moving average (EMA) of the weights. Each epoch the
EMA weights are scored on the validation split; the best epoch's weights are saved. The test split
is touched only once, at the end, for the reported metrics and the baselines. Writes next to the
checkpoint a per-epoch log (``<name>_log.csv``), a training-curve PNG (``<name>_curve.png``) and a
JSON summary (``<name>_summary.json``). Same data, seed and thread count → same weights.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from pytorch_metric_learning.samplers import MPerClassSampler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from .baselines import baseline_metrics
from .calibration import fit_calibration
from .checkpoint import save_checkpoint
from .data import (
    Augmentation,
    ImageSet,
    channel_stats,
    image_key,
    image_sizes,
    load_image_folder,
    random_crops,
    stratified_split,
)
from .geometry import DEFAULT_MAX_CROPS, TILED_CROP_SIZE, InputGeometry, choose_geometry
from .inference import Embedder
from .losses import MINERS, EmbeddingLoss, LossConfig
from .metrics import retrieval_metrics, top1_confusion
from .model import EmbeddingNet, ModelConfig, count_parameters
from .preprocessing import normalize

log = logging.getLogger("training.train")

WHOLE_IMAGE_EPOCHS = 65
WHOLE_IMAGE_MODEL = ModelConfig(widths=(32, 64, 192))
"""28 px images: three stages of two convs, the last one wider (192 channels at 3×3, where a channel is cheap:
+24 % multiply-adds per view). With 65 epochs, chosen on the validation split of the 28,498 real images over
the 50-epoch, 128-channel recipe (training/weights/MODEL_CARD.md, "Choosing the recipe")."""
WHOLE_IMAGE_BATCH = 192
TILED_BATCH = 96
TILED_CROP_BUDGET = 24_000
"""Training crops seen in a tiled run (one per image per epoch): ~N×16 for a 1,500-image collection."""
TILED_EPOCHS = (4, 40)
"""Fewest and most epochs of a tiled run, whatever the collection size."""
TILED_MODEL = ModelConfig(widths=(32, 64, 128, 128), blocks_per_stage=1)
"""Tiled runs: one conv per stage and a fourth stage, so a crop costs half the 28 px network's per-pixel
compute while the receptive field grows to ~75 px (coarse grains and bands); measured better and twice as
fast as the 28 px architecture on 112 px crops (docs/PERFORMANCE.md)."""
VALIDATION_MAX_CROPS = 8
"""Crops per image when scoring the validation split after each epoch (the final metrics use them all)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint)."""

    epochs: int | None = None
    """None: :data:`WHOLE_IMAGE_EPOCHS` for whole-image collections, from the collection size for tiled ones."""
    seed: int = 0
    batch_size: int | None = None
    """None: 192 whole-image, 96 tiled (crops of 112² cost ~16× a 28² image)."""
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.15
    ema_decay: float = 0.998
    """0 turns the EMA off (the raw weights are scored and saved)."""
    val_fraction: float = 0.10
    test_fraction: float = 0.15
    tta: bool = True
    baselines: bool = True
    model: ModelConfig | None = None
    """None: :data:`WHOLE_IMAGE_MODEL` for whole images, :data:`TILED_MODEL` for tiled collections."""
    loss: LossConfig = field(default_factory=LossConfig)
    augmentation: Augmentation = field(default_factory=Augmentation)
    geometry: InputGeometry | None = None
    """None: chosen from the collection's image sizes."""
    scale_jitter: float = 0.15
    """Tiled training: crop side × a log-uniform factor in [1/1.15, 1.15]."""

    def to_dict(self) -> dict:
        """Plain data for logs and the checkpoint."""
        data = asdict(self)
        data["model"] = self.model.to_dict() if self.model else None
        data["geometry"] = self.geometry.to_dict() if self.geometry else None
        return data


def tiled_epochs(train_images: int) -> int:
    """Epochs of a tiled run: the crop budget spread over the training images, within :data:`TILED_EPOCHS`."""
    low, high = TILED_EPOCHS
    return int(min(high, max(low, round(TILED_CROP_BUDGET / max(1, train_images)))))


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy (pytorch-metric-learning's sampler uses the global numpy RNG) and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def embed_set(
    model: torch.nn.Module, images: np.ndarray | list[np.ndarray], mean, std, tta: bool,
    geometry: InputGeometry | None = None,
) -> np.ndarray:
    """Embed an image set's pixels with a model in training (copied, so the caller's module is untouched)."""
    model = copy.deepcopy(model).eval()
    geometry = geometry or InputGeometry.whole_image(images.shape[1])
    return Embedder(model, mean=mean, std=std, geometry=geometry, tta=tta).embed_arrays(images)


def _plot_curve(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    ax_loss.plot(epochs, [r["loss"] for r in rows], label="total")
    ax_loss.plot(epochs, [r["triplet"] for r in rows], label="triplet")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("training loss")
    ax_loss.legend()
    for key, label in (("val_p_at_1", "P@1"), ("val_map_at_r", "MAP@R")):
        ax_metric.plot(epochs, [r[key] for r in rows], marker=".", label=f"val {label}")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title("validation (EMA weights, no TTA)")
    ax_metric.set_ylim(max(0.0, min(0.8, min(r["val_map_at_r"] for r in rows) - 0.01)), 1.0)
    ax_metric.grid(alpha=0.3)
    ax_metric.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _resolve(config: TrainConfig, data_dir: Path, images: ImageSet | None) -> tuple[InputGeometry, ImageSet]:
    """The run's input geometry (fixed by the config, by preloaded images, or chosen from the image sizes)
    and its images read with it."""
    geometry = config.geometry
    if geometry is None and images is not None:
        geometry = images.geometry
    if geometry is None:
        geometry = choose_geometry(image_sizes(data_dir))
    if images is None:
        images = load_image_folder(data_dir, geometry=geometry)
    elif images.geometry != geometry:
        raise ValueError(f"the preloaded images were read for {images.geometry}, not {geometry}")
    return geometry, images


def train(
    data_dir: Path,
    out: Path,
    config: TrainConfig,
    images: ImageSet | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Run one training; returns the summary also written to ``<out stem>_summary.json``.

    ``on_epoch`` is called after every epoch with ``{"epoch", "epochs", "loss", "val": {metrics},
    "seconds", "elapsed"}`` (e.g. to report a job's progress). The summary holds ``checkpoint`` (the path
    written), ``geometry``, ``metrics`` (``val``, ``test``, baselines...), ``training``, ``data`` and the
    per-epoch rows (``epochs``).
    """
    started = time.perf_counter()
    data_dir, out = Path(data_dir), Path(out)
    generator = seed_everything(config.seed)
    geometry, images = _resolve(config, data_dir, images)
    train_idx, val_idx, test_idx = stratified_split(
        images.labels, (config.val_fraction, config.test_fraction), config.seed
    )
    if len(val_idx) == 0:
        raise ValueError("the validation split is empty; use more images or a larger --val-fraction")
    train_set, val_set, test_set = (images.subset(i) for i in (train_idx, val_idx, test_idx))
    mean, std = channel_stats(train_set.images)
    num_classes = len(images.class_names)
    epochs = config.epochs or (tiled_epochs(len(train_set)) if geometry.tiled else WHOLE_IMAGE_EPOCHS)
    log.info(
        "%d images, %d classes: train %d, val %d, test %d (loaded in %.1fs); %s; %d epochs",
        len(images), num_classes, len(train_set), len(val_set), len(test_set), time.perf_counter() - started,
        geometry, epochs,
    )

    requested_batch = config.batch_size or (TILED_BATCH if geometry.tiled else WHOLE_IMAGE_BATCH)
    m_per_class = max(2, requested_batch // num_classes)
    batch_size = m_per_class * num_classes
    sampler = MPerClassSampler(
        train_set.labels, m=m_per_class, batch_size=batch_size,
        length_before_new_iter=max(len(train_set), batch_size),
    )
    steps_per_epoch = len(sampler) // batch_size
    labels = torch.from_numpy(train_set.labels)
    if geometry.tiled:
        def training_batch(batch: torch.Tensor) -> torch.Tensor:
            return random_crops(train_set.images, batch, geometry, generator, config.scale_jitter)
        val_geometry = dataclasses.replace(geometry, max_crops=min(geometry.max_crops, VALIDATION_MAX_CROPS))
    else:
        pixels = torch.from_numpy(train_set.images).permute(0, 3, 1, 2).float().div_(255.0)

        def training_batch(batch: torch.Tensor) -> torch.Tensor:
            return pixels[batch]
        val_geometry = geometry

    model_config = config.model or (TILED_MODEL if geometry.tiled else WHOLE_IMAGE_MODEL)
    model = EmbeddingNet(model_config)
    criterion = EmbeddingLoss(config.loss, num_classes, model_config.embedding_dim)
    optimizer = torch.optim.AdamW(
        [*model.parameters(), *criterion.parameters()], lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=epochs * steps_per_epoch,
        pct_start=config.warmup_fraction,
    )
    ema_decay = config.ema_decay
    if geometry.tiled:
        # A tiled run takes a few hundred steps, not thousands: an average over the last ~1/10 of them
        # (0.998 would still hold mostly the initial weights at the end).
        ema_decay = min(ema_decay, 1.0 - 10.0 / (epochs * steps_per_epoch))
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
        if ema_decay > 0
        else None
    )
    log.info("model: %s, %d parameters", model_config, count_parameters(model))

    rows: list[dict] = []
    best: dict = {"score": -1.0}
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = np.fromiter(iter(sampler), dtype=np.int64)
        totals: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{epochs}", leave=False, file=sys.stderr)
        for step in bar:
            batch = torch.from_numpy(order[step * batch_size : (step + 1) * batch_size])
            x = normalize(config.augmentation(training_batch(batch), generator), mean, std)
            loss, parts = criterion(model(x), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            parts["loss"] = float(loss.detach())
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
        scored = ema.module if ema is not None else model
        val_metrics = retrieval_metrics(
            # Tiled: canonical crop views cost no more than plain ones, so "tta" stays on there.
            embed_set(scored, val_set.images, mean, std, tta=geometry.tiled, geometry=val_geometry),
            val_set.labels,
        )
        row = {
            "epoch": epoch,
            **{key: round(value / steps_per_epoch, 5) for key, value in totals.items()},
            **{f"val_{key}": round(value, 5) for key, value in val_metrics.items()},
            "lr": scheduler.get_last_lr()[0],
            "seconds": round(time.perf_counter() - epoch_start, 2),
        }
        row.setdefault("aux", 0.0)
        rows.append(row)
        # MAP@R ranks the whole neighbourhood, so it is a steadier choice criterion than P@1.
        score = val_metrics["map_at_r"] + val_metrics["p_at_1"]
        if score > best["score"]:
            best = {"score": score, "epoch": epoch, "state": copy.deepcopy(scored.state_dict())}
        tqdm.write(
            f"epoch {epoch:3d}  loss {row['loss']:.4f}  val P@1 {val_metrics['p_at_1']:.4f}  "
            f"MAP@R {val_metrics['map_at_r']:.4f}  ({row['seconds']:.1f}s)",
            file=sys.stderr,
        )
        if on_epoch is not None:
            on_epoch({
                "epoch": epoch, "epochs": epochs, "loss": row["loss"], "val": val_metrics,
                "seconds": row["seconds"], "elapsed": round(time.perf_counter() - started, 1),
            })
    train_seconds = time.perf_counter() - started

    final = EmbeddingNet(model_config)
    final.load_state_dict(best["state"])
    final.eval()
    selection = "val P@1 + MAP@R, EMA weights, " + (
        f"canonical crop views, ≤{VALIDATION_MAX_CROPS} crops" if geometry.tiled else "no TTA"
    )
    metrics: dict = {"best_epoch": best["epoch"], "selection": selection}
    for name, subset in (("val", val_set), ("test", test_set)):
        if len(subset) < 2:
            continue
        for tta in (False, True):
            embeddings = embed_set(final, subset.images, mean, std, tta=tta, geometry=geometry)
            key = name if tta == config.tta else f"{name}_{'tta' if tta else 'no_tta'}"
            metrics[key] = retrieval_metrics(embeddings, subset.labels)
            if name == "test" and tta == config.tta:
                classes, table = top1_confusion(embeddings, [images.class_names[i] for i in subset.labels])
                metrics["test_top1_confusion"] = {"classes": classes, "table": table.tolist()}
    if config.baselines and len(test_set) >= 2:
        metrics["baselines_test"] = baseline_metrics(
            test_set.images, test_set.labels, model_config, mean, std, config.seed, geometry
        )
    training_info = {
        **config.to_dict(),
        "epochs": epochs,
        "batch_size": batch_size,
        "ema_decay": ema_decay,
        "steps": epochs * steps_per_epoch,
        "geometry": geometry.to_dict(),
        "train_seconds": round(train_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "parameters": count_parameters(final),
        "torch": str(torch.__version__),
    }
    data_info = {
        "description": (
            f"{len(images)} images of {num_classes} classes ({', '.join(images.class_names)}) read from "
            f"{data_dir}; stratified split seed {config.seed}: {len(train_set)} train, {len(val_set)} "
            f"validation (epoch choice), {len(test_set)} test (reported metrics only)"
        ),
        "source": str(data_dir),
        "images": len(images),
        "per_class": {n: int((images.labels == i).sum()) for i, n in enumerate(images.class_names)},
        "split": {
            "seed": config.seed,
            "method": "training.data.stratified_split",
            "train": len(train_set), "val": len(val_set), "test": len(test_set),
        },
        "test_keys": sorted(image_key(p) for p in test_set.paths),
        "val_keys": sorted(image_key(p) for p in val_set.paths),
    }
    # Fitted on the validation split: held out from the weights, and the test split stays untouched.
    calibration = (
        fit_calibration(embed_set(final, val_set.images, mean, std, tta=config.tta, geometry=geometry), val_set.labels)
        if len(val_set) >= 2 else None
    )
    save_checkpoint(
        out, model=final, mean=mean, std=std, class_names=images.class_names, geometry=geometry,
        tta=config.tta, metrics=metrics, data=data_info, training=training_info, calibration=calibration,
    )
    stem = out.with_suffix("")
    with open(f"{stem}_log.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot_curve(rows, Path(f"{stem}_curve.png"))
    summary = {
        "checkpoint": str(out), "geometry": geometry.to_dict(), "metrics": metrics, "training": training_info,
        "epochs": rows,
    }
    summary["calibration"] = calibration.to_dict() if calibration is not None else None
    summary["data"] = {k: v for k, v in data_info.items() if not k.endswith("_keys")}
    Path(f"{stem}_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the shipped recipe."""
    d, m, lo = TrainConfig(), ModelConfig(), LossConfig()
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder of class-named subfolders of images")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write, e.g. model.pt")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help=f"default: {WHOLE_IMAGE_EPOCHS} for 28 px images, from the collection size for larger ones")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the split, initialisation and batches")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"rounded down to m × classes (default {WHOLE_IMAGE_BATCH}, tiled {TILED_BATCH})")
    p.add_argument("--working-side", type=int, default=None,
                   help="train on crops of images shrunk to this short side (default: chosen from the images)")
    p.add_argument("--crop-size", type=int, default=TILED_CROP_SIZE, help="crop side with --working-side")
    p.add_argument("--max-crops", type=int, default=DEFAULT_MAX_CROPS, help="crops per image at most when embedding")
    p.add_argument("--whole-image", action="store_true", help="force the whole-image 28 px geometry")
    p.add_argument("--scale-jitter", type=float, default=d.scale_jitter,
                   help="tiled training: crop side × a log-uniform factor within ±this (0 disables)")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="0 disables the weight EMA")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--test-fraction", type=float, default=d.test_fraction)
    whole, tiled = (",".join(map(str, c.widths)) for c in (WHOLE_IMAGE_MODEL, TILED_MODEL))
    p.add_argument("--widths", default=None,
                   help=f"channels per stage, e.g. {whole} (the default for 28 px images; {tiled} for larger ones)")
    p.add_argument("--blocks-per-stage", type=int, default=None,
                   help=f"default {m.blocks_per_stage} (28 px), {TILED_MODEL.blocks_per_stage} (larger images)")
    p.add_argument("--stem-stride", type=int, default=None, help=f"default {m.stem_stride}")
    p.add_argument("--margin", type=float, default=lo.margin)
    p.add_argument("--miner", choices=MINERS, default=lo.miner)
    p.add_argument("--aux-weight", type=float, default=lo.aux_weight, help="0 disables the auxiliary loss")
    p.add_argument("--no-tta", action="store_true", help="embed without averaging over flips/rotations")
    p.add_argument("--no-d4", action="store_true", help="train without flip/rotation augmentation")
    p.add_argument("--jitter", type=float, default=Augmentation().brightness,
                   help="brightness and contrast jitter (±share); colour gain is 0.3× this; 0 disables")
    p.add_argument("--no-baselines", action="store_true", help="skip the baseline measurements")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def _model_from_args(args: argparse.Namespace) -> ModelConfig | None:
    """None (the recipe's choice for the geometry) unless an architecture option was given."""
    if args.widths is None and args.blocks_per_stage is None and args.stem_stride is None:
        return None
    default = WHOLE_IMAGE_MODEL
    return ModelConfig(
        widths=tuple(int(w) for w in args.widths.split(",")) if args.widths else default.widths,
        blocks_per_stage=args.blocks_per_stage or default.blocks_per_stage,
        stem_stride=args.stem_stride or default.stem_stride,
    )


def _geometry_from_args(args: argparse.Namespace) -> InputGeometry | None:
    if args.whole_image:
        return InputGeometry.whole_image()
    if args.working_side is None:
        return None
    return InputGeometry(
        input_size=args.crop_size, crop_size=args.crop_size, working_side=args.working_side,
        max_crops=args.max_crops,
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, ema_decay=args.ema_decay, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, tta=not args.no_tta, baselines=not args.no_baselines,
        model=_model_from_args(args),
        loss=LossConfig(margin=args.margin, miner=args.miner, aux_weight=args.aux_weight),
        scale_jitter=args.scale_jitter,
        augmentation=Augmentation(
            d4=not args.no_d4, brightness=args.jitter, contrast=args.jitter, channel_gain=0.3 * args.jitter
        ),
    )
    try:
        config.geometry = _geometry_from_args(args)
        summary = train(args.data, args.out, config)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metrics = summary["metrics"]
    print(f"saved {args.out} (best epoch {metrics['best_epoch']}, {summary['training']['train_seconds']}s)")
    for split in ("val", "test"):
        if split in metrics:
            print(f"{split:5s} " + "  ".join(f"{k} {v:.4f}" for k, v in metrics[split].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
