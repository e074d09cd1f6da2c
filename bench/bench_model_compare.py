"""The shipped checkpoint against the one it replaced, on real images neither of them was trained on.

    python bench/bench_model_compare.py [--new training/weights/default.pt] \
        [--old tests/training/data/format1_default.pt] [--data /tmp/geosim-data]

The new checkpoint's test split (``data.test_keys``) was held out of its training, its epoch choice and its
calibration. The old checkpoint was trained on part 1 of the shared data only, so the images of its test
split that come from part 2 (``geological_similarity-part2.tar.xz``) are unseen by both: on them (as queries
and gallery, leave-one-out) the two are compared fairly, with 95 % bootstrap intervals of the difference
(paired: the same queries). Also measured on the new test split: the baselines of ``training.baselines``
(colour/gradient histograms, raw pixels, an untrained CNN) and the new checkpoint's metrics with and
without flip/rotation averaging. Writes ``bench/results/model_compare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_calibration import _bootstrap, _real_data  # noqa: E402
from training.baselines import baseline_metrics  # noqa: E402
from training.data import image_key, load_image_folder  # noqa: E402
from training.inference import Embedder  # noqa: E402
from training.metrics import per_query_metrics  # noqa: E402

RESULTS = REPO / "bench" / "results"


def _part2_keys() -> set[str]:
    shared = Path(os.environ.get("GEOSIM_REAL_DATA", REPO.parent / "shared" / "data"))
    archive = shared / "geological_similarity-part2.tar.xz"
    if not archive.exists():
        sys.exit(f"{archive} is missing: the fair comparison needs to know which images are from part 2")
    with tarfile.open(archive) as tf:
        return {"/".join(m.name.split("/")[-2:]) for m in tf.getmembers() if m.isfile()}


def _summary(per_query: dict[str, np.ndarray], rng: np.random.Generator) -> dict:
    return {
        name: {"value": round(float(values.mean()), 5), "ci95": _bootstrap(values, rng)}
        for name, values in per_query.items()
    }


def _paired_difference(new: dict, old: dict, rng: np.random.Generator, resamples: int = 2000) -> dict:
    out = {}
    for name in new:
        diff = new[name] - old[name]
        picks = rng.integers(0, len(diff), (resamples, len(diff)))
        means = diff[picks].mean(axis=1)
        out[name] = {
            "value": round(float(diff.mean()), 5),
            "ci95": [round(float(np.percentile(means, 2.5)), 5), round(float(np.percentile(means, 97.5)), 5)],
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new", type=Path, default=REPO / "training" / "weights" / "default.pt")
    parser.add_argument("--old", type=Path, default=REPO / "tests" / "training" / "data" / "format1_default.pt")
    parser.add_argument("--data", type=Path, default=None, help="folder holding geological_similarity/")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    new, old = Embedder.from_checkpoint(args.new), Embedder.from_checkpoint(args.old)
    test_keys = set(new.checkpoint.data["test_keys"])
    old_heldout = set(old.checkpoint.data.get("test_keys", [])) | set(old.checkpoint.data.get("val_keys", []))
    part2 = _part2_keys()
    data = _real_data(args.data)
    test = load_image_folder(data, class_names=new.class_names, keep=lambda p: image_key(p) in test_keys)
    keys = [image_key(p) for p in test.paths]
    unseen = np.array([k in part2 for k in keys])
    if old_heldout & part2 or not old_heldout:
        sys.exit("the old checkpoint does not record a part-1 split: it is not the model trained on part 1 only")

    result: dict = {
        "new": str(args.new), "old": str(args.old), "test_images": len(test), "unseen_by_both": int(unseen.sum()),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
    }
    new_emb = new.embed_arrays(test.images)
    result["new_test_split"] = _summary(per_query_metrics(new_emb, test.labels, "cosine"), rng)
    checkpoint = new.checkpoint
    plain = Embedder(checkpoint.model, mean=checkpoint.mean, std=checkpoint.std, geometry=new.geometry, tta=False)
    plain_emb = plain.embed_arrays(test.images)
    result["new_test_split_no_tta"] = _summary(per_query_metrics(plain_emb, test.labels, "cosine"), rng)

    sub_labels = test.labels[unseen]
    per_new = per_query_metrics(new_emb[unseen], sub_labels, "cosine")
    per_old = per_query_metrics(old.embed_arrays(test.images[unseen]), sub_labels, "cosine")
    result["unseen_by_both"] = {
        "queries": int(unseen.sum()),
        "new": _summary(per_new, rng),
        "old": _summary(per_old, rng),
        "new_minus_old": _paired_difference(per_new, per_old, rng),
    }
    result["baselines_new_test_split"] = baseline_metrics(
        test.images, test.labels, checkpoint.architecture, checkpoint.mean, checkpoint.std, 0, new.geometry
    )
    out = RESULTS / "model_compare.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("new_test_split", "unseen_by_both")}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
