"""Accessibility in a real browser: axe-core finds no WCAG 2 A/AA violation on any page, and every
control works from the keyboard alone."""

from __future__ import annotations

import pytest

from search.models import Job
from tests.conftest import image_bytes
from tests.search.pages.conftest import add_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROCKS = ("andesite", "gneiss", "marble", "quartzite", "rhyolite", "schist")


def _clean(violations: list[dict]) -> str:
    return "\n".join(
        f"{v['id']} ({v['impact']}, {v['count']}×): {v['help']}\n  " + "\n  ".join(v["nodes"]) for v in violations
    )


def test_search_and_results_pages_have_no_violations(page, site, axe, tmp_path):
    add_images(24, labels=ROCKS + ("",))
    page.goto(site + "/")
    violations = axe(page)
    assert not violations, _clean(violations)

    query = tmp_path / "query.jpg"
    query.write_bytes(image_bytes(seed=5))
    with page.expect_navigation():
        page.set_input_files("input[name=image]", str(query))
    assert page.locator(".hit").count() == 10
    violations = axe(page)
    assert not violations, _clean(violations)

    page.goto(site + "/?grid_label=gneiss")  # an active rock-type chip
    violations = axe(page)
    assert not violations, _clean(violations)

    page.goto(site + "/no/such/page/")  # the project's 404 page
    violations = axe(page)
    assert not violations, _clean(violations)


def test_image_and_explorer_pages_have_no_violations(page, site, axe):
    images = add_images(12, labels=ROCKS)
    page.goto(f"{site}/images/{images[0].pk}/")
    violations = axe(page)
    assert not violations, _clean(violations)
    page.goto(site + "/explore/")
    page.wait_for_selector("#explorer[data-drawn]")
    violations = axe(page)
    assert not violations, _clean(violations)


def test_jobs_and_admin_upload_pages_have_no_violations(admin_page, site, axe):
    Job.objects.create(kind=Job.Kind.REINDEX, status=Job.Status.FAILED, progress=0.5, done=1, total=2, error="boom")
    Job.objects.create(kind=Job.Kind.PROCESS, status=Job.Status.SUCCEEDED, progress=1.0, done=2, total=2)
    page = admin_page
    page.goto(site + "/jobs/")
    violations = axe(page)
    assert not violations, _clean(violations)
    page.goto(site + "/admin/search/image/upload/")
    violations = axe(page)
    assert not violations, _clean(violations)


_FOCUSABLE = "a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, [tabindex='0']"


def _tab_order(page, limit: int = 400) -> list[str]:
    """Press Tab from the top of the page until focus leaves it; the focused elements' keys, in order."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    seen: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        key = page.evaluate("document.activeElement === document.body ? null : document.activeElement.dataset.tabKey")
        if key is None or (seen and key == seen[0]):
            break
        seen.append(key)
    return seen


def _assert_every_control_is_reachable(page, *, radio_group_is_one_stop: bool = False) -> None:
    """Every visible control is reached by Tab. With ``radio_group_is_one_stop`` only a group's checked radio
    counts (arrows move within a radio group, as browsers do)."""
    controls = page.evaluate(
        """([selector, oneStop]) => Array.from(document.querySelectorAll(selector))
             .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== "hidden")
             .filter((el) => !(oneStop && el.type === "radio" && !el.checked))
             .map((el, i) => { el.dataset.tabKey = String(i); return el.outerHTML.slice(0, 120); })""",
        [_FOCUSABLE, radio_group_is_one_stop],
    )
    reached = set(_tab_order(page))
    missing = [html for i, html in enumerate(controls) if str(i) not in reached]
    assert not missing, f"not reachable with Tab: {missing}"


def test_search_page_works_from_the_keyboard(page, site, tmp_path):
    add_images(12, labels=ROCKS)
    page.goto(site + "/")
    _assert_every_control_is_reachable(page)

    page.focus("body")
    for _ in range(30):  # Tab to the upload control: it shows its focus, and Enter activates it
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_image":
            break
    assert page.evaluate("getComputedStyle(document.getElementById('dropzone')).outlineStyle") == "solid"
    # Keyboard activation is the click that opens the file chooser (the OS dialog itself is not asserted:
    # headless Chromium reports it unreliably under load).
    page.evaluate(
        """() => document.getElementById("id_image").addEventListener(
             "click", (event) => { window.uploadActivated = true; event.preventDefault(); }, {once: true})"""
    )
    page.keyboard.press("Enter")
    page.wait_for_function("window.uploadActivated === true")
    query = tmp_path / "query.jpg"
    query.write_bytes(image_bytes(seed=3))
    with page.expect_navigation():
        page.set_input_files("input[name=image]", str(query))
    assert page.locator(".hit").count() == 10

    # K and the rock type change from the keyboard and search again, without the file.
    page.focus("select[name=k]")
    page.keyboard.press("Home")  # 5
    page.focus("select[name=label]")
    page.select_option("select[name=label]", "gneiss")
    page.focus("#search-form button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".hit").count() == 2  # the two gneisses of twelve
    assert page.locator(".query-name").inner_text() == "query.jpg"

    tile = page.locator(".grid a").first  # the collection picker: a link per image
    tile.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "image=" in page.url and page.locator(".hit").count() >= 1


def test_explorer_works_from_the_keyboard(page, site):
    add_images(18, labels=ROCKS)
    page.goto(site + "/explore/")
    page.wait_for_selector("#explorer[data-drawn]")
    _assert_every_control_is_reachable(page)

    page.focus("#explorer canvas")
    before = page.evaluate("window.geosimExplorer")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("+")
    page.wait_for_function(f"window.geosimExplorer.zoom > {before['zoom']}")
    after = page.evaluate("window.geosimExplorer")
    assert after["yaw"] > before["yaw"] and after["pitch"] < before["pitch"]
    page.keyboard.press("0")
    page.wait_for_function(f"window.geosimExplorer.zoom === {before['zoom']}")

    page.locator(".legend-item").first.focus()
    page.keyboard.press("Space")
    page.wait_for_function("window.geosimExplorer.drawn === 15")
    assert page.locator(".legend-item").first.get_attribute("aria-pressed") == "false"
    page.focus('[data-action="spin"]')
    page.keyboard.press("Enter")
    assert page.get_attribute('[data-action="spin"]', "aria-pressed") == "true"


def test_jobs_page_works_from_the_keyboard(admin_page, site):
    Job.objects.create(kind=Job.Kind.REINDEX, status=Job.Status.RUNNING, progress=0.5, done=1, total=2)
    page = admin_page
    page.goto(site + "/jobs/")
    _assert_every_control_is_reachable(page)
    bar = page.locator("#jobs [role=progressbar]").first
    assert bar.get_attribute("aria-valuenow") == "50"
    assert page.get_attribute("#jobs-live", "role") == "status"  # live progress is announced
