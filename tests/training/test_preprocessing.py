"""to_model_input: any mode and size becomes uint8 28×28×3; to_tensor normalises."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from training.preprocessing import INPUT_SIZE, to_model_input, to_tensor


def test_input_size_is_the_dataset_size() -> None:
    assert INPUT_SIZE == 28


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "CMYK", "1", "I;16", "I", "F"])
def test_every_mode_becomes_uint8_rgb(mode: str) -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).convert(mode)
    out = to_model_input(image)
    assert out.shape == (28, 28, 3)
    assert out.dtype == np.uint8


def test_sixteen_bit_is_rescaled_not_clipped() -> None:
    image = Image.fromarray(np.full((30, 30), 32768, dtype=np.uint16))
    assert image.mode.startswith("I;16")
    out = to_model_input(image)
    assert 120 <= out.mean() <= 135


def test_transparency_is_composited_on_white() -> None:
    image = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    assert (to_model_input(image) == 255).all()


def test_native_size_rgb_passes_through_unchanged() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    assert np.array_equal(to_model_input(Image.fromarray(pixels)), pixels)


def test_large_non_square_image_is_centre_cropped_not_stretched() -> None:
    pixels = np.zeros((100, 300, 3), dtype=np.uint8)
    pixels[:, 100:200] = 200  # the centre square is uniformly bright, the sides black
    out = to_model_input(Image.fromarray(pixels))
    assert out.shape == (28, 28, 3)
    assert out.min() >= 190


def test_custom_size() -> None:
    assert to_model_input(Image.new("RGB", (64, 64)), size=32).shape == (32, 32, 3)


def test_to_tensor_shapes_and_normalisation() -> None:
    batch = np.full((2, 28, 28, 3), 255, dtype=np.uint8)
    tensor = to_tensor(batch, mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0])
    assert tensor.shape == (2, 3, 28, 28)
    assert tensor.dtype == torch.float32
    assert torch.allclose(tensor[:, 0], torch.tensor(2.0))
    assert torch.allclose(tensor[:, 1], torch.tensor(1.0))
    assert torch.allclose(tensor[:, 2], torch.tensor(0.5))
    assert to_tensor(batch[0], [0, 0, 0], [1, 1, 1]).shape == (1, 3, 28, 28)


def test_to_tensor_rejects_float_input() -> None:
    with pytest.raises(TypeError):
        to_tensor(np.zeros((1, 28, 28, 3), dtype=np.float32), [0, 0, 0], [1, 1, 1])
