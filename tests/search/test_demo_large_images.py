"""`make demo DATASET=<large images>`: the shipped model serves at once, and a model for the images trains meanwhile."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from search.management.commands.demo import Command as Demo
from search.models import Image, Job
from tests.conftest import image_bytes


def _rows(count: int, size: int) -> None:
    for i in range(count):
        Image.objects.create(
            file=f"x/{i}.png",
            sha256=f"{i:064d}",
            label=("gneiss", "schist")[i % 2],
            width=size,
            height=size,
            format="PNG",
            byte_size=1,
        )


def _run(serving: bool) -> str:
    out = io.StringIO()
    Demo(stdout=out)._train_for_large_images(serving=serving)
    return out.getvalue()


@pytest.mark.django_db
def test_large_images_start_a_training_that_activates_when_ready():
    _rows(24, 500)
    text = _run(serving=True)
    job = Job.objects.get(kind=Job.Kind.TRAIN_MODEL)
    assert job.params["activate"] is True and job.params["name"].startswith("demo-trained-")
    assert f"training a model for them in the background (job {job.pk}" in text


@pytest.mark.django_db
def test_small_images_keep_the_shipped_model():
    _rows(24, 28)
    assert _run(serving=True) == ""
    assert not Job.objects.filter(kind=Job.Kind.TRAIN_MODEL).exists()


@pytest.mark.django_db
def test_without_serving_it_says_how_to_train():
    _rows(24, 300)
    assert "python manage.py train_model --activate" in _run(serving=False)
    assert not Job.objects.filter(kind=Job.Kind.TRAIN_MODEL).exists()


@pytest.mark.django_db(transaction=True)
def test_demo_with_a_folder_of_large_images(tmp_path):
    for label in ("gneiss", "schist"):
        (tmp_path / "lab" / label).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "lab" / label / f"{i}.png").write_bytes(
                image_bytes(seed=i + (10 if label == "schist" else 0), size=(300, 200), fmt="PNG")
            )
    out = io.StringIO()
    call_command("demo", dataset=tmp_path / "lab", no_serve=True, stdout=out)
    text = out.getvalue()
    assert "GeoSim is ready" in text
    assert Image.objects.filter(width=300, height=200).count() == 6
    assert all(image.thumbnail for image in Image.objects.all())  # large images get display thumbnails
