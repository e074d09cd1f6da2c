"""The shipped checkpoint on the real images it never saw (needs ../shared/data, as in CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.conftest import extract_archive, real_archives_or_skip
from training.calibration import neighbour_pairs, reliability
from training.data import image_key, load_image_folder
from training.inference import Embedder
from training.metrics import retrieval_metrics

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "training" / "weights" / "default.pt"

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared archives extracted to a temporary folder (about a second per part)."""
    archives = real_archives_or_skip()
    target = tmp_path_factory.mktemp("real")
    for archive in archives:
        extract_archive(archive, target)
    return target


@pytest.fixture(scope="module")
def held_out(real_images: Path) -> tuple[Embedder, np.ndarray, np.ndarray]:
    """The shipped embedder, and the embeddings and labels of the real images its training run held out."""
    if not SHIPPED.exists():
        pytest.skip(f"{SHIPPED} not shipped yet")
    embedder = Embedder.from_checkpoint(SHIPPED)
    keys = set(embedder.checkpoint.data["test_keys"])
    sample = load_image_folder(real_images, class_names=embedder.class_names, keep=lambda path: image_key(path) in keys)
    assert len(sample) >= 0.9 * len(keys), "most held-out images should be in the shared archive"
    return embedder, embedder.embed_arrays(sample.images), sample.labels


def test_shipped_checkpoint_on_held_out_real_images(held_out) -> None:
    _, embeddings, labels = held_out
    metrics = retrieval_metrics(embeddings, labels)
    assert metrics["p_at_1"] >= 0.97, metrics
    assert metrics["map_at_r"] >= 0.9, metrics


def test_shipped_similarity_is_calibrated_on_held_out_real_images(held_out) -> None:
    embedder, embeddings, labels = held_out
    calibration = embedder.checkpoint.calibration
    assert not calibration.is_fallback, "the shipped checkpoint should carry its calibration"
    assert calibration.fitted_on["split"] == "val"
    cosines, same = neighbour_pairs(embeddings, labels, neighbours=20)
    result = reliability(calibration.similarity(cosines), same, bins=10)
    assert result.ece <= 0.05, result.to_dict()
    # It must also tell the rare result of another rock type from the rest. Not "a Brier score below the
    # test pairs' own base rate": with ~0.7 % of top-20 results of another type that comparison sits within
    # noise (0.0073 vs 0.0072 for this checkpoint, 0.0075 vs 0.0078 for the previous one), while ranking does not.
    similarity = calibration.similarity(cosines)
    assert roc_auc_score(same, similarity) >= 0.85
    assert similarity[same].mean() - similarity[~same].mean() >= 0.05
