"""Fixtures for the training package: tiny generated image folders and a checkpoint trained on one.

Images are made on the fly (no real data): each class has its own texture family (stripes, checks,
blobs) and colour, plus noise, so a few training steps separate them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("andesite", "gneiss", "schist")


def texture(label_index: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A uint8 size×size×3 patch whose pattern and tint depend on the class."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi)
    period = rng.uniform(3.0, 5.0)
    if label_index % 3 == 0:
        pattern = np.sin(2 * np.pi * x / period + phase)
    elif label_index % 3 == 1:
        pattern = np.sign(np.sin(2 * np.pi * x / period + phase) * np.sin(2 * np.pi * y / period))
    else:
        pattern = np.sin(2 * np.pi * (x + y) / (2 * period) + phase) ** 2 * 2 - 1
    tint = np.array([[0.9, 0.5, 0.4], [0.4, 0.8, 0.5], [0.5, 0.5, 0.9]])[label_index % 3]
    pixels = 128 + 60 * pattern[..., None] * tint + rng.normal(0, 12, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_image_folder(root: Path, per_class: int = 16, classes: tuple[str, ...] = CLASSES, seed: int = 0) -> Path:
    """Write ``root/<class>/<CODE>.png`` like the real dataset and return ``root``."""
    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(texture(index, rng)).save(folder / f"C{index}{i:03d}.png")
    return root


# The suite-wide autouse fixtures in tests/conftest.py set up Django settings, Celery and the search
# engine. The training package uses none of them, so they are overridden here with no-ops: these tests
# also run where Django is absent (`pytest tests/training -p no:django`).
@pytest.fixture(autouse=True)
def isolated_data_dir() -> None:
    """No-op: training tests write only under their own tmp_path."""


@pytest.fixture(autouse=True)
def celery_in_process() -> None:
    """No-op: training uses no Celery."""


@pytest.fixture(autouse=True)
def engine_state() -> None:
    """No-op: training uses neither the search index nor Django settings."""


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 16 generated 28×28 PNGs."""
    return make_image_folder(tmp_path_factory.mktemp("tiny") / "geological_similarity")


@pytest.fixture(scope="session")
def tiny_trained_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_folder: Path) -> Path:
    """A checkpoint trained for 2 epochs on ``tiny_folder`` with a narrow network (a few seconds)."""
    return _train_tiny(tmp_path_factory.mktemp("ckpt") / "tiny.pt", tiny_folder)


@pytest.fixture(scope="session")
def large_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 12 generated textures with a 256 px short side (grains, foliation at pixel scale)."""
    from search.demo_textures import write_texture_collection

    root = tmp_path_factory.mktemp("large") / "textures"
    write_texture_collection(root, classes=3, per_class=12, size=256, seed=0)
    return root


@pytest.fixture(scope="session")
def tiled_checkpoint(tmp_path_factory: pytest.TempPathFactory, large_folder: Path) -> Path:
    """A tiled checkpoint trained for 2 epochs on ``large_folder`` with a narrow network."""
    return _train_tiny(tmp_path_factory.mktemp("tiled") / "tiled.pt", large_folder, "--no-baselines")


def _train_tiny(out: Path, data: Path, *extra: str) -> Path:
    """Train a narrow network for 2 epochs on ``data`` (a few seconds) through the training CLI."""
    from training.train import main

    arguments = ["--data", str(data), "--out", str(out), "--epochs", "2", "--seed", "1", "--batch-size", "24"]
    arguments += ["--widths", "8,16", "--val-fraction", "0.25", "--test-fraction", "0.25", *extra]
    assert main(arguments) == 0
    return out
