"""`region=x,y,w,h` on POST /api/v1/search/ and `search_similar --region`: validated, and it searches that region."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from search import engine
from search.regions import Region, parse_region
from search.services.ingestion import image_ingest

from .conftest import SEARCH_URL, assert_error, upload


def _jpeg(width: int, height: int, *, exif_rotated: bool = False) -> bytes:
    pixels = np.random.default_rng(3).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    image = PILImage.fromarray(pixels)
    if exif_rotated:  # stored sideways, shown upright (orientation 6: rotate 90° clockwise on display)
        exif = image.getexif()
        exif[0x0112] = 6
        image.save(out, format="JPEG", exif=exif)
    else:
        image.save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    "region, message",
    [
        ("1,2,3", "is not x,y,w,h"),
        ("a,b,c,d", "is not x,y,w,h"),
        ("-1,0,5,5", "is not x,y,w,h"),
        ("1.5,0,5,5", "is not x,y,w,h"),
        ("0,0,5,5,5", "is not x,y,w,h"),
        ("²,0,5,5", "is not x,y,w,h"),
        ("0,0,0,5", "is empty"),
        ("0,0,5,0", "is empty"),
    ],
)
def test_malformed_or_empty_region_is_400(callers, db, region, message):
    error = assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(), "region": region}), 400, "invalid")
    assert message in error["fields"]["region"][0]


@pytest.mark.parametrize("region", ["0,0,29,5", "20,0,9,5", "0,27,5,2", "28,28,1,1", "99999999999,0,1,1"])
def test_region_outside_the_image_is_400(callers, collection, region):
    error = assert_error(
        callers.anonymous.post(SEARCH_URL, {"image": upload(), "region": region}), 400, "invalid_region"
    )
    assert "outside the image, which is 28×28 pixels" in error["message"]


def test_region_inside_the_image_is_searched(callers, collection):
    whole = callers.anonymous.post(SEARCH_URL, {"image": upload(), "k": 6}).json()
    part = callers.anonymous.post(SEARCH_URL, {"image": upload(), "k": 6, "region": "0,0,14,14"}).json()
    edge = callers.anonymous.post(SEARCH_URL, {"image": upload(), "k": 6, "region": "0,0,28,28"}).json()
    assert [r["score"] for r in edge["results"]] == [r["score"] for r in whole["results"]]
    assert [r["score"] for r in part["results"]] != [r["score"] for r in whole["results"]]


def test_region_is_in_pixels_of_the_image_as_shown(collection):
    """A 40×20 JPEG with EXIF orientation 6 is 20×40 as shown: a region 20 wide and 40 tall fits, 40×20 does not."""
    data = _jpeg(40, 20, exif_rotated=True)
    assert engine.search_by_bytes(data, k=3, region=Region(0, 0, 20, 40)).hits
    with pytest.raises(engine.InvalidRegion, match="which is 20×40 pixels"):
        engine.search_by_bytes(data, k=3, region=Region(0, 0, 40, 20))


def test_parse_region():
    assert parse_region(" 1, 2 ,3,4 ") == Region(1, 2, 3, 4)
    assert parse_region("") is None and parse_region(None) is None
    assert str(Region(1, 2, 3, 4)) == "1,2,3,4"


def test_search_similar_region(collection, tmp_path):
    query = tmp_path / "q.jpg"
    query.write_bytes(_jpeg(28, 28))
    out = io.StringIO()
    call_command("search_similar", str(query), "--region", "2,2,20,20", "-k", "3", stdout=out)
    assert "Predicted rock type" in out.getvalue()
    with pytest.raises(CommandError, match="--region: Region '2,2' is not x,y,w,h"):
        call_command("search_similar", str(query), "--region", "2,2", stdout=io.StringIO())
    with pytest.raises(CommandError, match="outside the image"):
        call_command("search_similar", str(query), "--region", "20,20,20,20", stdout=io.StringIO())


# -- searching a region of a large image, with a model that works on crops -------------------------------


@pytest.fixture
def tiled_model(settings, tmp_path_factory):
    """A small untrained network with a tiled input geometry (64 px crops at a 128 px working side)."""
    import torch

    from training.checkpoint import save_checkpoint
    from training.geometry import InputGeometry
    from training.model import EmbeddingNet, ModelConfig

    torch.manual_seed(0)
    model = EmbeddingNet(ModelConfig(widths=(8, 16), blocks_per_stage=1)).eval()
    path = save_checkpoint(
        tmp_path_factory.mktemp("tiled") / "tiled.pt",
        model=model,
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
        class_names=["a", "b"],
        tta=False,
        geometry=InputGeometry(input_size=32, crop_size=64, working_side=128, max_crops=4),
    )
    settings.GEOSIM_DEFAULT_CHECKPOINT = path
    return path


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _plain(seed: int) -> bytes:
    """One colour with noise of its own strength, 256×192."""
    rng = np.random.default_rng(seed)
    return _png(np.clip(rng.integers(20, 236, 3) + rng.normal(0, rng.uniform(5, 40), (192, 256, 3)), 0, 255))


def _quilt(seed: int) -> bytes:
    """Four 128 px quadrants of different noisy colours, 256×256."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((256, 256, 3))
    for top in (0, 128):
        for left in (0, 128):
            colour = rng.integers(20, 236, 3)
            pixels[top : top + 128, left : left + 128] = colour + rng.normal(0, 18, (128, 128, 3))
    return _png(np.clip(pixels, 0, 255))


def _contains(box: list[int], region: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    rx, ry, rw, rh = region
    return x <= rx and y <= ry and x + w >= rx + rw and y + h >= ry + rh


@pytest.mark.parametrize("region", [(20, 20, 80, 80), (150, 30, 60, 70), (100, 90, 100, 100)])
def test_a_region_cut_from_an_indexed_image_finds_that_image_first(callers, transactional_db, tiled_model, region):

    images = [image_ingest(data=_plain(seed), label="x")[0] for seed in range(10)]
    source = images[6]
    body = {"image": upload(_plain(6), name="six.png", content_type="image/png"), "k": 3}
    response = callers.anonymous.post(SEARCH_URL, {**body, "region": ",".join(map(str, region))})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert results[0]["id"] == source.pk
    assert all(len(hit["match_box"]) == 4 for hit in results)  # 256 px results are larger than one input


@pytest.mark.parametrize("region", [(20, 20, 80, 80), (150, 30, 60, 70), (140, 140, 100, 100), (10, 150, 90, 90)])
def test_the_match_box_contains_the_region_the_query_was_cut_from(callers, transactional_db, tiled_model, region):

    images = [image_ingest(data=_quilt(seed), label="x")[0] for seed in range(5)]
    source = images[2]
    query = {"image": upload(_quilt(2), name="q.png", content_type="image/png"), "k": 5}
    response = callers.anonymous.post(SEARCH_URL, {**query, "region": ",".join(map(str, region))})
    hit = next(hit for hit in response.json()["results"] if hit["id"] == source.pk)
    assert _contains(hit["match_box"], region), (hit["match_box"], region)
    x, y, w, h = hit["match_box"]
    assert w < 256 and h < 256  # a part of the image, not all of it


def test_small_results_carry_no_match_box(callers, collection):
    results = callers.anonymous.post(SEARCH_URL, {"image": upload(), "k": 3}).json()["results"]
    assert results and all("match_box" not in hit for hit in results)
