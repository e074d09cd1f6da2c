"""GET /api/v1/models/ (anyone), POST /api/v1/models/train/ and /api/v1/models/<id>/activate/ (staff or token)."""

from __future__ import annotations

import pytest

from search.models import Image, Job, ModelVersion
from search.services.model_versions import model_version_ensure_active, model_version_register

from .conftest import CALLERS, WRITE_DENIED, assert_error

MODELS_URL = "/api/v1/models/"
TRAIN_URL = "/api/v1/models/train/"

pytestmark = pytest.mark.django_db


def _labelled(counts: dict[str, int]) -> None:
    seed = 0
    for label, count in counts.items():
        for _ in range(count):
            seed += 1
            Image.objects.create(
                file=f"x/{seed}.jpg",
                sha256=f"{seed:064d}",
                label=label,
                width=28,
                height=28,
                format="JPEG",
                byte_size=1,
            )


@pytest.mark.parametrize("who", CALLERS)
def test_anyone_lists_the_models_with_their_metrics(callers, who, other_tiny_checkpoint):
    active = model_version_ensure_active()
    other = model_version_register(other_tiny_checkpoint, name="lab model")
    ModelVersion.objects.filter(pk=other.pk).update(
        metrics={"heldout": {"p_at_1": 0.9}, "active_on_heldout": {"model": active.name, "p_at_1": 0.5}}
    )
    response = callers[who].get(MODELS_URL)
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()}
    assert set(rows) == {active.name, "lab model"}
    assert set(rows["lab model"]) == {"id", "name", "is_active", "embedding_dim", "metrics", "created"}
    assert rows["lab model"]["embedding_dim"] == 64 and rows["lab model"]["is_active"] is False
    assert rows["lab model"]["metrics"]["active_on_heldout"] == {"model": active.name, "p_at_1": 0.5}
    assert rows[active.name]["is_active"] is True


@pytest.mark.parametrize("who", WRITE_DENIED)
def test_only_staff_may_train_or_activate(callers, who, other_tiny_checkpoint):
    _labelled({"gneiss": 10, "schist": 10})
    other = model_version_register(other_tiny_checkpoint)
    assert_error(callers[who].post(TRAIN_URL), WRITE_DENIED[who])
    assert_error(callers[who].post(f"{MODELS_URL}{other.pk}/activate/"), WRITE_DENIED[who])
    assert not Job.objects.exists()


@pytest.mark.parametrize("who", ["staff", "staff_token"])
def test_staff_starts_a_training_job(callers, who):
    _labelled({"gneiss": 10, "schist": 12, "marble": 3})
    response = callers[who].post(TRAIN_URL, {"epochs": 2, "name": "lab-v1", "activate": True}, format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["job"])
    assert job.kind == Job.Kind.TRAIN_MODEL and job.status == Job.Status.PENDING
    assert job.params == {"epochs": 2, "name": "lab-v1", "activate": True}
    assert response.json()["status_url"].endswith(f"/api/v1/jobs/{job.pk}/")
    # One at a time: a second request while it is pending is a conflict, not a second job.
    assert_error(callers[who].post(TRAIN_URL), 409, "training_running")
    assert Job.objects.filter(kind=Job.Kind.TRAIN_MODEL).count() == 1


def test_training_needs_two_rock_types_with_ten_images(callers):
    _labelled({"gneiss": 25, "schist": 9})
    error = assert_error(callers.staff.post(TRAIN_URL), 400, "invalid")
    assert "at least 2 rock types with 10 or more labelled images" in error["message"]
    assert "gneiss (25)" in error["message"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": "many"}, "epochs"),
        ({"epochs": 501}, "epochs"),
        ({"name": "x" * 101}, "name"),
    ],
)
def test_bad_training_parameters_are_400(callers, body, field):
    _labelled({"gneiss": 10, "schist": 10})
    error = assert_error(callers.staff.post(TRAIN_URL, body, format="json"), 400, "invalid")
    assert field in error["fields"]
    assert not Job.objects.exists()


def test_a_taken_name_is_refused(callers):
    _labelled({"gneiss": 10, "schist": 10})
    taken = model_version_ensure_active().name
    error = assert_error(callers.staff.post(TRAIN_URL, {"name": taken}, format="json"), 400)
    assert "exists already" in error["message"]


def test_activate_starts_the_switch(callers, other_tiny_checkpoint):
    model_version_ensure_active()
    other = model_version_register(other_tiny_checkpoint)
    response = callers.staff_token.post(f"{MODELS_URL}{other.pk}/activate/")
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["job"])
    assert job.kind == Job.Kind.ACTIVATE_MODEL and job.params == {"model_version_id": other.pk}
    assert_error(callers.staff.post(f"{MODELS_URL}999999/activate/"), 404)
