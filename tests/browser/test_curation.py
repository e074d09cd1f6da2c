"""Curating in a real browser: the metadata filters on the search page, and marking results to refine."""

from __future__ import annotations

import pytest

from search.models import Image
from search.services.feedback import search_with_feedback
from tests.conftest import image_bytes
from tests.search.pages.conftest import add_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _with_metadata(images: list[Image]) -> None:
    for i, image in enumerate(images):
        image.collection = ("well-a", "well-b")[i % 2]
        image.tags = ["core"] if i % 3 == 0 else []
        image.depth_m = float(i * 10)
        image.latitude, image.longitude = 50.0 + i, 2.0
    Image.objects.bulk_update(images, ["collection", "tags", "depth_m", "latitude", "longitude"])


def _grid_ids(page) -> set[int]:
    return {int(a.get_attribute("title").split("#")[1]) for a in page.locator(".grid a[title]").all()}


def _hit_ids(page) -> list[int]:
    return [int(img.get_attribute("alt").split("#")[1]) for img in page.locator(".hit-image img").all()]


def test_filters_narrow_the_grid_and_the_search(page, site, tmp_path):
    images = add_images(12)
    _with_metadata(images)
    page.goto(site + "/")
    page.fill("#filters input[name=collection]", "well-b")
    page.fill("#filters input[name=depth_max]", "60")
    with page.expect_navigation():
        page.click("#filters button[type=submit]")
    wanted = {image.pk for i, image in enumerate(images) if i % 2 == 1 and i * 10 <= 60}
    assert _grid_ids(page) == wanted
    assert "Matching images" in page.inner_text(".location-summary")
    assert "latitude 51.000° to 55.000°" in page.inner_text(".location-summary")

    query = tmp_path / "q.jpg"
    query.write_bytes(image_bytes(seed=4))
    with page.expect_navigation():
        page.set_input_files("input[name=image]", str(query))  # the upload keeps the filters
    assert set(_hit_ids(page)) == wanted
    with page.expect_navigation():
        page.click("#clear-filters")
    assert len(_grid_ids(page)) == 12


def test_marking_results_refines_the_search(page, site):
    images = add_images(12)
    page.goto(f"{site}/?image={images[0].pk}&k=5#results")
    before = _hit_ids(page)
    assert len(before) == 5 and images[0].pk not in before
    # Mark the last result "less like" and the first "more like", then refine.
    page.locator(f'input[name=negative][value="{before[-1]}"]').check()
    page.locator(f'input[name=positive][value="{before[0]}"]').check()
    with page.expect_navigation():
        page.click("#refine-button")
    after = _hit_ids(page)
    assert len(after) == 5 and images[0].pk not in after
    assert page.locator(f'input[name=positive][value="{before[0]}"]').is_checked()  # marks are kept
    # The page searched with the marks: the same list as the feedback service gives for them.
    expected = search_with_feedback(image_id=images[0].pk, positive=[before[0]], negative=[before[-1]], k=5)
    assert after == [hit.image.pk for hit in expected.hits]
