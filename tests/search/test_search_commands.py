"""manage.py rebuild_index [--wait] and search_similar IMAGE [-k] [--json]."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from search.models import IndexVersion, Job
from search.services.ingestion import image_ingest
from tests.conftest import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def collection():
    return [image_ingest(data=image_bytes(seed=i), label=("gneiss", "schist")[i % 2])[0] for i in range(8)]


def test_rebuild_index_wait_reports_the_live_version(collection):
    before = IndexVersion.objects.get(is_active=True).version
    out = io.StringIO()
    call_command("rebuild_index", "--wait", stdout=out, verbosity=0)
    after = IndexVersion.objects.get(is_active=True)
    assert after.version > before
    assert f"Index version {after.version} is live: 8 vectors (flat" in out.getvalue()
    assert Job.objects.get(kind=Job.Kind.REINDEX).status == Job.Status.SUCCEEDED


def test_rebuild_index_failure_is_a_command_error(collection, monkeypatch):
    from search.services import indexing

    monkeypatch.setattr(indexing, "build_index", lambda *a, **k: (_ for _ in ()).throw(MemoryError("out of memory")))
    with pytest.raises(CommandError, match="failed: MemoryError: out of memory"):
        call_command("rebuild_index", "--wait", stdout=io.StringIO(), verbosity=0)


def test_search_similar_json_has_the_api_shape(collection, tmp_path):
    query = tmp_path / "query.jpg"
    query.write_bytes(image_bytes(seed=3))
    out = io.StringIO()
    call_command("search_similar", str(query), "-k", "3", "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert set(payload) >= {"results", "predicted_label", "model_version", "index_version", "took_ms"}
    assert [set(r) for r in payload["results"]] == [{"id", "score", "similarity", "label", "image_url"}] * 3
    assert payload["results"][0]["id"] == collection[3].pk
    scores = [r["score"] for r in payload["results"]]
    assert scores == sorted(scores, reverse=True)


def test_search_similar_text_output(collection, tmp_path):
    query = tmp_path / "query.png"
    query.write_bytes(image_bytes(seed=5))  # JPEG bytes named .png: decoded by content
    out = io.StringIO()
    call_command("search_similar", str(query), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Predicted rock type: ")
    assert len(lines) == 6
    assert f"#{collection[5].pk}" in lines[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["-k", "0"], "between 1 and 100"), (["-k", "101"], "between 1 and 100"), (["--label", "granite"], "granite")],
)
def test_search_similar_bad_arguments(collection, tmp_path, args, message):
    query = tmp_path / "q.jpg"
    query.write_bytes(image_bytes(seed=1))
    with pytest.raises(CommandError, match=message):
        call_command("search_similar", str(query), *args, stdout=io.StringIO())


def test_search_similar_bad_file(collection, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(CommandError, match="Not a recognised image"):
        call_command("search_similar", str(text), stdout=io.StringIO())
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("search_similar", str(tmp_path / "missing.jpg"), stdout=io.StringIO())
