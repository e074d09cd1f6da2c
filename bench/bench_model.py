"""Benchmark the scale-aware model on the development collections: training time, held-out quality
beside simple baselines and the shipped model, and embedding time by image size.

    python bench/bench_model.py train --collection mosaics   --threads 1
    python bench/bench_model.py train --collection textures  --threads 1
    python bench/bench_model.py train --collection lab1500   --threads 1   # the 15-minute budget check
    python bench/bench_model.py train --collection real28    --threads 1   # the shipped 28 px recipe (~8 min)
    python bench/bench_model.py embed --checkpoint var/bench-model/textures.pt --threads 1

Collections (generated into ``--work`` unless there already; never committed):
- ``real28``: the real 28×28 images (``GEOSIM_REAL_DATA`` archives, default ``../shared/data``).
- ``mosaics``: 8×8 real patches of one rock type per 224 px image (``training.devsets``), 444 images.
- ``textures``: 5 classes × 80 generated textures, short side 256–400 px, RGB
  (``search.demo_textures.write_texture_collection``, seeds 0–2 for the three sizes).
- ``lab1500``: 3 classes × 500 greyscale textures of about 500×380 px, the size of a lab's micrographs.

``train`` runs ``training.train.train`` with the defaults (nothing tuned per collection), then scores
the shipped ``training/weights/default.pt`` on the same held-out split. Every number in the result is
leave-one-out retrieval on the held-out test images only. ``embed`` times ``Embedder.embed_images`` on
decoded PIL images of 28×28, 500×380 and 6000×4000 px (median of repeats, one process, ``--threads``)
and the JPEG decode of a 6000×4000 photo apart. Results: bench/results/model_<name>.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from search.demo_textures import write_texture_collection  # noqa: E402
from training.devsets import write_mosaic_collection  # noqa: E402
from training.evaluate import evaluate_folder  # noqa: E402
from training.inference import Embedder  # noqa: E402
from training.train import TrainConfig, train  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHIPPED = ROOT / "training" / "weights" / "default.pt"
METRICS = ("p_at_1", "p_at_5", "map_at_r", "r_precision")


def real_data_dir(work: Path) -> Path:
    """The real 28×28 images, extracted once under ``work``."""
    target = work / "real28"
    if (target / ".complete").exists():
        return target
    source = Path(os.environ.get("GEOSIM_REAL_DATA", ROOT.parent / "shared" / "data"))
    archives = sorted(source.glob("geological_similarity-part*.tar.xz"))
    if not archives:
        raise SystemExit(f"no geological_similarity-part*.tar.xz under {source} (set GEOSIM_REAL_DATA)")
    for archive in archives:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    (target / ".complete").touch()
    return target


def collection(name: str, work: Path) -> Path:
    """The folder of a development collection, generated on first use."""
    if name == "real28":
        return real_data_dir(work)
    target = work / name
    if (target / ".complete").exists():
        return target
    if name == "mosaics":
        write_mosaic_collection(real_data_dir(work), target, tiles=8, seed=0, progress=True)
    elif name == "textures":
        for seed, size in enumerate((256, 320, 400)):
            write_texture_collection(target, classes=5, per_class=27 if seed < 2 else 26, size=size, seed=seed,
                                     max_aspect=1.5, prefix=f"s{seed}_", progress=True)
    elif name == "lab1500":
        write_texture_collection(target, classes=3, per_class=500, size=380, seed=11, max_aspect=1.32, grey=True,
                                 progress=True)
    else:
        raise SystemExit(f"unknown collection {name!r}")
    (target / ".complete").touch()
    return target


def machine() -> dict:
    return {
        "nproc": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def run_training(args: argparse.Namespace) -> dict:
    data = collection(args.collection, args.work)
    out = args.work / f"{args.collection}.pt"
    epochs: list[dict] = []
    started, started_cpu = time.perf_counter(), time.process_time()
    summary = train(data, out, TrainConfig(epochs=args.epochs, seed=args.seed), on_epoch=epochs.append)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    metrics = summary["metrics"]
    test_keys = Embedder.from_checkpoint(out).checkpoint.data["test_keys"]
    shipped = evaluate_folder(Embedder.from_checkpoint(SHIPPED), data, keys=test_keys)
    result = {
        "collection": args.collection,
        "command": " ".join(sys.argv),
        "images": summary["data"]["images"],
        "split": summary["data"]["split"],
        "geometry": summary["geometry"],
        "epochs": summary["training"]["epochs"],
        "train_wall_s": round(wall, 1),
        "train_cpu_s": round(cpu, 1),
        "load_average_at_end": [round(v, 1) for v in os.getloadavg()],
        "train_s_to_last_epoch": epochs[-1]["elapsed"] if epochs else None,
        "best_epoch": metrics["best_epoch"],
        "test": {k: round(v, 4) for k, v in metrics["test"].items()},
        "val": {k: round(v, 4) for k, v in metrics["val"].items()},
        "shipped_model_test": {k: round(shipped[k], 4) for k in METRICS},
        "baselines_test": {
            name: {k: round(v, 4) for k, v in values.items()} for name, values in metrics["baselines_test"].items()
        },
        "machine": machine(),
    }
    return result


def _median_ms(function, repeats: int) -> dict:
    """Median wall and process-CPU milliseconds of ``function()`` (CPU time is what other load on the
    machine changes least: with one thread it is the wall time an idle machine would show)."""
    function()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall_ms": round(1000 * float(np.median(wall)), 1), "cpu_ms": round(1000 * float(np.median(cpu)), 1)}


def run_embedding(args: argparse.Namespace) -> dict:
    embedder = Embedder.from_checkpoint(args.checkpoint)
    rng = np.random.default_rng(0)
    images = {
        "28x28": Image.fromarray(rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)),
        "500x380": Image.fromarray(rng.integers(0, 256, (380, 500, 3), dtype=np.uint8)),
        "6000x4000": Image.fromarray(
            np.asarray(Image.fromarray(rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)).resize((6000, 4000)))
        ),
    }
    timings = {
        name: _median_ms(lambda image=image: embedder.embed_images([image]), 3 if name == "6000x4000" else 20)
        for name, image in images.items()
    }
    buffer = io.BytesIO()
    images["6000x4000"].save(buffer, format="JPEG", quality=90)

    def decode(draft: bool) -> None:
        with Image.open(io.BytesIO(buffer.getvalue())) as photo:
            if draft:
                photo.draft("RGB", (photo.width // 8, photo.height // 8))
            photo.load()

    return {
        "checkpoint": str(args.checkpoint),
        "command": " ".join(sys.argv),
        "geometry": embedder.geometry.to_dict(),
        "embed_ms": timings,
        "decode_6000x4000_jpeg_ms": _median_ms(lambda: decode(False), 3),
        "decode_6000x4000_jpeg_at_1_8_ms": _median_ms(lambda: decode(True), 3),
        "load_average_at_end": [round(v, 1) for v in os.getloadavg()],
        "machine": machine(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    training = sub.add_parser("train")
    training.add_argument("--collection", choices=("real28", "mosaics", "textures", "lab1500"), required=True)
    training.add_argument("--epochs", type=int, default=None, help="default: the recipe's own choice")
    training.add_argument("--seed", type=int, default=0)
    embedding = sub.add_parser("embed")
    embedding.add_argument("--checkpoint", type=Path, required=True)
    for command in (training, embedding):
        command.add_argument("--threads", type=int, default=1)
        command.add_argument("--work", type=Path, default=ROOT / "var" / "bench-model")
        command.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.command == "train":
        result = run_training(args)
        name = f"model_train_{args.collection}"
    else:
        result = run_embedding(args)
        name = f"model_embed_{Path(args.checkpoint).stem}"
    text = json.dumps(result, indent=2)
    print(text)
    out = args.out or RESULTS_DIR / f"{name}.json"
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
