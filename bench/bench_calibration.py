"""Benchmark a checkpoint on the real images it never saw: quality with confidence intervals, calibration, speed.

    python bench/bench_calibration.py [--checkpoint training/weights/default.pt] [--data /tmp/geosim-data]

``--data`` holds the real images (e.g. both shared archives extracted:
``for a in ../shared/data/geological_similarity-part*.tar.xz; do tar -xJf "$a" -C /tmp/geosim-data; done``);
without it the archives under ``GEOSIM_REAL_DATA`` (default ``../shared/data``) are extracted to a temp dir.
The held-out images are the checkpoint's own test split (``data.test_keys``, never used for training,
for choosing an epoch or for fitting the calibration, which uses the validation split).

1. Retrieval, leave-one-out within the test split: P@1, P@5, MAP@R, R-precision, each with a 95 %
   bootstrap interval over queries (2,000 resamples), and the top-1 confusion table.
2. Calibration of ``similarity`` (the issue's protocol): 40 test images drawn at random (seed 0) query
   the test split, top 20 results each, 800 pairs; expected calibration error over 10 equal-width bins
   and the Brier score. The same over 20 other draws (spread), over every test query, and with the whole
   collection as the gallery (queries from the test split, results from all images, training ones
   included: what a search of the service returns). The raw cosine's range over those results too.
3. Speed: ``training.speed.measure_speed`` (one 28×28 image, PIL in, vector out; batches of 256).

Writes ``bench/results/calibration_<checkpoint stem>.json`` and the reliability plot
``training/weights/<checkpoint stem>_reliability.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from training.calibration import neighbour_pairs, reliability  # noqa: E402
from training.data import image_key, load_image_folder  # noqa: E402
from training.inference import Embedder  # noqa: E402
from training.metrics import per_query_metrics, top1_confusion  # noqa: E402
from training.speed import measure_speed  # noqa: E402

RESULTS = REPO / "bench" / "results"
QUERIES, RESULTS_PER_QUERY, BINS = 40, 20, 10


def _real_data(data: Path | None) -> Path:
    if data is not None:
        return data
    shared = Path(os.environ.get("GEOSIM_REAL_DATA", REPO.parent / "shared" / "data"))
    archives = sorted(shared.glob("geological_similarity-part*.tar.xz"))
    if not archives:
        sys.exit(f"no geological_similarity-part*.tar.xz under {shared}: this benchmark needs the real images")
    target = Path(tempfile.mkdtemp(prefix="geosim-bench-model-"))
    for archive in archives:
        with tarfile.open(archive) as tf:
            tf.extractall(target, filter="data")
    return target


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def _bootstrap(values: np.ndarray, rng: np.random.Generator, resamples: int = 2000) -> list[float]:
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 5), round(float(np.percentile(means, 97.5)), 5)]


def _calibration_on(embedder, embeddings, labels, queries) -> dict:
    cosines, same = neighbour_pairs(embeddings, labels, RESULTS_PER_QUERY, queries=queries)
    similarity = embedder.checkpoint.calibration.similarity(cosines)
    result = reliability(similarity, same, bins=BINS).to_dict()
    result["cosine_range"] = [round(float(cosines.min()), 5), round(float(cosines.max()), 5)]
    result["similarity_range"] = [round(float(similarity.min()), 5), round(float(similarity.max()), 5)]
    result["same_type_share"] = round(float(same.mean()), 5)
    return result


def _plot(bins: list[dict], path: Path, title: str) -> None:
    """Reliability diagram (observed share against mean predicted, per bin) over a histogram of the bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.6, 5.2), dpi=90, height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    filled = [b for b in bins if b["count"]]
    ax.plot([b["mean_predicted"] for b in filled], [b["observed"] for b in filled], marker="o", label="model")
    for b in filled:
        ax.annotate(
            str(b["count"]),
            (b["mean_predicted"], b["observed"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
            color="grey",
        )
    ax.set_ylabel("share of results of the same rock type")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    hist.bar([b["low"] for b in bins], [b["count"] for b in bins], width=1 / len(bins), align="edge")
    hist.set_yscale("log")
    hist.set_xlabel("similarity (calibrated probability of the same rock type)")
    hist.set_ylabel("results")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=REPO / "training" / "weights" / "default.pt")
    parser.add_argument("--data", type=Path, default=None, help="folder holding geological_similarity/")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embedding and the speed test")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    embedder = Embedder.from_checkpoint(args.checkpoint)
    loaded = embedder.checkpoint
    data = _real_data(args.data)
    collection = load_image_folder(data, geometry=embedder.geometry, class_names=embedder.class_names)
    test_keys = set(loaded.data.get("test_keys", []))
    is_test = np.array([image_key(path) in test_keys for path in collection.paths])
    if is_test.sum() < 2:
        sys.exit(f"fewer than two of the checkpoint's test images are under {data}")
    embeddings = embedder.embed_arrays(collection.images)
    test_embeddings, test_labels = embeddings[is_test], collection.labels[is_test]
    rng = np.random.default_rng(0)

    per_query = per_query_metrics(test_embeddings, test_labels)
    retrieval = {
        name: {"value": round(float(values.mean()), 5), "ci95": _bootstrap(values, rng)}
        for name, values in per_query.items()
    }
    classes, table = top1_confusion(test_embeddings, [embedder.class_names[i] for i in test_labels])

    draws = [np.random.default_rng(seed).choice(len(test_labels), QUERIES, replace=False) for seed in range(21)]
    protocol = _calibration_on(embedder, test_embeddings, test_labels, draws[0])
    spread = [_calibration_on(embedder, test_embeddings, test_labels, d) for d in draws[1:]]
    every_query = _calibration_on(embedder, test_embeddings, test_labels, None)
    # Whole collection as gallery: test images query everything (training images included).
    whole = _calibration_on(embedder, embeddings, collection.labels, np.flatnonzero(is_test))

    plot = args.checkpoint.with_name(f"{args.checkpoint.stem}_reliability.png")
    _plot(
        every_query["bins"],
        plot,
        f"{args.checkpoint.name}: {int(is_test.sum())} held-out queries × top {RESULTS_PER_QUERY}\n"
        f"ECE {every_query['ece']:.4f}, Brier {every_query['brier']:.4f}",
    )

    speed = measure_speed(embedder)
    result = {
        "checkpoint": _shown(args.checkpoint),
        "calibration": {"method": loaded.calibration.method, "fitted_on": loaded.calibration.fitted_on},
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "test_images": int(is_test.sum()),
        "collection_images": len(collection),
        "retrieval_test": retrieval,
        "test_top1_confusion": {"classes": classes, "table": table.tolist()},
        "calibration_protocol": {
            "queries": QUERIES,
            "results_per_query": RESULTS_PER_QUERY,
            "bins": BINS,
            "seed": 0,
            **protocol,
        },
        "calibration_protocol_20_more_draws": {
            "ece": [round(r["ece"], 5) for r in spread],
            "brier": [round(r["brier"], 5) for r in spread],
            "ece_max": round(max(r["ece"] for r in spread), 5),
        },
        "calibration_every_test_query": every_query,
        "calibration_whole_collection_gallery": whole,
        "speed": speed,
        "reliability_plot": _shown(plot),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"calibration_{args.checkpoint.stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("retrieval_test", "speed")}, indent=1))
    for key in ("calibration_protocol", "calibration_every_test_query", "calibration_whole_collection_gallery"):
        print(key, {k: result[key][k] for k in ("ece", "brier", "pairs", "cosine_range", "similarity_range")})
    print("ECE over 20 more draws of 40 queries: max", result["calibration_protocol_20_more_draws"]["ece_max"])
    print(f"wrote {out} and {plot}")


if __name__ == "__main__":
    main()
