"""Embedder: output format, any input size, TTA invariance, thread safety, torch threads untouched."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from training.data import apply_d4
from training.inference import Embedder, d4_pixels, embed_tensor
from training.preprocessing import to_tensor

from .conftest import texture


def _pixels(n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(2)
    return np.stack([texture(i % 3, rng) for i in range(n)])


def test_embed_arrays_shape_dtype_and_norm(tiny_trained_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiny_trained_checkpoint)
    out = embedder.embed_arrays(_pixels(), batch_size=5)
    assert out.shape == (12, 128) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert embedder.embedding_dim == 128
    assert embedder.class_names == ["andesite", "gneiss", "schist"]


def test_embed_images_accepts_any_size_and_mode(tiny_trained_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiny_trained_checkpoint)
    images = [Image.new("L", (300, 200), 90), Image.new("RGBA", (10, 10), (1, 2, 3, 4)), Image.fromarray(_pixels(1)[0])]
    out = embedder.embed_images(images)
    assert out.shape == (3, 128)
    assert np.allclose(embedder.embed_images([images[2]]), embedder.embed_arrays(_pixels(1)), atol=1e-6)
    assert embedder.embed_images([]).shape == (0, 128)


def test_large_arrays_are_resized_like_images(tiny_trained_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiny_trained_checkpoint)
    big = np.repeat(np.repeat(_pixels(2), 4, axis=1), 4, axis=2)  # 112×112
    from_arrays = embedder.embed_arrays(big)
    from_images = embedder.embed_images([Image.fromarray(p) for p in big])
    assert np.allclose(from_arrays, from_images, atol=1e-6)


def test_tta_makes_embeddings_rotation_invariant(tiny_trained_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiny_trained_checkpoint)
    assert embedder.tta
    pixels = _pixels(4)
    turned = np.ascontiguousarray(np.rot90(pixels, 1, axes=(1, 2))[:, :, ::-1])
    assert np.allclose(embedder.embed_arrays(pixels), embedder.embed_arrays(turned), atol=1e-5)


def test_concurrent_calls_give_the_same_results_and_leave_threads_alone(tiny_trained_checkpoint: Path) -> None:
    threads_before = torch.get_num_threads()
    embedder = Embedder.from_checkpoint(tiny_trained_checkpoint)
    batches = [_pixels(8 + i) for i in range(6)]
    expected = [embedder.embed_arrays(b) for b in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(embedder.embed_arrays, batches * 3))
    for i, result in enumerate(results):
        assert np.array_equal(result, expected[i % 6])
    assert torch.get_num_threads() == threads_before


def test_fast_uint8_path_matches_the_reference_tensor_path(tiny_trained_checkpoint: Path) -> None:
    embedder = Embedder.from_checkpoint(tiny_trained_checkpoint)
    pixels = _pixels(40)
    batch = to_tensor(pixels, embedder.mean, embedder.std)
    with torch.no_grad():
        for tta in (True, False):
            embedder.tta = tta
            expected = embed_tensor(embedder.checkpoint.model, batch, tta=tta).numpy()
            assert np.allclose(embedder.embed_arrays(pixels, batch_size=7), expected, atol=1e-5)


def test_d4_pixels_matches_the_tensor_transforms() -> None:
    pixels = _pixels(2)
    tensor = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    for transform in range(8):
        expected = apply_d4(tensor, transform).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(d4_pixels(pixels, transform), expected)


def test_speed_tool_reports_latency_and_throughput(tiny_trained_checkpoint: Path) -> None:
    from training.speed import measure_speed

    threads_before = torch.get_num_threads()
    result = measure_speed(Embedder.from_checkpoint(tiny_trained_checkpoint), batch_images=64, repeats=3)
    assert result["single_image_ms"] > 0 and result["batch_images_per_s"] > 0
    assert result["tta"] is True and result["torch_threads"] == threads_before
