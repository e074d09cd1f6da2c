"""Checkpoint round trip and the two refusal errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from training.model import EmbeddingNet, ModelConfig


def _save(path: Path) -> EmbeddingNet:
    torch.manual_seed(0)
    model = EmbeddingNet(ModelConfig(widths=(8, 16)))
    save_checkpoint(
        path,
        model=model,
        mean=[0.1, 0.2, 0.3],
        std=[0.4, 0.5, 0.6],
        class_names=["a", "b"],
        tta=False,
        metrics={"test": {"p_at_1": 0.5}},
        data={"description": "generated"},
        training={"epochs": 1},
    )
    return model


def test_round_trip_restores_weights_and_metadata(tmp_path: Path) -> None:
    model = _save(tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.format_version == FORMAT_VERSION
    assert loaded.architecture == model.config
    assert loaded.class_names == ["a", "b"]
    assert loaded.mean == pytest.approx([0.1, 0.2, 0.3]) and loaded.std == pytest.approx([0.4, 0.5, 0.6])
    assert loaded.input_size == 28 and loaded.embedding_dim == 128 and loaded.tta is False
    assert loaded.metrics == {"test": {"p_at_1": 0.5}}
    assert loaded.data["description"] == "generated"
    assert not loaded.model.training
    x = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model.eval()(x))
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_other_format_version_is_refused_with_both_versions(tmp_path: Path) -> None:
    _save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 41
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "future.pt")
    message = str(error.value)
    assert "future.pt" in message
    assert f"version {FORMAT_VERSION + 41}" in message and f"version {FORMAT_VERSION}" in message


@pytest.mark.parametrize(
    "content",
    [b"definitely not a checkpoint", None],
    ids=["random-bytes", "foreign-torch-file"],
)
def test_not_a_checkpoint_is_refused(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "other.pt"
    if content is None:
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"other\.pt is not a GeoSim checkpoint.*version"):
        load_checkpoint(path)


def test_missing_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_inconsistent_checkpoint_is_refused(tmp_path: Path) -> None:
    _save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["architecture"]["widths"] = [4, 4]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_shipped_checkpoint_loads_and_is_small() -> None:
    shipped = Path(__file__).resolve().parents[2] / "training" / "weights" / "default.pt"
    if not shipped.exists():
        pytest.skip("training/weights/default.pt not shipped yet")
    assert shipped.stat().st_size < 5 * 1024 * 1024
    loaded = load_checkpoint(shipped)
    assert loaded.embedding_dim == 128 and len(loaded.class_names) == 6
    assert np.isfinite(loaded.metrics["test"]["p_at_1"])
