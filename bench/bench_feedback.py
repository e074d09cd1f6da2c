"""Relevance feedback on the real collection: P@10 before and after one round of marking the first page.

    python -m training.embed --checkpoint training/weights/default.pt \
        --data /tmp/geosim-data/geological_similarity --out /tmp/real_embeddings.npz
    DEBUG=1 python bench/bench_feedback.py --embeddings /tmp/real_embeddings.npz

For each of ``--queries`` seeded query images: the 10 nearest other images (exact inner product over
all 28,498), P@10 by rock type; then a user marks those 10 by their labels (same rock type as the query:
"more like this", else "less like this") and the search is refined with the service's own Rocchio rule
(search.services.feedback.rocchio). Reported: P@10 of the refined top 10, and P@10 of the residual
ranking (the refined list without the 10 already judged: what the user has not seen yet), overall and
for the queries whose first page was not already perfect. Results: bench/results/feedback_real.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "geosim_site.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

from search.services.feedback import ALPHA, BETA, GAMMA, rocchio  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "feedback_real.json"
PAGE = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embeddings", type=Path, required=True, help="npz from python -m training.embed")
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    data = np.load(args.embeddings)
    vectors = np.ascontiguousarray(data["embeddings"], dtype=np.float32)
    labels = np.asarray(data["labels"])
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    queries = np.random.default_rng(args.seed).choice(len(vectors), min(args.queries, len(vectors)), replace=False)

    started = time.perf_counter()
    before, after_top, after_unseen = [], [], []
    for q in queries:
        first = _ranked(index, vectors[q : q + 1], exclude={int(q)}, count=PAGE)
        relevant = labels[first] == labels[q]
        before.append(relevant.mean())
        positive = [vectors[i] for i in first[relevant]]
        negative = [vectors[i] for i in first[~relevant]]
        refined = rocchio(vectors[q], positive, negative)
        top = _ranked(index, refined, exclude={int(q)}, count=PAGE)
        after_top.append((labels[top] == labels[q]).mean())
        unseen = _ranked(index, refined, exclude={int(q), *map(int, first)}, count=PAGE)
        after_unseen.append((labels[unseen] == labels[q]).mean())
    before, after_top, after_unseen = map(np.asarray, (before, after_top, after_unseen))
    hard = before < 1.0

    result = {
        "embeddings": str(args.embeddings),
        "images": int(len(vectors)),
        "queries": int(len(queries)),
        "seed": args.seed,
        "weights": {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA},
        "p_at_10_before": round(float(before.mean()), 4),
        "p_at_10_after_refined_top10": round(float(after_top.mean()), 4),
        "p_at_10_after_unseen_top10": round(float(after_unseen.mean()), 4),
        "hard_queries": int(hard.sum()),
        "hard_p_at_10_before": round(float(before[hard].mean()), 4) if hard.any() else None,
        "hard_p_at_10_after_refined_top10": round(float(after_top[hard].mean()), 4) if hard.any() else None,
        "hard_p_at_10_after_unseen_top10": round(float(after_unseen[hard].mean()), 4) if hard.any() else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def _ranked(index: faiss.Index, query: np.ndarray, *, exclude: set[int], count: int) -> np.ndarray:
    _, ids = index.search(np.ascontiguousarray(query, dtype=np.float32), count + len(exclude))
    return np.array([i for i in ids[0] if i >= 0 and int(i) not in exclude][:count])


if __name__ == "__main__":
    main()
