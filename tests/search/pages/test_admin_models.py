"""Admin for model versions: "add" registers a checkpoint (it used to crash), "Train a model", metrics side by side."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from search.models import Image, Job, ModelVersion
from search.services.model_versions import model_version_ensure_active

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/search/modelversion/add/"


@pytest.fixture
def admin(client, admin_user):
    client.force_login(admin_user)
    return client


def test_add_page_is_a_register_form(admin):
    page = admin.get(ADD_URL)
    assert page.status_code == 200
    text = page.content.decode()
    assert 'type="file" name="checkpoint"' in text and 'name="path"' in text


def test_add_registers_an_uploaded_checkpoint(admin, other_tiny_checkpoint):
    upload = SimpleUploadedFile("lab-model.pt", other_tiny_checkpoint.read_bytes())
    response = admin.post(ADD_URL, {"checkpoint": upload, "name": "lab"})
    version = ModelVersion.objects.get(name="lab")
    assert response.status_code == 302 and response["Location"].endswith(f"/modelversion/{version.pk}/change/")
    assert version.embedding_dim == 64 and not version.is_active


def test_add_registers_a_checkpoint_by_path_under_the_data_dir(admin, other_tiny_checkpoint, settings):
    target = settings.GEOSIM_DATA_DIR / "incoming" / "lab.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(other_tiny_checkpoint.read_bytes())
    response = admin.post(ADD_URL, {"path": "incoming/lab.pt", "activate": "on"})
    version = ModelVersion.objects.get()
    assert version.name.startswith("lab-")
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert Job.objects.get(kind=Job.Kind.ACTIVATE_MODEL).params == {"model_version_id": version.pk}


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "Upload a checkpoint file or give the path"),
        ({"path": "../../etc/passwd"}, "Only checkpoint files under GEOSIM_DATA_DIR"),
        ({"path": "missing.pt"}, "does not exist"),
        ({"checkpoint": "not-a-model"}, "is not a GeoSim checkpoint"),
    ],
)
def test_add_shows_what_is_wrong_and_registers_nothing(admin, data, message):
    if data.get("checkpoint"):
        data = {"checkpoint": SimpleUploadedFile("x.pt", data["checkpoint"].encode())}
    response = admin.post(ADD_URL, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_listing_shows_both_models_metrics_side_by_side(admin):
    active = model_version_ensure_active()
    ModelVersion.objects.filter(pk=active.pk).update(
        metrics={"heldout": {"p_at_1": 0.875, "map_at_r": 0.5}, "active_on_heldout": {"model": "old", "p_at_1": 0.25}}
    )
    text = admin.get("/admin/search/modelversion/").content.decode()
    assert "P@1 0.875, MAP@R 0.500" in text
    assert "old: P@1 0.250" in text
    assert "Train a model on the collection" in text


def test_train_button_starts_a_job_or_says_why_not(admin):
    response = admin.post("/admin/search/modelversion/train/", {"epochs": "3"}, follow=True)
    assert "Cannot train: Training needs at least 2 rock types" in response.content.decode()
    assert not Job.objects.exists()
    for i in range(20):
        Image.objects.create(
            file=f"x/{i}.jpg",
            sha256=f"{i:064d}",
            label=("gneiss", "schist")[i % 2],
            width=28,
            height=28,
            format="JPEG",
            byte_size=1,
        )
    response = admin.post("/admin/search/modelversion/train/", {"epochs": "3", "name": "lab"}, follow=True)
    job = Job.objects.get(kind=Job.Kind.TRAIN_MODEL)
    assert job.params == {"epochs": 3, "name": "lab", "activate": False}
    assert response.redirect_chain[-1][0] == "/jobs/"
