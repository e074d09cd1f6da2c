"""Every result carries `similarity`: the model's calibrated probability of the query's rock type.

Engine, API, CLI JSON and page; a checkpoint with a calibration and an old one without (the fallback).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from search import engine
from search.services.ingestion import image_ingest
from tests.conftest import ROCK_TYPES, image_bytes
from training.calibration import Calibration

pytestmark = pytest.mark.django_db(transaction=True)

LABELS = ("gneiss", "schist", "marble")


def _checkpoint_with(tiny_checkpoint: Path, target: Path, calibration: Calibration) -> Path:
    """The tiny test model's weights, saved again with a calibration."""
    from training.checkpoint import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(tiny_checkpoint)
    return save_checkpoint(
        target,
        model=loaded.model,
        mean=loaded.mean,
        std=loaded.std,
        class_names=list(ROCK_TYPES),
        tta=loaded.tta,
        calibration=calibration,
    )


def _add(n: int) -> list:
    return [image_ingest(data=image_bytes(seed=i), label=LABELS[i % 3])[0] for i in range(n)]


@pytest.fixture
def use_checkpoint(settings, tiny_checkpoint, tmp_path):
    """Make searches use the tiny model with a given calibration (call before adding images)."""

    def use(calibration: Calibration) -> Calibration:
        settings.GEOSIM_DEFAULT_CHECKPOINT = _checkpoint_with(tiny_checkpoint, tmp_path / "calibrated.pt", calibration)
        return calibration

    return use


def test_an_old_checkpoint_without_calibration_answers_with_the_clipped_cosine():
    _add(9)
    answer = engine.search_by_bytes(image_bytes(seed=4), k=9)
    assert len(answer.hits) == 9
    for hit in answer.hits:
        assert hit.similarity == pytest.approx(min(max(hit.score, 0.0), 1.0), abs=1e-6)


def test_similarity_is_the_models_calibration_of_the_score(use_checkpoint):
    calibration = use_checkpoint(Calibration(cosines=(0.0, 0.5, 0.999), probabilities=(0.0, 0.2, 0.9)))
    _add(9)
    answer = engine.search_by_bytes(image_bytes(seed=4), k=9)
    similarities = [hit.similarity for hit in answer.hits]
    assert similarities == pytest.approx([float(calibration.similarity(hit.score)) for hit in answer.hits])
    assert similarities == sorted(similarities, reverse=True), "monotone in the score, so in rank order too"
    assert answer.hits[0].similarity == pytest.approx(0.9)  # the exact match, above the last breakpoint
    assert all(0.0 <= s <= 1.0 for s in similarities)
    assert any(s < 0.9 for s in similarities), "the calibration must differ from the score for this test"


def test_the_vote_is_weighted_by_similarity(use_checkpoint):
    # Only a near-exact match is likely the same rock: the other neighbours must carry no weight.
    use_checkpoint(Calibration(cosines=(0.999999, 1.0), probabilities=(0.0, 1.0)))
    images = _add(9)
    answer = engine.search_by_bytes(image_bytes(seed=4), k=9)
    assert answer.hits[0].image.pk == images[4].pk
    assert all(hit.similarity == 0.0 for hit in answer.hits[1:]), [hit.score for hit in answer.hits]
    assert answer.vote == {images[4].label: 1.0}
    assert answer.predicted_label == images[4].label


def test_api_search_and_similar_return_similarity(use_checkpoint, client):
    calibration = use_checkpoint(Calibration(cosines=(0.0, 0.5, 0.999), probabilities=(0.0, 0.2, 0.9)))
    images = _add(6)
    searched = client.post("/api/v1/search/", {"image": io.BytesIO(image_bytes(seed=2)), "k": 4}).json()
    similar = client.get(f"/api/v1/images/{images[0].pk}/similar/", {"k": 4}).json()
    for body in (searched, similar):
        assert len(body["results"]) == 4
        for hit in body["results"]:
            assert hit["similarity"] == pytest.approx(float(calibration.similarity(hit["score"])), abs=1e-4)
    assert sum(similar["vote"].values()) == pytest.approx(1.0, abs=1e-3)


def test_search_similar_json_carries_similarity(use_checkpoint, tmp_path):
    calibration = use_checkpoint(Calibration(cosines=(0.0, 0.5, 0.999), probabilities=(0.0, 0.2, 0.9)))
    _add(6)
    query = tmp_path / "q.jpg"
    query.write_bytes(image_bytes(seed=3))
    out = io.StringIO()
    call_command("search_similar", str(query), "-k", "3", "--json", stdout=out)
    results = json.loads(out.getvalue())["results"]
    assert [hit["similarity"] for hit in results] == pytest.approx(
        calibration.similarity([hit["score"] for hit in results]).tolist(), abs=1e-4
    )
    text = io.StringIO()
    call_command("search_similar", str(query), "-k", "3", stdout=text)
    assert f"similarity {results[0]['similarity']:.2f}" in text.getvalue()


@pytest.mark.parametrize(
    ("calibration", "percent", "words"),
    [
        (Calibration(cosines=(-1.0, -0.99), probabilities=(0.95, 0.96)), 96, "very likely the same rock type"),
        (Calibration(cosines=(0.9999999, 1.0), probabilities=(0.0, 1.0)), 0, "very likely a different rock type"),
    ],
    ids=["close", "far"],
)
def test_page_shows_similarity_as_bar_percent_and_words(use_checkpoint, client, calibration, percent, words):
    use_checkpoint(calibration)
    images = _add(6)
    html = client.get("/", {"image": images[1].pk, "k": 3}).content.decode()  # the image itself is excluded
    assert len(re.findall(r'data-similarity="([0-9.]+)"', html)) == 3
    assert html.count(f'<span style="width: {percent}%"></span></span><span class="score-value"') == 3
    assert html.count(f">{percent}%</span>") >= 3
    assert html.count(words) == 3
