"""Calibrated similarity: the fit is monotone, round-trips in the checkpoint, old checkpoints fall back,
and the calibration error is computed as defined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.calibrate import main as calibrate_main
from training.calibration import (
    FALLBACK,
    Calibration,
    CalibrationError,
    fit_calibration,
    fit_isotonic,
    neighbour_pairs,
    reliability,
    search_pairs,
)
from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.inference import Embedder
from training.model import EmbeddingNet, ModelConfig


def _clustered(seed: int, per_class: int = 30, classes: int = 4, spread: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around one centre per class, overlapping enough that some neighbours are of another class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 16))
    labels = np.repeat(np.arange(classes), per_class)
    vectors = centres[labels] + spread * rng.normal(size=(len(labels), 16)) * np.linalg.norm(centres, axis=1).mean()
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), labels


@pytest.mark.parametrize("seed", range(5))
def test_fitted_calibration_is_monotone_and_within_0_1(seed: int) -> None:
    embeddings, labels = _clustered(seed)
    calibration = fit_calibration(embeddings, labels)
    grid = np.linspace(-1.2, 1.2, 5001)
    similarity = calibration.similarity(grid)
    assert np.all(np.diff(similarity) >= 0), "similarity must never fall as the cosine rises"
    assert similarity.min() >= 0 and similarity.max() <= 1
    cosines, same, _ = search_pairs(embeddings, labels)
    assert 0 < same.mean() < 1, "the generated set should mix same-type and other-type results"
    # Far apart means another rock type; the closest pairs are (nearly always) of the same type.
    assert calibration.similarity(cosines.min()) < 0.5 < calibration.similarity(cosines.max())


def test_isotonic_fit_recovers_a_clean_threshold() -> None:
    cosines = np.linspace(0.0, 1.0, 101)
    same = cosines > 0.6
    calibration = fit_isotonic(cosines, same)
    assert calibration.similarity([0.1, 0.5, 0.6]).tolist() == [0.0, 0.0, 0.0]
    assert calibration.similarity([0.61, 0.9, 1.0]).tolist() == [1.0, 1.0, 1.0]


def test_isotonic_fit_follows_the_observed_share_per_cosine() -> None:
    # Three cosine levels with 1/4, 2/4 and 4/4 same-type pairs: increasing already, so the fit is the shares.
    cosines = np.repeat([0.2, 0.5, 0.8], 4)
    same = np.array([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    calibration = fit_isotonic(cosines, same)
    assert calibration.similarity([0.2, 0.5, 0.8]) == pytest.approx([0.25, 0.5, 1.0])
    assert calibration.similarity(0.35) == pytest.approx(0.375)  # linear between breakpoints


def test_fallback_is_the_clipped_cosine() -> None:
    cosines = np.array([-0.7, 0.0, 0.42, 0.999, 1.0000001])
    assert FALLBACK.is_fallback
    assert FALLBACK.similarity(cosines) == pytest.approx(np.clip(cosines, 0, 1))
    assert Calibration.from_dict(None) is FALLBACK and Calibration.from_dict({}) is FALLBACK


@pytest.mark.parametrize(
    ("cosines", "probabilities", "message"),
    [
        ((0.1, 0.5), (0.6, 0.2), "non-decreasing"),
        ((0.5, 0.1), (0.2, 0.6), "strictly increasing"),
        ((0.1, 0.5), (0.2, 1.5), "within"),
        ((0.1, 0.5), (0.2,), "as many"),
        ((0.1, float("nan")), (0.2, 0.3), "finite"),
    ],
)
def test_malformed_calibrations_are_refused(cosines, probabilities, message) -> None:
    with pytest.raises(CalibrationError, match=message):
        Calibration(cosines=cosines, probabilities=probabilities)


def test_neighbour_pairs_match_a_plain_numpy_top_k() -> None:
    embeddings, labels = _clustered(7, per_class=8, classes=3)
    cosines, same = neighbour_pairs(embeddings, labels, neighbours=5, queries=np.array([0, 9, 20]))
    expected_cos, expected_same = [], []
    for q in (0, 9, 20):
        scores = embeddings @ embeddings[q]
        scores[q] = -np.inf
        top = np.argsort(-scores, kind="stable")[:5]
        expected_cos.extend(scores[top])
        expected_same.extend(labels[top] == labels[q])
    assert cosines == pytest.approx(np.array(expected_cos), abs=1e-6)
    assert same.tolist() == expected_same


def test_search_pairs_add_the_nearest_image_of_every_other_type() -> None:
    embeddings, labels = _clustered(3, per_class=6, classes=3, spread=0.2)
    cosines, same, weights = search_pairs(embeddings, labels, neighbours=2)
    top_cos, _ = neighbour_pairs(embeddings, labels, neighbours=2)
    n = len(labels)
    assert len(cosines) == 2 * n + 2 * n  # 2 neighbours, plus 2 other types, per query
    assert weights[: 2 * n].tolist() == [1.0] * (2 * n) and weights[2 * n :] == pytest.approx(0.5)
    assert not same[2 * n :].any()
    scores = embeddings @ embeddings.T
    nearest_other = [scores[q, labels == c].max() for q in range(n) for c in np.unique(labels) if c != labels[q]]
    assert sorted(cosines[2 * n :]) == pytest.approx(sorted(nearest_other), abs=1e-6)
    assert cosines[: 2 * n] == pytest.approx(top_cos)


def test_expected_calibration_error_and_brier_by_hand() -> None:
    predicted = np.array([0.05, 0.15, 0.15, 0.95, 1.0])
    outcome = np.array([0, 0, 1, 1, 1])
    result = reliability(predicted, outcome, bins=10)
    # Bins [0, .1): {0.05} vs 0/1; [.1, .2): {0.15, 0.15} vs 1/2; [.9, 1]: {0.95, 1.0} vs 2/2 (1.0 is in the last).
    # ECE = 1/5·|0.05 − 0| + 2/5·|0.15 − 0.5| + 2/5·|0.975 − 1| = 0.01 + 0.14 + 0.01 = 0.16
    assert result.ece == pytest.approx(0.16)
    # Brier = (0.05² + 0.15² + 0.85² + 0.05² + 0²) / 5 = 0.75 / 5
    assert result.brier == pytest.approx(0.15)
    assert [row["count"] for row in result.bins] == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert result.bins[1]["observed"] == pytest.approx(0.5) and result.bins[2]["observed"] is None
    perfect = reliability(np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1]))
    assert perfect.ece == 0.0 and perfect.brier == 0.0


def test_reliability_refuses_probabilities_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability(np.array([0.5, 1.2]), np.array([0, 1]))


def _save(path: Path, calibration: Calibration | None) -> Path:
    torch.manual_seed(0)
    model = EmbeddingNet(ModelConfig(widths=(8, 16)))
    return save_checkpoint(
        path, model=model, mean=[0.5] * 3, std=[0.25] * 3, class_names=["a", "b"], tta=False, calibration=calibration
    )


def test_calibration_round_trips_in_the_checkpoint(tmp_path: Path) -> None:
    embeddings, labels = _clustered(11)
    fitted = fit_calibration(embeddings, labels)
    loaded = load_checkpoint(_save(tmp_path / "c.pt", fitted))
    assert loaded.calibration == fitted
    grid = np.linspace(-1, 1, 301)
    assert np.array_equal(loaded.calibration.similarity(grid), fitted.similarity(grid))
    assert loaded.calibration.fitted_on["split"] == "val"


def test_checkpoint_without_calibration_loads_and_answers_with_the_fallback(tmp_path: Path) -> None:
    path = _save(tmp_path / "old.pt", None)
    assert "calibration" not in torch.load(path, weights_only=True)
    loaded = load_checkpoint(path)
    assert loaded.calibration is FALLBACK
    embedder = Embedder.from_checkpoint(path)
    vectors = embedder.embed_arrays(np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8))
    cosines = vectors @ vectors[0]
    assert embedder.checkpoint.calibration.similarity(cosines) == pytest.approx(np.clip(cosines, 0, 1))


def test_a_malformed_calibration_entry_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = _save(tmp_path / "c.pt", Calibration(cosines=(0.1, 0.9), probabilities=(0.2, 0.8)))
    payload = torch.load(path, weights_only=True)
    payload["calibration"]["probabilities"] = [0.9, 0.1]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt .*non-decreasing"):
        load_checkpoint(tmp_path / "bad.pt")


def test_training_stores_a_calibration_fitted_on_the_validation_split(tiny_trained_checkpoint: Path) -> None:
    loaded = load_checkpoint(tiny_trained_checkpoint)
    calibration = loaded.calibration
    assert not calibration.is_fallback
    assert calibration.fitted_on["split"] == "val"
    assert calibration.fitted_on["queries"] == len(loaded.data["val_keys"])
    assert np.all(np.diff(calibration.similarity(np.linspace(-1, 1, 1001))) >= 0)


def test_calibrate_cli_adds_a_calibration_to_an_old_checkpoint(
    tiny_trained_checkpoint: Path, tiny_folder: Path, tmp_path: Path
) -> None:
    payload = torch.load(tiny_trained_checkpoint, weights_only=True)
    del payload["calibration"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    assert load_checkpoint(old).calibration is FALLBACK
    new = tmp_path / "new.pt"
    assert calibrate_main(["--checkpoint", str(old), "--data", str(tiny_folder), "--out", str(new)]) == 0
    recalibrated = load_checkpoint(new)
    assert recalibrated.calibration == load_checkpoint(tiny_trained_checkpoint).calibration
    assert recalibrated.data["val_keys"] == payload["data"]["val_keys"]


def test_calibrate_cli_needs_recorded_validation_images(tmp_path: Path, tiny_folder: Path, capsys) -> None:
    path = _save(tmp_path / "bare.pt", None)
    assert calibrate_main(["--checkpoint", str(path), "--data", str(tiny_folder)]) == 2
    assert "records no validation images" in capsys.readouterr().err
