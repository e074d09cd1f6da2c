"""A rock type changed on an indexed image reaches label-filtered searches at once, not at the next index version."""

from __future__ import annotations

from search import live_index
from search.models import IndexVersion
from search.services.metadata import metadata_import_csv
from tests.conftest import image_bytes
from tests.search.api.conftest import SEARCH_URL, upload


def _label_search(callers, label: str) -> set[int]:
    response = callers.anonymous.post(SEARCH_URL, {"image": upload(image_bytes(seed=77)), "k": 10, "label": label})
    assert response.status_code == 200, response.content
    return {hit["id"] for hit in response.json()["results"]}


def test_a_label_patched_through_the_api_is_searchable_under_it(callers, collection):
    gneiss_before = _label_search(callers, "gneiss")  # fills the live index's cached gneiss ids
    moved = collection[1]  # a schist
    assert moved.pk not in gneiss_before
    response = callers.staff.patch(f"/api/v1/images/{moved.pk}/", {"label": "gneiss"}, format="json")
    assert response.status_code == 200, response.content
    assert _label_search(callers, "gneiss") == gneiss_before | {moved.pk}
    assert moved.pk not in _label_search(callers, "schist")


def test_a_label_imported_from_csv_is_searchable_under_it(callers, collection):
    marble_before = _label_search(callers, "marble")
    moved = collection[0]  # a gneiss
    report = metadata_import_csv(f"sha256,label\n{moved.sha256},marble\n")
    assert report.applied, report.problems
    assert _label_search(callers, "marble") == marble_before | {moved.pk}


def test_another_process_s_label_change_is_seen_at_its_next_check(callers, collection):
    schist_before = _label_search(callers, "schist")
    moved = collection[2]  # a marble
    # What another process's edit leaves behind: the row changed, the live version's counter bumped,
    # nothing told this process.
    type(moved).objects.filter(pk=moved.pk).update(label="schist")
    IndexVersion.objects.filter(is_active=True).update(labels_changed=live_index.current().labels_changed + 1)
    assert _label_search(callers, "schist") == schist_before | {moved.pk}
