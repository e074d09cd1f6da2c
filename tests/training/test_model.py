"""The network: shape, unit norm, BatchNorm folding, and flip/rotation invariance with TTA."""

from __future__ import annotations

import torch

from training.data import apply_d4
from training.inference import embed_tensor
from training.model import EmbeddingNet, ModelConfig, count_parameters, fuse_for_inference


def _trained_like_model() -> EmbeddingNet:
    torch.manual_seed(0)
    model = EmbeddingNet(ModelConfig())
    model.train()
    with torch.no_grad():  # a forward pass in train mode moves the BatchNorm statistics off their defaults
        model(torch.randn(64, 3, 28, 28) * 2 + 0.5)
    return model.eval()


def test_output_shape_and_unit_norm() -> None:
    model = _trained_like_model()
    with torch.no_grad():
        out = model(torch.randn(5, 3, 28, 28))
    assert out.shape == (5, 128)
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)


def test_model_is_small() -> None:
    assert count_parameters(EmbeddingNet()) < 1_000_000


def test_fused_model_gives_the_same_embeddings() -> None:
    model = _trained_like_model()
    x = torch.randn(8, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(fuse_for_inference(model)(x), model(x), atol=1e-5)


def test_tta_embedding_is_invariant_to_flips_and_quarter_turns() -> None:
    model = _trained_like_model()
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        reference = embed_tensor(model, x, tta=True)
        plain = embed_tensor(model, x, tta=False)
        for transform in range(1, 8):
            assert torch.allclose(embed_tensor(model, apply_d4(x, transform), tta=True), reference, atol=1e-5)
        # Without TTA the network alone is not invariant: the check above is not vacuous.
        assert not torch.allclose(embed_tensor(model, apply_d4(x, 1), tta=False), plain, atol=1e-3)


def test_config_round_trips_through_plain_data() -> None:
    config = ModelConfig(widths=(8, 16), blocks_per_stage=1)
    assert ModelConfig.from_dict(config.to_dict()) == config
