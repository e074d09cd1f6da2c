"""The shipped checkpoint on the real images it never saw (needs ../shared/data, as in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import extract_archive, real_archives_or_skip
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


def test_shipped_checkpoint_on_held_out_real_images(real_images: Path) -> None:
    if not SHIPPED.exists():
        pytest.skip(f"{SHIPPED} not shipped yet")
    embedder = Embedder.from_checkpoint(SHIPPED)
    held_out = set(embedder.checkpoint.data["test_keys"])
    sample = load_image_folder(
        real_images, class_names=embedder.class_names, keep=lambda path: image_key(path) in held_out
    )
    assert len(sample) >= 0.9 * len(held_out), "most held-out images should be in the shared archive"
    metrics = retrieval_metrics(embedder.embed_arrays(sample.images), sample.labels)
    assert metrics["p_at_1"] >= 0.97, metrics
    assert metrics["map_at_r"] >= 0.9, metrics
