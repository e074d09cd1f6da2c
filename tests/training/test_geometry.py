"""Input geometry: the checkpoint records it, format-1 checkpoints keep embedding exactly as before,
the crop grid is symmetric and capped, and the collection's image sizes choose it."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import real_archives_or_skip
from training.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from training.geometry import InputGeometry, canonical_transforms, choose_geometry, crop_grid, working_size
from training.inference import Embedder, embed_tensor
from training.model import EmbeddingNet, ModelConfig
from training.preprocessing import to_model_input, to_tensor

from .conftest import texture

REPO_ROOT = Path(__file__).resolve().parents[2]
FORMAT_1 = Path(__file__).with_name("data") / "format1_default.pt"
"""The checkpoint GeoSim shipped until it was retrained on both archives: written in format 1 (no geometry),
kept so that the format-1 reading path stays pinned to the embeddings it gave."""
PINNED = Path(__file__).with_name("data") / "default_v1_embeddings.json"
SAME_FLOATS = {"rtol": 0.0, "atol": 1e-6}
"""Pinned embeddings match to float rounding, not bit for bit: the CPU's convolution kernels (oneDNN picks
them per instruction set) round differently on different processors (~6e-8 seen between two hosts)."""
TILED = InputGeometry(input_size=64, crop_size=64, working_side=200, max_crops=9)


def _save(path: Path, geometry: InputGeometry | None) -> EmbeddingNet:
    torch.manual_seed(0)
    model = EmbeddingNet(ModelConfig(widths=(8, 16)))
    save_checkpoint(path, model=model, mean=[0.5] * 3, std=[0.25] * 3, class_names=["a", "b"], geometry=geometry)
    return model


@pytest.mark.parametrize("geometry", [None, TILED], ids=["whole-image", "tiled"])
def test_geometry_round_trips_through_the_checkpoint(tmp_path: Path, geometry: InputGeometry | None) -> None:
    _save(tmp_path / "m.pt", geometry)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.format_version == FORMAT_VERSION == 2
    assert loaded.geometry == (geometry or InputGeometry.whole_image())
    assert loaded.input_size == loaded.geometry.input_size
    assert InputGeometry.from_dict(loaded.geometry.to_dict()) == loaded.geometry
    assert Embedder.from_checkpoint(tmp_path / "m.pt").geometry == loaded.geometry


def _as_version_1(path: Path, target: Path, input_size: int = 28) -> None:
    """Rewrite a checkpoint the way format 1 stored it: no geometry entry."""
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    del payload["geometry"]
    payload["preprocessing"]["input_size"] = input_size
    torch.save(payload, target)


def test_version_1_checkpoint_loads_with_the_whole_image_geometry(tmp_path: Path) -> None:
    model = _save(tmp_path / "m.pt", None)
    _as_version_1(tmp_path / "m.pt", tmp_path / "v1.pt")
    loaded = load_checkpoint(tmp_path / "v1.pt")
    assert loaded.format_version == 1
    assert loaded.geometry == InputGeometry(input_size=28, crop_size=28, working_side=None, max_crops=1)
    # Embeds exactly like the reference path of format 1: to_model_input, then 8-view averaging.
    rng = np.random.default_rng(3)
    images = [Image.fromarray(texture(i % 3, rng, size)) for i, size in enumerate((28, 40, 300))]
    expected = (
        embed_tensor(
            model.eval(), to_tensor(np.stack([to_model_input(im) for im in images]), [0.5] * 3, [0.25] * 3), tta=True
        )
        .detach()
        .numpy()
    )
    assert np.allclose(Embedder.from_checkpoint(tmp_path / "v1.pt").embed_images(images), expected, atol=1e-5)


def _weights_sha256(path: Path) -> str:
    """Hash of what decides embeddings (weights, normalisation), not of the file: a checkpoint that only
    gained metadata (e.g. a calibration) still matches."""
    loaded = load_checkpoint(path)
    digest = hashlib.sha256(json.dumps([loaded.mean, loaded.std, loaded.tta]).encode())
    for name, tensor in sorted(loaded.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _pinned() -> dict:
    pinned = json.loads(PINNED.read_text())
    assert _weights_sha256(FORMAT_1) == pinned["weights_sha256"], "the embeddings were pinned from other weights"
    return pinned


def test_format_1_checkpoint_embeds_as_pinned_on_generated_images() -> None:
    pinned = _pinned()["generated"]
    rng = np.random.default_rng(pinned["seed"])
    images = [Image.fromarray(texture(i % 3, rng, side)) for i, side in enumerate(s[0] for s in pinned["sizes"])]
    images[3] = images[3].crop((0, 0, *pinned["sizes"][3]))
    embedder = Embedder.from_checkpoint(FORMAT_1)
    assert embedder.geometry == InputGeometry.whole_image()
    assert np.allclose(embedder.embed_images(images), np.array(pinned["embeddings"], dtype=np.float32), **SAME_FLOATS)


@pytest.mark.realdata
def test_format_1_checkpoint_embeds_as_pinned_on_real_images() -> None:
    pinned = _pinned()["real"]
    archive = real_archives_or_skip()[0]  # part 1
    found: dict[str, Image.Image] = {}
    with tarfile.open(archive) as tar:  # streams: reads only up to the last pinned image
        for member in tar:
            key = "/".join(member.name.split("/")[-2:])
            if key in pinned["keys"]:
                found[key] = Image.open(io.BytesIO(tar.extractfile(member).read()))
                if len(found) == len(pinned["keys"]):
                    break
    images = [found[key] for key in pinned["keys"]]
    embeddings = Embedder.from_checkpoint(FORMAT_1).embed_images(images)
    assert np.allclose(embeddings, np.array(pinned["embeddings"], dtype=np.float32), **SAME_FLOATS)


@pytest.mark.parametrize("cap", [4, 9, 24])
def test_crop_grid_is_capped_covering_and_symmetric(cap: int) -> None:
    crop = 64
    for width in range(64, 700, 13):
        for height in (64, 65, 130, 201, 333, 640):
            grid = crop_grid(width, height, crop, cap)
            assert 1 <= len(grid) <= cap
            assert all(0 <= x <= width - crop and 0 <= y <= height - crop for x, y in grid)
            corners = set(grid)
            assert corners == {(width - crop - x, y) for x, y in grid}, "left-right mirror"
            assert corners == {(x, height - crop - y) for x, y in grid}, "top-bottom mirror"
            assert set(crop_grid(height, width, crop, cap)) == {(y, x) for x, y in grid}, "transpose"
            if len(grid) < cap // 2 and width <= 4 * crop and height <= 4 * crop:
                covered = np.zeros((height, width), bool)
                for x, y in grid:
                    covered[y : y + crop, x : x + crop] = True
                assert covered.all(), (width, height)


def test_canonical_transform_takes_a_turned_crop_back_to_the_same_view() -> None:
    from training.inference import d4_pixels

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (150, 230, 3), dtype=np.uint8)
    crop = 64
    for transform in range(8):
        turned = d4_pixels(image[None], transform)[0]
        grid, turned_grid = crop_grid(230, 150, crop, 9), crop_grid(turned.shape[1], turned.shape[0], crop, 9)

        def views(pixels: np.ndarray, corners: list) -> list[bytes]:
            rows, cols = pixels.shape[:2]
            out = []
            for x, y in corners:
                chosen = canonical_transforms(x, y, crop, cols, rows)
                piece = pixels[y : y + crop, x : x + crop][None]
                out.append(sorted(d4_pixels(piece, t).tobytes() for t in chosen))
            return sorted(map(tuple, out))

        assert views(image, grid) == views(turned, turned_grid)


def test_collection_sizes_choose_the_geometry() -> None:
    assert choose_geometry([(28, 28)] * 10) == InputGeometry.whole_image()
    lab = choose_geometry([(500, 380)] * 10)
    assert lab.tiled and lab.working_side == 380 and lab.crop_size == lab.input_size == 112
    photos = choose_geometry([(6000, 4000)] * 3 + [(4000, 6000)])
    assert photos.working_side == 512
    mosaic = choose_geometry([(224, 224)] * 5)
    assert mosaic.tiled and mosaic.working_side == 224 and mosaic.crop_size == 112
    assert working_size(6000, 4000, photos) == (768, 512) and working_size(4000, 6000, photos) == (512, 768)
    assert working_size(300, 200, photos) == (300, 200), "never enlarged above the crop size"
    assert working_size(80, 60, photos) == (149, 112), "smaller than a crop: enlarged to one"
    with pytest.raises(ValueError):
        choose_geometry([])
    with pytest.raises(ValueError):
        InputGeometry(input_size=64, crop_size=64, working_side=32, max_crops=4)
