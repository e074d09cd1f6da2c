"""Tiled geometry end to end: training on large images, crop-grid embedding, invariance, the crop cap,
locating a match and embedding a region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.demo_textures import generate_large_texture
from training.evaluate import evaluate_folder
from training.geometry import choose_geometry
from training.inference import Embedder
from training.train import TrainConfig, train


def _image(seed: int, texture: str = "foliated", size: int = 256) -> Image.Image:
    return generate_large_texture(texture, np.random.default_rng(seed), size, max_aspect=1.6)


def test_training_on_large_images_writes_a_tiled_checkpoint(tiled_checkpoint: Path, large_folder: Path) -> None:
    embedder = Embedder.from_checkpoint(tiled_checkpoint)
    geometry = embedder.geometry
    assert geometry.tiled and geometry == choose_geometry([(256, 256)])
    assert geometry.working_side == 256 and geometry.crop_size == 112
    summary = json.loads(tiled_checkpoint.with_name("tiled_summary.json").read_text())
    assert summary["checkpoint"] == str(tiled_checkpoint) and summary["geometry"] == geometry.to_dict()
    assert set(summary["metrics"]) >= {"val", "test"}
    keys = embedder.checkpoint.data["test_keys"]
    result = evaluate_folder(embedder, large_folder, keys=keys)
    assert result["images"] == len(keys) == 9
    assert result == evaluate_folder(embedder, large_folder, heldout_only=True)


def test_train_reports_every_epoch_and_chooses_epochs_for_tiled_collections(tmp_path: Path, large_folder: Path) -> None:
    from training.model import ModelConfig

    seen: list[dict] = []
    config = TrainConfig(
        epochs=2,
        model=ModelConfig(widths=(8, 16)),
        baselines=False,
        batch_size=24,
        val_fraction=0.25,
        test_fraction=0.25,
    )
    summary = train(large_folder, tmp_path / "m.pt", config, on_epoch=seen.append)
    assert [info["epoch"] for info in seen] == [1, 2] and all(info["epochs"] == 2 for info in seen)
    assert {"loss", "val", "seconds", "elapsed"} <= set(seen[0]) and "p_at_1" in seen[0]["val"]
    assert summary["checkpoint"] == str(tmp_path / "m.pt") and len(summary["epochs"]) == 2


def test_tiled_embedding_is_invariant_to_flips_and_quarter_turns(tiled_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiled_checkpoint)
    # At working resolution already (short side 256 = the working side): every view is exact.
    image = _image(1)
    assert min(image.size) == 256 and image.size[0] != image.size[1]
    base = embedder.embed_images([image])[0]
    for method in (
        Image.Transpose.FLIP_LEFT_RIGHT,
        Image.Transpose.FLIP_TOP_BOTTOM,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSPOSE,
    ):
        assert np.allclose(embedder.embed_images([image.transpose(method)])[0], base, atol=1e-5), method
    # A single crop's embedding is not invariant: the canonical views are what makes the mean invariant.
    crop = np.asarray(image)[:112, :112]
    turned = np.ascontiguousarray(np.rot90(crop))
    raw = embedder._crop_embeddings([crop, turned], [(0,), (0,)]).numpy()
    assert not np.allclose(raw[0], raw[1], atol=1e-3)


def test_resized_large_image_is_invariant_up_to_resampling(tiled_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiled_checkpoint)
    image = _image(2, "banded", 600)  # shrunk to the 256 px working side first
    base = embedder.embed_images([image])[0]
    flipped = embedder.embed_images([image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])[0]
    turned = embedder.embed_images([image.transpose(Image.Transpose.ROTATE_90)])[0]
    assert np.allclose(flipped, base, atol=1e-5), "PIL resampling is mirror-exact"
    # PIL resamples rows before columns, so a turned image differs by rounding (±1 grey level) only.
    assert float(turned @ base) > 0.999


def test_crop_cap_bounds_the_network_passes_for_a_huge_image(tiled_checkpoint: Path, monkeypatch) -> None:
    embedder = Embedder.from_checkpoint(tiled_checkpoint)
    crops_seen: list[int] = []
    original = embedder._crop_embeddings

    def counting(crops, transforms):
        crops_seen.append(len(crops))
        return original(crops, transforms)

    monkeypatch.setattr(embedder, "_crop_embeddings", counting)
    huge = Image.new("RGB", (6000, 4000), (120, 110, 100))
    vector = embedder.embed_images([huge])
    assert vector.shape == (1, 128) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    assert sum(crops_seen) <= embedder.geometry.max_crops
    assert sum(crops_seen) >= embedder.geometry.max_crops // 2, "the cap thins the grid, not to one crop"


def test_locate_finds_where_a_region_was_cut_from(tiled_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiled_checkpoint)
    # Four textures side by side; the query is a region cut from the third.
    parts = [
        _image(seed, name).crop((0, 0, 256, 256))
        for seed, name in enumerate(("fine_granular", "foliated", "coarse_granular", "banded"))
    ]
    canvas = Image.new("RGB", (1024, 256))
    for index, part in enumerate(parts):
        canvas.paste(part.convert("RGB"), (256 * index, 0))
    region = (560, 60, 120, 120)
    query = embedder.embed_region(canvas, region)
    found = embedder.locate(canvas, query)
    assert found is not None
    (x, y, w, h), cosine = found
    assert 512 <= x + w / 2 < 768, f"the best window {(x, y, w, h)} is not on the third texture"
    assert (w, h) == (112, 112) and 0 < cosine <= 1.0 + 1e-6
    assert embedder.locate(canvas.crop((0, 0, 100, 100)), query) is None, "one window: nothing to locate"


def test_locate_reports_boxes_in_the_images_own_pixels(tiled_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiled_checkpoint)
    image = _image(3, "brecciated", 512)  # working resolution is half the size
    query = embedder.embed_region(image, (0, 0, 200, 200))
    (x, y, w, h), _ = embedder.locate(image, query)
    assert (w, h) == (224, 224)
    assert x >= 0 and y >= 0 and x + w <= image.width and y + h <= image.height


@pytest.mark.parametrize("box", [(0, 0, 0, 10), (-1, 0, 10, 10), (250, 0, 100, 10), ("a", 0, 1, 1)])
def test_region_outside_the_image_is_a_value_error(tiled_checkpoint: Path, box) -> None:
    embedder = Embedder.from_checkpoint(tiled_checkpoint)
    with pytest.raises(ValueError, match="box"):
        embedder.embed_region(Image.new("RGB", (300, 256)), box)


def test_whole_image_checkpoint_locates_in_large_images(tiny_trained_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiny_trained_checkpoint)
    assert not embedder.geometry.tiled
    image = _image(4, "veined", 300)
    found = embedder.locate(image, embedder.embed_region(image, (10, 10, 150, 150)))
    assert found is not None and found[0][2] == found[0][3] == 150
    assert embedder.locate(Image.new("RGB", (28, 28)), embedder.embed_images([image])[0]) is None
