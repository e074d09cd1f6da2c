"""Embedding speed of a checkpoint: ``python -m training.speed --checkpoint C [--threads N]``.

Reports the median latency of embedding one image (PIL image in, vector out, TTA included) and the
throughput of ``embed_arrays`` on batches of 256 uint8 images. Numbers depend on the CPU and on what
else runs on it; the model card quotes them with the thread count used.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .inference import Embedder


def measure_speed(embedder: Embedder, batch_images: int = 4096, repeats: int = 200, seed: int = 0) -> dict:
    """``{"single_image_ms": median ms for one PIL image, "batch_images_per_s": images/s in batches of 256}``."""
    rng = np.random.default_rng(seed)
    size = embedder.input_size
    pixels = rng.integers(0, 256, (batch_images, size, size, 3), dtype=np.uint8)
    one = Image.fromarray(pixels[0])
    for _ in range(10):
        embedder.embed_images([one])
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        embedder.embed_images([one])
        latencies.append(time.perf_counter() - start)
    embedder.embed_arrays(pixels[:512])
    start = time.perf_counter()
    embedder.embed_arrays(pixels, batch_size=256)
    elapsed = time.perf_counter() - start
    return {
        "single_image_ms": round(1000 * float(np.median(latencies)), 3),
        "batch_images_per_s": round(batch_images / elapsed, 1),
        "tta": embedder.tta,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(measure_speed(Embedder.from_checkpoint(args.checkpoint))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
