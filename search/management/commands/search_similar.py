"""python manage.py search_similar IMAGE [-k 5] [--region x,y,w,h] [--json]"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from search.engine import IndexUnavailable, UnknownLabel, answer_payload, search_by_bytes
from search.filters import FilterError, parse_filters
from search.imaging import ImageRejected
from search.labels import normalize_label
from search.limits import MAX_K, k_error
from search.regions import InvalidRegion, parse_region

FILTER_OPTIONS = ("collection", "tag", "depth_min", "depth_max", "bbox")


class Command(BaseCommand):
    help = "Top-K most similar images of the collection to an image file, from the live index."

    def add_arguments(self, parser) -> None:
        parser.add_argument("image", type=Path)
        parser.add_argument("-k", type=int, default=5, help=f"number of results (1–{MAX_K})")
        parser.add_argument("--label", help="only images of this rock type")
        parser.add_argument(
            "--region", help="search with this part of the image: x,y,w,h in pixels (after EXIF orientation)"
        )
        parser.add_argument("--collection", help="only images of this collection")
        parser.add_argument("--tag", help="only images with this tag")
        parser.add_argument("--depth-min", help="only images at least this deep (m)")
        parser.add_argument("--depth-max", help="only images at most this deep (m)")
        parser.add_argument("--bbox", help="only images within min_lon,min_lat,max_lon,max_lat")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the API's JSON answer")

    def handle(
        self, *args, image: Path, k: int, label: str | None, region: str | None, as_json: bool, **options
    ) -> None:
        if k_error(k):
            raise CommandError(k_error(k))
        try:
            label = normalize_label(label)
        except ImageRejected as exc:
            raise CommandError(str(exc)) from None
        try:
            filters = parse_filters({"label": label, **{name: options.get(name) for name in FILTER_OPTIONS}})
        except FilterError as exc:
            raise CommandError(f"--{exc.param.replace('_', '-')}: {exc.message}") from None
        try:
            area = parse_region(region)
        except InvalidRegion as exc:
            raise CommandError(f"--region: {exc}") from None
        try:
            data = image.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {image}: {exc.strerror}.") from None
        try:
            answer = search_by_bytes(data, k=k, filters=filters, region=area)
        except (ImageRejected, InvalidRegion, IndexUnavailable, UnknownLabel) as exc:
            raise CommandError(str(exc)) from None
        payload = answer_payload(answer)
        if as_json:
            self.stdout.write(json.dumps(payload, indent=2))
            return
        self.stdout.write(
            f"Predicted rock type: {answer.predicted_label or '—'}   "
            f"(model {answer.model_version}, index v{answer.index_version}, {answer.took_ms:.1f} ms)"
        )
        for rank, hit in enumerate(payload["results"], 1):
            box = f"  match {','.join(map(str, hit['match_box']))}" if "match_box" in hit else ""
            self.stdout.write(
                f"{rank:>3}. #{hit['id']:<8} similarity {hit['similarity']:.2f}  cosine {hit['score']:.4f}  "
                f"{hit['label'] or '—':<12} {hit['image_url']}{box}"
            )
