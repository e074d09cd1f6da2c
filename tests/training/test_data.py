"""Folder reading, the stratified split and the augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.data import Augmentation, apply_d4, load_image_folder, stratified_split

from .conftest import CLASSES


def test_reads_classes_from_parent_folders(tiny_folder: Path) -> None:
    images = load_image_folder(tiny_folder.parent)
    assert images.class_names == sorted(CLASSES)
    assert images.images.shape == (48, 28, 28, 3) and images.images.dtype == np.uint8
    assert images.paths[0].startswith("geological_similarity/andesite/")
    assert [images.class_names[i] for i in images.labels] == [p.split("/")[-2] for p in images.paths]


def test_unreadable_files_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "rocks" / "marble"
    folder.mkdir(parents=True)
    (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    Image.new("RGB", (28, 28), "white").save(folder / "good.png")
    images = load_image_folder(tmp_path / "rocks")
    assert images.paths == ["marble/good.png"]


def test_split_is_stratified_disjoint_and_seeded() -> None:
    labels = np.repeat(np.arange(3), [100, 60, 40])
    train, val, test = stratified_split(labels, (0.1, 0.2), seed=5)
    assert len(set(train) | set(val) | set(test)) == 200
    assert not (set(train) & set(val)) and not (set(train) & set(test)) and not (set(val) & set(test))
    assert np.bincount(labels[val]).tolist() == [10, 6, 4]
    assert np.bincount(labels[test]).tolist() == [20, 12, 8]
    again = stratified_split(labels, (0.1, 0.2), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    other = stratified_split(labels, (0.1, 0.2), seed=6)
    assert not np.array_equal(val, other[1])


def test_d4_transforms_are_the_eight_distinct_symmetries() -> None:
    x = torch.arange(9.0).view(1, 3, 3)
    variants = {tuple(apply_d4(x, t).flatten().tolist()) for t in range(8)}
    assert len(variants) == 8


def test_augmentation_keeps_shape_and_range_and_changes_pixels() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 28, 28)
    before = x.clone()
    out = Augmentation(brightness=0.1, contrast=0.1, channel_gain=0.03)(x, generator)
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, x)
    assert torch.equal(x, before)  # input untouched (compared with a copy taken before the call)


def test_augmentation_without_jitter_only_permutes_pixels() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 28, 28)
    out = Augmentation()(x, generator)  # the default: flips and quarter-turns only
    assert torch.allclose(out.flatten(1).sort(dim=1).values, x.flatten(1).sort(dim=1).values)
