"""Mosaics of real-like patches: one class per mosaic, every patch used at most once, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.devsets import main, write_mosaic_collection

from .conftest import make_image_folder


def test_mosaics_stitch_distinct_patches_of_one_class(tmp_path: Path) -> None:
    source = make_image_folder(tmp_path / "patches", per_class=9)
    written = write_mosaic_collection(source, tmp_path / "mosaics", tiles=2, seed=1)
    mosaics = sorted((tmp_path / "mosaics").rglob("*.png"))
    assert written == len(mosaics) == 3 * (9 // 4)
    patches = {
        folder.name: {np.asarray(Image.open(p)).tobytes() for p in folder.iterdir()} for folder in source.iterdir()
    }
    used: set[bytes] = set()
    for path in mosaics:
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (56, 56, 3)
        for row in range(2):
            for col in range(2):
                tile = np.ascontiguousarray(pixels[row * 28 : (row + 1) * 28, col * 28 : (col + 1) * 28]).tobytes()
                assert tile in patches[path.parent.name], "a patch of another class or a changed patch"
                assert tile not in used, "a patch used twice"
                used.add(tile)
    again = tmp_path / "again"
    write_mosaic_collection(source, again, tiles=2, seed=1)
    assert all((again / p.relative_to(tmp_path / "mosaics")).read_bytes() == p.read_bytes() for p in mosaics)


def test_cli_writes_mosaics_and_reports_a_missing_folder(tmp_path: Path, capsys) -> None:
    source = make_image_folder(tmp_path / "patches", per_class=4)
    assert main(["mosaics", str(source), str(tmp_path / "out"), "--tiles", "2"]) == 0
    assert len(list((tmp_path / "out").rglob("*.png"))) == 3
    assert main(["mosaics", str(tmp_path / "nope"), str(tmp_path / "out2")]) == 2
    assert "nope" in capsys.readouterr().err
