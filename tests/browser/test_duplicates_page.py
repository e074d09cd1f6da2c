"""The near-duplicates review page in a real browser: no axe-core violations, and a group resolved from the keyboard."""

from __future__ import annotations

import pytest

from search.models import DuplicateGroup, Image
from search.services.duplicates import duplicates_request, open_groups
from search.services.ingestion import image_ingest
from tests.browser.test_accessibility import _assert_every_control_is_reachable, _clean
from tests.conftest import image_bytes
from tests.search.curation.test_duplicates import _reencoded

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _two_groups() -> list[list[Image]]:
    groups = []
    for seed, label in ((81, "gneiss"), (82, "marble")):
        data = image_bytes(seed=seed)
        copies = [data, _reencoded(data, scale=2.0), _reencoded(data, fmt="JPEG", quality=96)]
        groups.append([image_ingest(data=copy, label=label)[0] for copy in copies])
    image_ingest(data=image_bytes(seed=83), label="schist")  # no copy: in no group
    duplicates_request()
    return groups


def test_the_duplicates_page_has_no_violations_and_works_from_the_keyboard(admin_page, site, axe):
    groups = _two_groups()
    page = admin_page
    page.goto(site + "/duplicates/")
    assert page.locator(".dup-group").count() == 2
    violations = axe(page)
    assert not violations, _clean(violations)
    _assert_every_control_is_reachable(page, radio_group_is_one_stop=True)

    first, kept = open_groups().first(), groups[0][1]
    section = page.locator(f"#group-{first.pk}")
    section.locator("input[name=keep]:checked").focus()  # the suggestion: the largest (the ×2 copy)
    assert section.locator("input[name=keep]:checked").get_attribute("value") == str(kept.pk)
    page.keyboard.press("ArrowLeft")  # arrows move the choice within the group...
    assert section.locator("input[name=keep]:checked").get_attribute("value") == str(groups[0][0].pk)
    page.keyboard.press("ArrowRight")  # ...and back to the one to keep
    assert section.locator(f"input[name=keep][value='{kept.pk}']").is_checked()
    section.locator("button[value=keep_one]").focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator(".dup-group").count() == 1
    assert "resolved" in page.inner_text(".messages")
    assert set(Image.objects.filter(pk__in=[i.pk for i in groups[0]]).values_list("pk", flat=True)) == {kept.pk}
    assert DuplicateGroup.objects.get(pk=first.pk).resolution == "keep_one"

    # Not duplicates: the second group is kept whole and leaves the page.
    with page.expect_navigation():
        page.click(".dup-group button[value=keep_all]")
    assert page.locator(".dup-group").count() == 0
    assert Image.objects.filter(pk__in=[i.pk for i in groups[1]]).count() == 3
    violations = axe(page)  # the empty page and its message
    assert not violations, _clean(violations)


def test_a_bad_decision_shows_an_error_and_changes_nothing(admin_page, site):
    _two_groups()
    page = admin_page
    page.goto(site + "/duplicates/")
    page.locator(".dup-group").first.locator("button[value=delete_selected]").click()  # nothing ticked
    page.wait_for_selector("#review-error")
    assert "Select the images to delete" in page.inner_text("#review-error")
    assert Image.objects.count() == 7 and page.locator(".dup-group").count() == 2
