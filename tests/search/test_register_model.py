"""manage.py register_model CHECKPOINT [--name] [--activate] [--wait]."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from search.models import IndexVersion, ModelVersion
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes


@pytest.mark.django_db
def test_register_records_the_checkpoint_inactive(other_tiny_checkpoint, settings):
    out = io.StringIO()
    call_command("register_model", str(other_tiny_checkpoint), "--name", "lab", stdout=out)
    version = ModelVersion.objects.get(name="lab")
    assert not version.is_active and version.embedding_dim == 64
    assert version.checkpoint.startswith(str(settings.GEOSIM_MODEL_DIR))
    assert f"Model version {version.pk} 'lab' (64-d)" in out.getvalue()
    # The same file again is the same version, not a second one.
    call_command("register_model", str(other_tiny_checkpoint), stdout=io.StringIO())
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db
def test_register_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a model")
    with pytest.raises(CommandError, match="is not a GeoSim checkpoint"):
        call_command("register_model", str(bogus), stdout=io.StringIO())
    with pytest.raises(CommandError, match="does not exist"):
        call_command("register_model", str(tmp_path / "missing.pt"), stdout=io.StringIO())
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_register_refuses_a_taken_name(tiny_checkpoint, other_tiny_checkpoint):
    call_command("register_model", str(tiny_checkpoint), "--name", "lab", stdout=io.StringIO())
    with pytest.raises(CommandError, match="named 'lab' exists already"):
        call_command("register_model", str(other_tiny_checkpoint), "--name", "lab", stdout=io.StringIO())
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_register_activate_wait_returns_when_the_new_index_is_live(other_tiny_checkpoint):
    for i in range(6):
        image_ingest(data=image_bytes(seed=i), label="gneiss")
    before = IndexVersion.objects.get(is_active=True)
    out = io.StringIO()
    call_command("register_model", str(other_tiny_checkpoint), "--activate", "--wait", stdout=out, verbosity=0)
    live = IndexVersion.objects.get(is_active=True)
    assert live.version > before.version
    assert live.model_version.embedding_dim == 64 and live.model_version.is_active
    assert f"Index version {live.version} is live: 6 vectors" in out.getvalue()
