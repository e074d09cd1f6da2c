"""Region search in a real browser: drag a box on the query image, adjust it by keyboard, re-run the query."""

from __future__ import annotations

import re

import pytest

from tests.conftest import image_bytes
from tests.search.pages.conftest import add_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_drag_a_box_move_it_with_the_keyboard_and_search_that_region(page, site, tmp_path):
    add_images(12)
    query = tmp_path / "wide.png"
    query.write_bytes(image_bytes(seed=900, size=(200, 150), fmt="PNG"))
    page.goto(site + "/")
    with page.expect_navigation():
        page.set_input_files("input[name=image]", str(query))
    frame = page.locator(".region-picker .framed")
    box = frame.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.75, steps=5)
    page.mouse.up()
    x, y, w, h = (int(v) for v in page.input_value("#id_region").split(","))
    assert abs(x - 50) <= 2 and abs(y - 38) <= 2 and abs(w - 100) <= 3 and abs(h - 75) <= 3
    assert page.locator("#region-box").is_visible()

    page.locator("#region-box").focus()  # keyboard: arrows move the box, Shift+arrows resize it
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowDown")
    assert page.input_value("#id_region") == f"{x + 4},{y},{w},{h + 4}"

    with page.expect_navigation():
        page.click("text=Search this region")
    assert re.search(r"[?&]upload=[0-9a-f]{64}", page.url) and f"region={x + 4}%2C{y}%2C{w}%2C{h + 4}" in page.url
    assert page.locator(".hit").count() > 0
    assert page.input_value("#id_region") == f"{x + 4},{y},{w},{h + 4}"
    assert page.locator("#region-box").is_visible()
