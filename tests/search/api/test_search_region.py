"""`region=x,y,w,h` on POST /api/v1/search/ and `search_similar --region`: validated, and it searches that region."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from search import engine
from search.regions import Region, parse_region

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
