"""The loss falls over a few optimisation steps on a tiny generated set."""

from __future__ import annotations

import numpy as np
import torch

from training.losses import EmbeddingLoss, LossConfig
from training.model import EmbeddingNet, ModelConfig
from training.preprocessing import to_tensor

from .conftest import texture


def _batch(per_class: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    pixels = np.stack([texture(c, rng) for c in range(3) for _ in range(per_class)])
    labels = torch.arange(3).repeat_interleave(per_class)
    return to_tensor(pixels, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]), labels


def _loss_curve(config: LossConfig, steps: int = 12) -> list[float]:
    torch.manual_seed(0)
    x, y = _batch()
    model = EmbeddingNet(ModelConfig(widths=(8, 16)))
    criterion = EmbeddingLoss(config, num_classes=3, embedding_dim=128)
    optimizer = torch.optim.Adam([*model.parameters(), *criterion.parameters()], lr=3e-3)
    losses = []
    for _ in range(steps):
        loss, _ = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_triplet_plus_auxiliary_loss_falls() -> None:
    losses = _loss_curve(LossConfig(miner="all", aux_weight=1.0))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_triplet_loss_alone_falls() -> None:
    losses = _loss_curve(LossConfig(miner="all", aux_weight=0.0))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])


def test_loss_reports_its_parts() -> None:
    x, y = _batch(4)
    criterion = EmbeddingLoss(LossConfig(miner="semihard"), num_classes=3, embedding_dim=128)
    _, parts = criterion(EmbeddingNet(ModelConfig(widths=(8,)))(x), y)
    assert set(parts) == {"triplet", "mined", "aux"}
