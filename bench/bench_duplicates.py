"""Near-duplicate detection on real images: precision and recall of the rule for a sweep of thresholds.

    DEBUG=1 python bench/bench_duplicates.py --quick          # ~1 minute: 3,000 real images, 200 copied
    DEBUG=1 python bench/bench_duplicates.py                  # all 28,498 real images, 1,000 copied

A collection of real 28×28 rock images (seeded sample of /tmp/geosim-data/geological_similarity, or
``--data``) gets, for ``--originals`` of them, one generated copy per transform in :data:`TRANSFORMS`
(JPEG re-encoded at quality 40 and 20, resized up 2× and down to 75 %, cropped 5 % and 10 %, brightened
15 %, colour-shifted, and a crop + resize + re-encode combination). Everything is embedded with the
shipped model (``training/weights/default.pt``, the same TTA the service uses) and fingerprinted with
:func:`search.imaging.pixel_fingerprint`.

Ground truth: an original and its copies form a family; every pair inside a family is a near-duplicate,
every other pair (distinct real images, same rock type or not, and copies of different originals) is not.
Two rules are swept:
- the embedding alone: cosine ≥ t among each image's ``NEIGHBOURS`` nearest (FAISS, exact inner product),
  what a k-NN job over the index could propose;
- the service's rule (search/services/duplicates.py): every pair whose pixel fingerprints correlate ≥ f
  (exact, all pairs: search.services.duplicates.close_pairs) and whose embeddings' cosine is ≥ t.
For each threshold pair the report gives
- ``recall``: share of copy↔original pairs the rule accepts (and per transform),
- ``precision``: share of the pairs the rule accepts that are true duplicates,
- ``false_pairs_per_1000``: wrongly accepted pairs per 1,000 collection images (copies included),
- ``real_pairs_per_1000``: of those, pairs of two distinct real images (what a job on the real set proposes:
  some are visually near-identical patches of the dataset itself, see docs/PERFORMANCE.md),
Results: bench/results/duplicates_<collection size>.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "geosim_site.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from search.imaging import FINGERPRINT_EDGE, pixel_fingerprint  # noqa: E402
from search.services.duplicates import MIN_CORRELATION, MIN_COSINE, close_pairs  # noqa: E402
from training.inference import Embedder  # noqa: E402

DATA = Path("/tmp/geosim-data/geological_similarity")
CHECKPOINT = Path(__file__).resolve().parent.parent / "training" / "weights" / "default.pt"
RESULTS = Path(__file__).resolve().parent / "results"
EMBEDDING_THRESHOLDS = (0.0, 0.2, 0.3, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
NEIGHBOURS = 10  # the embedding-alone baseline: each image's nearest
PIXEL_THRESHOLDS = (0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.95)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    """Cut ``fraction`` of each side's length away, off-centre (more from the left and top)."""
    w, h = image.size
    dx, dy = max(1, round(w * fraction)), max(1, round(h * fraction))
    left, top = (dx + 1) // 2, (dy + 1) // 2
    return image.crop((left, top, w - (dx - left), h - (dy - top)))


def _colour_shift(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float32) * np.array([1.08, 1.0, 0.9], dtype=np.float32)
    return ImageEnhance.Color(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))).enhance(1.2)


TRANSFORMS = {
    "jpeg_q40": lambda im: _jpeg(im, 40),
    "jpeg_q20": lambda im: _jpeg(im, 20),
    "resize_up_2x": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC),
    "resize_down_75": lambda im: im.resize((round(im.width * 0.75), round(im.height * 0.75)), Image.Resampling.BOX),
    "crop_5pct": lambda im: _crop(im, 0.05),
    "crop_10pct": lambda im: _crop(im, 0.10),
    "brightness_15pct": lambda im: ImageEnhance.Brightness(im).enhance(1.15),
    "colour_shift": _colour_shift,
    "crop_resize_jpeg": lambda im: _jpeg(_crop(im, 0.05).resize((56, 56), Image.Resampling.BICUBIC), 60),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--collection", type=int, default=0, help="real images in the collection (0: all)")
    parser.add_argument("--originals", type=int, default=1000, help="real images that get generated copies")
    parser.add_argument("--quick", action="store_true", help="3,000 real images, 200 copied")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edge", type=int, default=FINGERPRINT_EDGE, help="fingerprint edge in pixels")
    parser.add_argument("--cache", type=Path, default=None, help="reuse/save the embeddings here (.npy)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.collection, args.originals = 3000, 200
    rng = np.random.default_rng(args.seed)

    paths = sorted(args.data.glob("*/*.jpg"))
    if not paths:
        sys.exit(f"No images under {args.data}/<class>/*.jpg")
    if args.collection and args.collection < len(paths):
        paths = [paths[i] for i in sorted(rng.choice(len(paths), args.collection, replace=False))]
    originals = sorted(rng.choice(len(paths), min(args.originals, len(paths)), replace=False))

    started = time.perf_counter()
    images = [Image.open(path).convert("RGB") for path in paths]
    family = list(range(len(images)))  # an image's family: the index of its original
    kinds = ["real"] * len(images)
    for index in originals:
        for name, transform in TRANSFORMS.items():
            images.append(transform(images[index]))
            family.append(int(index))
            kinds.append(name)
    family_of = np.asarray(family)
    if args.cache and args.cache.exists() and len(np.load(args.cache)) == len(images):
        vectors = np.load(args.cache)
    else:
        vectors = np.ascontiguousarray(Embedder.from_checkpoint(args.checkpoint).embed_images(images), dtype=np.float32)
        if args.cache:
            np.save(args.cache, vectors)
    fingerprints = np.ascontiguousarray(np.stack([pixel_fingerprint(image, edge=args.edge) for image in images]))
    embed_s = time.perf_counter() - started

    # Embedding alone: what a kNN job over the index could propose, each image's NEIGHBOURS nearest.
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, ids = index.search(vectors, NEIGHBOURS + 1)
    knn_pairs = {(min(i, int(j)), max(i, int(j))) for i in range(len(images)) for j in ids[i] if j >= 0 and j != i}
    # Embedding and pixels: the service's job, every pair whose fingerprints correlate enough (exact range search).
    first, second, _ = close_pairs(fingerprints, min(PIXEL_THRESHOLDS))
    range_pairs = set(zip(first.tolist(), second.tolist(), strict=True))
    timed = time.perf_counter()
    close_pairs(fingerprints[: len(paths)], MIN_CORRELATION)  # the job's pair search on the real images
    pair_search_s = time.perf_counter() - timed
    copies = np.arange(len(paths), len(images))
    copy_kind = np.array([kinds[c] for c in copies])
    copy_cosine = np.einsum("ij,ij->i", vectors[copies], vectors[family_of[copies]])
    copy_correlation = np.einsum("ij,ij->i", fingerprints[copies], fingerprints[family_of[copies]])

    def pair_arrays(pairs: set[tuple[int, int]]):
        ordered = sorted(pairs)
        a = np.array([p[0] for p in ordered], dtype=np.int64)
        b = np.array([p[1] for p in ordered], dtype=np.int64)
        cosine = np.einsum("ij,ij->i", vectors[a], vectors[b])
        correlation = np.einsum("ij,ij->i", fingerprints[a], fingerprints[b])
        return cosine, correlation, family_of[a] == family_of[b], b < len(paths)  # a < b: both real if b is

    knn = pair_arrays(knn_pairs)
    exact = pair_arrays(range_pairs)
    copy_in_knn = np.array([(int(family_of[c]), int(c)) in knn_pairs for c in copies])

    def rule_row(t: float, f: float | None) -> dict:
        cosine, correlation, duplicate, both_real = knn if f is None else exact
        accepted = cosine >= t if f is None else (cosine >= t) & (correlation >= f)
        found = copy_in_knn & (copy_cosine >= t) if f is None else (copy_cosine >= t) & (copy_correlation >= f)
        false = int((accepted & ~duplicate).sum())
        true = int((accepted & duplicate).sum())
        real_false = int((accepted & ~duplicate & both_real).sum())
        return {
            "embedding_threshold": t,
            "pixel_threshold": f,
            "precision": round(true / max(true + false, 1), 4),
            "recall": round(float(found.mean()), 4),
            "false_pairs": false,
            "false_pairs_per_1000": round(1000 * false / len(paths), 2),
            "real_pairs_per_1000": round(1000 * real_false / len(paths), 2),
            "recall_by_transform": {k: round(float(found[copy_kind == k].mean()), 3) for k in TRANSFORMS},
        }

    embedding_only = [rule_row(t, None) for t in EMBEDDING_THRESHOLDS]
    combined = [rule_row(t, f) for t in EMBEDDING_THRESHOLDS for f in PIXEL_THRESHOLDS]
    chosen = rule_row(MIN_COSINE, MIN_CORRELATION)
    distinct = ~knn[2]
    result = {
        "collection": len(paths),
        "originals_copied": len(originals),
        "copies": len(copies),
        "transforms": list(TRANSFORMS),
        "neighbours": NEIGHBOURS,
        "checkpoint": str(args.checkpoint),
        "embed_and_fingerprint_s": round(embed_s, 1),
        "pair_search_s": round(pair_search_s, 2),
        "copy_original_in_knn": round(float(copy_in_knn.mean()), 4),
        "quantiles": {
            "copy_original_cosine": _quantiles(copy_cosine),
            "copy_original_pixel_correlation": _quantiles(copy_correlation),
            "distinct_knn_neighbour_cosine": _quantiles(knn[0][distinct]),
            "distinct_knn_neighbour_pixel_correlation": _quantiles(knn[1][distinct]),
        },
        "default": chosen,
        "embedding_only": embedding_only,
        "embedding_and_pixels": combined,
    }
    out = args.out or RESULTS / f"duplicates_{len(paths)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    _print_table(f"embedding alone (cosine ≥ t among each image's {NEIGHBOURS} nearest)", embedding_only)
    _print_table(
        f"embedding and pixels (correlation ≥ {MIN_CORRELATION})",
        [row for row in combined if row["pixel_threshold"] == MIN_CORRELATION],
    )
    print(f"default: {json.dumps(chosen)}")
    print(f"pair search over the {len(paths)} real images' fingerprints: {pair_search_s:.2f} s")
    print(f"written to {out}")


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    qs = (0.01, 0.05, 0.5, 0.95, 0.99)
    return {f"p{round(q * 100)}": round(float(np.quantile(values, q)), 4) for q in qs}


def _print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'t':>7} {'precision':>9} {'recall':>7} {'false/1000':>10} {'real/1000':>9}")
    for row in rows:
        print(
            f"{row['embedding_threshold']:>7} {row['precision']:>9.4f} {row['recall']:>7.4f} "
            f"{row['false_pairs_per_1000']:>10.2f} {row['real_pairs_per_1000']:>9.2f}"
        )


if __name__ == "__main__":
    main()
