"""Metric-learning objective: pytorch-metric-learning's triplet loss with online mining, plus an
optional normalised-softmax auxiliary loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch_metric_learning import losses, miners
from torch import nn

MINERS = ("semihard", "hard", "all", "multisimilarity")


@dataclass(frozen=True)
class LossConfig:
    """Loss hyperparameters (stored in the checkpoint's ``training`` section)."""

    margin: float = 0.2
    miner: str = "all"
    """Which triplets of a batch to train on: "all" violating ones (batch-all, the shipped choice),
    "semihard", "hard", or multi-similarity pairs."""
    aux_weight: float = 1.0
    """Weight of the normalised-softmax classification loss on the embeddings; 0 turns it off."""
    aux_temperature: float = 0.05


class EmbeddingLoss(nn.Module):
    """Triplet margin loss on mined triplets (+ ``aux_weight`` × normalised softmax)."""

    def __init__(self, config: LossConfig, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        if config.miner not in MINERS:
            raise ValueError(f"miner must be one of {MINERS}, got {config.miner!r}")
        self.config = config
        self.triplet = losses.TripletMarginLoss(margin=config.margin)
        if config.miner == "multisimilarity":
            self.miner = miners.MultiSimilarityMiner(epsilon=0.1)
        else:
            self.miner = miners.TripletMarginMiner(margin=config.margin, type_of_triplets=config.miner)
        # Class proxies pull each rock type to one region; the triplet term orders neighbours within it.
        self.aux = (
            losses.NormalizedSoftmaxLoss(num_classes, embedding_dim, temperature=config.aux_temperature)
            if config.aux_weight > 0
            else None
        )

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The total loss and its parts (for the log)."""
        mined = self.miner(embeddings, labels)
        triplet = self.triplet(embeddings, labels, mined)
        parts = {"triplet": float(triplet.detach()), "mined": float(len(mined[0]))}
        total = triplet
        if self.aux is not None:
            aux = self.aux(embeddings, labels)
            parts["aux"] = float(aux.detach())
            total = total + self.config.aux_weight * aux
        return total, parts
