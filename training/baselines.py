"""Reference points measured on the same split as the model: raw pixels, colour histograms, an untrained CNN."""

from __future__ import annotations

import numpy as np
import torch

from .inference import Embedder
from .metrics import retrieval_metrics
from .model import EmbeddingNet, ModelConfig


def raw_pixel_features(images: np.ndarray) -> np.ndarray:
    """Flattened pixels scaled to [0, 1] (for Euclidean k-NN)."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def colour_histogram_features(images: np.ndarray, bins: int = 8) -> np.ndarray:
    """Joint RGB histogram with ``bins`` levels per channel, normalised to sum 1 (``bins³`` values)."""
    quantised = (images.astype(np.int64) * bins) // 256
    codes = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    codes = codes.reshape(len(images), -1)
    features = np.zeros((len(images), bins**3), dtype=np.float32)
    np.add.at(features, (np.repeat(np.arange(len(images)), codes.shape[1]), codes.ravel()), 1.0)
    return features / codes.shape[1]


def untrained_cnn_embeddings(
    images: np.ndarray, config: ModelConfig, mean: list[float], std: list[float], seed: int
) -> np.ndarray:
    """Embeddings from the same architecture with its random initial weights (no TTA)."""
    torch.manual_seed(seed)
    model = EmbeddingNet(config).eval()
    embedder = Embedder(model, mean=mean, std=std, input_size=images.shape[1], tta=False)
    return embedder.embed_arrays(images)


def baseline_metrics(
    images: np.ndarray, labels: np.ndarray, config: ModelConfig, mean: list[float], std: list[float], seed: int
) -> dict[str, dict[str, float]]:
    """Leave-one-out metrics of every baseline on ``images``."""
    return {
        "raw_pixel_knn": retrieval_metrics(raw_pixel_features(images), labels, metric="euclidean"),
        "colour_histogram_knn": retrieval_metrics(colour_histogram_features(images), labels, metric="euclidean"),
        "untrained_cnn": retrieval_metrics(untrained_cnn_embeddings(images, config, mean, std, seed), labels),
    }
