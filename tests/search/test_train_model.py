"""manage.py train_model on the collection's own labelled images: a registered model that beats the shipped one."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from search import engine
from search.demo_textures import generate_texture
from search.models import IndexVersion, Job, ModelVersion
from search.services.ingestion import images_import_path
from tests.conftest import REPO_ROOT

SHIPPED = REPO_ROOT / "training" / "weights" / "default.pt"


def _texture_collection(root, *, per_class: int, size: int = 256):
    """Generated rock textures of 256 px: at the shipped model's 28 px their grain is mostly lost."""
    rng = np.random.default_rng(0)
    for rock in ("gneiss", "marble", "quartzite", "schist"):
        (root / rock).mkdir(parents=True)
        for i in range(per_class):
            generate_texture(rock, rng, size=size).save(root / rock / f"{rock}-{i:02d}.png")
    return root


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_train_model_wait_registers_a_model_that_beats_the_shipped_one_then_activates_it(settings, tmp_path):
    settings.GEOSIM_DEFAULT_CHECKPOINT = SHIPPED
    images_import_path(_texture_collection(tmp_path / "lab", per_class=24), label=None, source="lab")
    out = io.StringIO()
    call_command("train_model", "--epochs", "6", "--name", "lab", "--activate", "--wait", stdout=out, verbosity=0)

    trained = ModelVersion.objects.get(name="lab")
    metrics = trained.metrics
    shipped = metrics["active_on_heldout"]
    assert shipped["model"].startswith("default-")
    assert metrics["heldout_images"] >= 12
    assert metrics["heldout"]["map_at_r"] > shipped["map_at_r"], metrics
    assert metrics["heldout"]["p_at_1"] >= shipped["p_at_1"], metrics
    job = Job.objects.get(kind=Job.Kind.TRAIN_MODEL)
    assert job.status == Job.Status.SUCCEEDED
    assert [row["epoch"] for row in job.result["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert all("p_at_1" in row["val"] for row in job.result["epochs"])
    assert f"Registered model version {trained.pk}" in out.getvalue()
    # --activate --wait: returned once the new model's index is live.
    trained.refresh_from_db()
    live = IndexVersion.objects.get(is_active=True)
    assert trained.is_active and live.model_version_id == trained.pk and live.vector_count == 96
    assert f"Index version {live.version} is live: 96 vectors" in out.getvalue()
    query = (tmp_path / "lab" / "schist" / "schist-03.png").read_bytes()
    answer = engine.search_by_bytes(query, k=5)
    assert answer.model_version == "lab" and answer.hits[0].image.label == "schist"
    workdir = settings.GEOSIM_DATA_DIR / "training"
    assert not workdir.exists() or not any(workdir.iterdir())  # the training folder was cleaned up


@pytest.mark.django_db
def test_train_model_says_why_it_cannot_start():
    with pytest.raises(CommandError, match="Training needs at least 2 rock types with 10 or more labelled images"):
        call_command("train_model", "--wait", stdout=io.StringIO())
    with pytest.raises(CommandError, match="epochs must be between 1 and 500"):
        call_command("train_model", "--epochs", "0", stdout=io.StringIO())
    assert not Job.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ten_images_per_rock_type_are_enough(tmp_path):
    """The minimum the service accepts must train: every split holds at least 2 images of each rock type."""
    images_import_path(_texture_collection(tmp_path / "lab", per_class=10, size=128), label=None, source="lab")
    call_command("train_model", "--epochs", "1", "--name", "small", "--wait", stdout=io.StringIO(), verbosity=0)
    metrics = ModelVersion.objects.get(name="small").metrics
    assert metrics["heldout_images"] == 8  # 2 of each of the 4 rock types
