"""Benchmark training a model from GeoSim and switching searches to it, on a generated lab-like collection.

    python bench/bench_training.py [--per-class 375] [--classes 4] [--size 500x380] [--dataset DIR]

In a fresh GEOSIM_DATA_DIR (a temp dir) on the embedded default (SQLite, tasks in-process; the training
job runs in a background thread, as `make demo` would run it):
1. generates rock textures of several types (``search.demo_textures``), 500×380 px like a lab's
   micrographs, and imports them (`import_images`; thumbnails and embedding with the shipped model);
2. runs `manage.py train_model --activate --wait` with the defaults (nothing tuned): training with
   the recipe's epochs and input geometry, evaluation of the new and the shipped model on the held-out
   split, registration, then re-embedding every image with the new model and the atomic index swap;
3. reports the training and activation times (from the job rows), the held-out metrics of both models,
   and one search through the engine with the new model.
Results go to stdout and bench/results/training_<N>images.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
ROCKS = ("gneiss", "marble", "quartzite", "schist", "andesite", "rhyolite", "gneiss", "marble")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=375)
    parser.add_argument("--classes", type=int, default=4, choices=range(2, 7))
    parser.add_argument("--size", default="500x380", help="WIDTHxHEIGHT of the generated images")
    parser.add_argument("--dataset", type=Path, help="a folder this benchmark generated before (skips generating)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    work = Path(tempfile.mkdtemp(prefix="geosim-bench-training-"))
    os.environ.setdefault("SECRET_KEY", "bench-only")
    os.environ["GEOSIM_DATA_DIR"] = str(work / "var")
    os.environ["DJANGO_SETTINGS_MODULE"] = "geosim_site.settings"
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(REPO))

    import django

    django.setup()
    from django.core.management import call_command

    from search.models import Job, ModelVersion

    call_command("migrate", verbosity=0)
    rocks = ROCKS[: args.classes]
    started = time.perf_counter()
    dataset = args.dataset or _generate(work / "lab", rocks, args.per_class, width, height)
    generated_s = time.perf_counter() - started

    started = time.perf_counter()
    call_command("import_images", str(dataset), stdout=io.StringIO(), stderr=io.StringIO())
    import_s = time.perf_counter() - started

    load_before = os.getloadavg()
    started = time.perf_counter()
    call_command("train_model", "--activate", "--wait", "--name", "bench", stdout=io.StringIO(), verbosity=0)
    total_s = time.perf_counter() - started
    load_after = os.getloadavg()

    train_job = Job.objects.get(kind=Job.Kind.TRAIN_MODEL)
    activation = Job.objects.get(pk=train_job.result["activation_job"])
    model = ModelVersion.objects.get(name="bench")
    checkpoint = _checkpoint_facts(model.checkpoint)
    search = _one_search(dataset, rocks[0])
    results = {
        **_machine(),
        "backend": "sqlite, in-process tasks (training in a background thread)",
        "images": len(rocks) * args.per_class,
        "classes": list(rocks),
        "image_size": [width, height],
        "generate_s": round(generated_s, 1),
        "import_s": round(import_s, 1),
        "train_model_activate_wait_s": round(total_s, 1),
        "training_job_s": _seconds(train_job),
        "activation_job_s": _seconds(activation),
        "epochs": len(train_job.result["epochs"]),
        "geometry": checkpoint["geometry"],
        "metrics": model.metrics,
        "search_with_new_model": search,
        "loadavg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "build_threads": int(os.environ.get("GEOSIM_BUILD_THREADS", "2")),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"training_{results['images']}images.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")


def _generate(root: Path, rocks, per_class: int, width: int, height: int) -> Path:
    from search.demo_textures import generate_texture

    rng = np.random.default_rng(0)
    side = max(width, height)
    for c, rock in enumerate(rocks):
        folder = root / f"{rock}-{c}" if rocks.count(rock) > 1 else root / rock
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            generate_texture(rock, rng, size=side).crop((0, 0, width, height)).save(folder / f"{i:04d}.png")
    return root


def _seconds(job) -> float:
    return round((job.finished_at - job.started_at).total_seconds(), 1)


def _checkpoint_facts(path: str) -> dict:
    from training.checkpoint import load_checkpoint

    loaded = load_checkpoint(path)
    geometry = getattr(loaded, "geometry", None)
    return {"geometry": geometry.to_dict() if geometry is not None else {"input_size": loaded.input_size}}


def _one_search(dataset: Path, rock: str) -> dict:
    from search import engine

    query = next((dataset / rock).iterdir()).read_bytes()
    answer = engine.search_by_bytes(query, k=5)
    answer = engine.search_by_bytes(query, k=5)  # the second one: the model is loaded
    return {
        "model_version": answer.model_version,
        "took_ms": round(answer.took_ms, 1),
        "labels": [hit.image.label for hit in answer.hits],
        "match_boxes": sum(hit.match_box is not None for hit in answer.hits),
    }


def _machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


if __name__ == "__main__":
    main()
