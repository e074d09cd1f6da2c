"""Screenshots of the pages for the docs, and the explorer's load time at 30,000 points.

    python -m tests.browser.screenshots --checkpoint MODEL.pt [--data DIR] [--per-class 60] [--out docs/images]

Builds a throwaway GeoSim (SQLite, in-process tasks) in a temporary folder: imports ``--per-class``
images of each rock type from ``--data`` (a class-per-folder tree; generated demo textures when
absent), serves it with ``runserver`` and drives Chromium: ``search.png`` (an upload with results)
and ``explore.png``. Then it swaps in a synthetic 30,000-point projection and times the explorer from
navigation to the first drawn frame. PNGs are palette-quantised to stay small.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pick_images(data: Path, per_class: int, target: Path) -> Path:
    """Copy the first ``per_class`` images of each class into ``target``; return one held-out image."""
    held_out = None
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        (target / folder.name).mkdir(parents=True)
        for path in files[:per_class]:
            shutil.copyfile(path, target / folder.name / path.name)  # the importer skips symlinks
        if held_out is None and len(files) > per_class:
            held_out = files[per_class]
    return held_out


def _save_small_png(raw: bytes, path: Path) -> int:
    from PIL import Image

    image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=192, method=Image.Quantize.MEDIANCUT, dither=0)
    image.save(path, format="PNG", optimize=True)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("/tmp/geosim-data/geological_similarity"))
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--bench-points", type=int, default=30_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="geosim-shots-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "geosim_site.settings",
        "DEBUG": "1",
        "GEOSIM_DATA_DIR": str(work / "data"),
        "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
        "GEOSIM_DEFAULT_CHECKPOINT": str(args.checkpoint.resolve()),
        # ORM calls between browser steps run beside Playwright's event loop; they are plain blocking calls.
        "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
    }
    env.pop("REDIS_URL", None)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    tree = work / "collection"
    if args.data.is_dir():
        query_file = _pick_images(args.data, args.per_class, tree)
    else:
        from search.demo_textures import write_demo_dataset

        write_demo_dataset(tree, per_class=args.per_class + 1)
        query_file = next(tree.rglob("*.png"), None) or next(tree.rglob("*.*"))
    call_command("import_images", str(tree))

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        _shoot(base, query_file, args)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _shoot(base: str, query_file: Path, args) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(base + "/")
        page.select_option("select[name=k]", "10")
        with page.expect_navigation():
            page.set_input_files("input[name=image]", str(query_file))
        page.wait_for_load_state("networkidle")
        size = _save_small_png(page.screenshot(full_page=False), args.out / "search.png")
        print(f"search.png: {size / 1000:.0f} kB, {page.locator('.hit').count()} results")

        page.goto(base + "/explore/")
        page.wait_for_selector("#explorer[data-drawn]")
        page.wait_for_timeout(300)
        size = _save_small_png(page.screenshot(full_page=False), args.out / "explore.png")
        print(f"explore.png: {size / 1000:.0f} kB, {page.get_attribute('#explorer', 'data-points')} points")

        _bench_explorer(page, base, args.bench_points)
        browser.close()


def _bench_explorer(page, base: str, points: int) -> None:
    """Replace the live projection with ``points`` synthetic points and time the explorer's first frame."""
    import gzip

    import numpy as np

    from search.models import IndexVersion
    from search.services import projection

    live = IndexVersion.objects.get(is_active=True)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=points)
    xyz = np.clip(rng.normal(size=(points, 3)) * 300 + labels[:, None] * 60 - 150, -1000, 1000).astype(int)
    payload = {
        "format": projection.FORMAT,
        "method": "pca",
        "index_version": live.version,
        "model_version": "synthetic",
        "total": points,
        "count": points,
        "labels": ["andesite", "gneiss", "marble", "quartzite", "rhyolite", "schist"],
        "ids": list(range(1, points + 1)),
        "label": labels.tolist(),
        "xyz": xyz.ravel().tolist(),
    }
    data = gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0)
    projection.projection_path(live.version, "pca").write_bytes(data)
    for attempt in range(2):  # the second load is with a warm browser cache for the immutable data file
        started = time.perf_counter()
        page.goto(base + "/explore/")
        page.wait_for_selector("#explorer[data-drawn]")
        elapsed = time.perf_counter() - started
        frame = page.evaluate(
            """() => new Promise(done => {
                 const c = document.querySelector('#explorer canvas'); const r = c.getBoundingClientRect();
                 const t = performance.now(), at = (x, y) => ({clientX: r.x + x, clientY: r.y + y, pointerId: 1});
                 c.dispatchEvent(new PointerEvent('pointerdown', at(100, 100)));
                 c.dispatchEvent(new PointerEvent('pointermove', at(160, 120)));
                 requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t)));
               })"""
        )
        label = "cold" if attempt == 0 else "warm"
        print(
            f"explorer at {points} points ({label}): {elapsed * 1000:.0f} ms to the first frame; "
            f"data file {len(data) / 1000:.0f} kB gzipped; a rotation frame {frame:.0f} ms"
        )


if __name__ == "__main__":
    main()
