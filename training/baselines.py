"""Reference points measured on the same split as the model: image statistics with k-NN, an untrained CNN.

Every statistic is computed on the pixels the model sees (28×28 inputs, or whole images at working
resolution for tiled geometries), keeps absolute brightness and colour (nothing is normalised away: on
rock images they are real cues), and is scored by Euclidean nearest neighbours, leave-one-out.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .geometry import InputGeometry
from .inference import Embedder
from .metrics import retrieval_metrics
from .model import EmbeddingNet, ModelConfig
from .preprocessing import to_model_input

Pixels = np.ndarray | list[np.ndarray]


def _each(images: Pixels) -> list[np.ndarray]:
    return list(images) if isinstance(images, list) else [images[i] for i in range(len(images))]


def raw_pixel_features(images: Pixels) -> np.ndarray:
    """Flattened pixels scaled to [0, 1] (for Euclidean k-NN); images of other sizes are first shrunk to 28×28."""
    if isinstance(images, list):
        images = np.stack([to_model_input(Image.fromarray(image)) for image in images])
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def colour_histogram_features(images: Pixels, bins: int = 8) -> np.ndarray:
    """Joint RGB histogram with ``bins`` levels per channel, normalised to sum 1 (``bins³`` values)."""
    features = np.zeros((len(images), bins**3), dtype=np.float32)
    for row, image in enumerate(_each(images)):
        quantised = (image.reshape(-1, 3).astype(np.int64) * bins) // 256
        codes = (quantised[:, 0] * bins + quantised[:, 1]) * bins + quantised[:, 2]
        features[row] = np.bincount(codes, minlength=bins**3) / len(codes)
    return features


def _grey(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def grey_histogram_features(images: Pixels, bins: int = 32) -> np.ndarray:
    """Histogram of grey levels (luma, ``bins`` levels), normalised to sum 1."""
    features = np.zeros((len(images), bins), dtype=np.float32)
    for row, image in enumerate(_each(images)):
        levels = np.clip(_grey(image) * bins / 256.0, 0, bins - 1).astype(np.int64).ravel()
        features[row] = np.bincount(levels, minlength=bins) / len(levels)
    return features


def gradient_histogram_features(images: Pixels, bins: int = 16, scales: int = 2) -> np.ndarray:
    """Histograms of the grey-level gradient magnitude at ``scales`` scales (each half the previous).

    Bins are logarithmic between 1 and 256 grey levels per pixel, so fine grain and sharp edges both
    register; every histogram sums to 1. A texture statistic: grain size and contrast, no layout.
    """
    edges = np.concatenate([[0.0], np.geomspace(1.0, 256.0, bins - 1), [np.inf]])
    features = np.zeros((len(images), bins * scales), dtype=np.float32)
    for row, image in enumerate(_each(images)):
        grey = _grey(image)
        for scale in range(scales):
            if min(grey.shape) >= 3:
                gy, gx = np.gradient(grey)
                magnitude = np.hypot(gx, gy).ravel()
                counts, _ = np.histogram(magnitude, bins=edges)
                features[row, scale * bins : (scale + 1) * bins] = counts / max(1, len(magnitude))
            rows, cols = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
            grey = grey[:rows, :cols].reshape(rows // 2, 2, cols // 2, 2).mean(axis=(1, 3))
    return features


def untrained_cnn_embeddings(
    images: Pixels, config: ModelConfig, mean: list[float], std: list[float], seed: int,
    geometry: InputGeometry | None = None,
) -> np.ndarray:
    """Embeddings from the same architecture and geometry with its random initial weights (no TTA)."""
    torch.manual_seed(seed)
    model = EmbeddingNet(config).eval()
    geometry = geometry or InputGeometry.whole_image(images.shape[1])
    return Embedder(model, mean=mean, std=std, geometry=geometry, tta=False).embed_arrays(images)


def baseline_metrics(
    images: Pixels, labels: np.ndarray, config: ModelConfig, mean: list[float], std: list[float], seed: int,
    geometry: InputGeometry | None = None,
) -> dict[str, dict[str, float]]:
    """Leave-one-out metrics of every baseline on ``images``."""
    colour = colour_histogram_features(images)
    gradient = gradient_histogram_features(images)
    return {
        "raw_pixel_knn": retrieval_metrics(raw_pixel_features(images), labels, metric="euclidean"),
        "grey_histogram_knn": retrieval_metrics(grey_histogram_features(images), labels, metric="euclidean"),
        "colour_histogram_knn": retrieval_metrics(colour, labels, metric="euclidean"),
        "gradient_histogram_knn": retrieval_metrics(gradient, labels, metric="euclidean"),
        "colour_and_gradient_histogram_knn": retrieval_metrics(
            np.concatenate([colour, gradient], axis=1), labels, metric="euclidean"
        ),
        "untrained_cnn": retrieval_metrics(
            untrained_cnn_embeddings(images, config, mean, std, seed, geometry), labels
        ),
    }
