"""The pages in a real browser: search by upload and by "more like this", admin upload, explorer, jobs."""

from __future__ import annotations

import re

import pytest

from search.models import Image, Job
from tests.conftest import image_bytes
from tests.search.pages.conftest import add_images

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _write(tmp_path, seed: int, name: str = "query.jpg"):
    path = tmp_path / name
    path.write_bytes(image_bytes(seed=seed))
    return path


def test_upload_shows_k_results_then_more_like_this(page, site, tmp_path):
    images = add_images(12)
    page.goto(site + "/")
    page.select_option("select[name=k]", "5")
    with page.expect_navigation():
        page.set_input_files("input[name=image]", str(_write(tmp_path, seed=3)))  # the page submits on choice
    hits = page.locator(".hit")
    assert hits.count() == 5
    assert page.locator(".score-value").first.inner_text() == "100%"  # the same picture (test model: no calibration)
    assert page.locator(".similarity-words").first.inner_text() == "very likely the same rock type"
    assert page.locator(".hit-image img").first.get_attribute("alt").endswith(f"#{images[3].pk}")
    assert page.locator(".hit-image img").first.evaluate("img => img.naturalWidth") == 28  # media served
    assert page.locator(".prediction-label").text_content() in {"gneiss", "schist", "marble"}

    second = page.locator(".hit-image img").nth(1).get_attribute("alt").split("#")[1]
    page.locator(".hit a.more").nth(1).click()
    page.wait_for_url(re.compile(rf"\?image={second}&k=5"))
    assert page.locator(".hit").count() == 5
    assert f"#{second}" in page.locator(".query-name").inner_text()
    shown = [img.get_attribute("alt").split("#")[1] for img in page.locator(".hit-image img").all()]
    assert second not in shown


def test_admin_upload_is_found_by_search_after_its_job(admin_page, site, tmp_path):
    add_images(6)
    page = admin_page
    new_file = _write(tmp_path, seed=777, name="new-gneiss.jpg")
    page.goto(site + "/admin/search/image/upload/")
    page.set_input_files("input[name=files]", str(new_file))
    page.fill("input[name=label]", "gneiss")
    with page.expect_navigation():
        page.click("#upload-form input[type=submit]")
    assert "added 1" in page.inner_text(".messagelist")
    new = Image.objects.get(original_name="new-gneiss.jpg")
    job = Job.objects.filter(kind=Job.Kind.PROCESS, params__image_ids=[new.pk]).get()
    assert job.status == Job.Status.SUCCEEDED, job.error

    page.goto(site + "/jobs/")
    assert page.locator(f'tr[data-job="{job.pk}"] .status').inner_text() == "Succeeded"

    page.goto(site + "/")
    with page.expect_navigation():
        page.set_input_files("input[name=image]", str(new_file))
    assert page.locator(".hit-image img").first.get_attribute("alt") == f"gneiss #{new.pk}"


def test_explorer_draws_every_point(page, site):
    images = add_images(30, labels=("andesite", "gneiss", "marble", "quartzite", "rhyolite", "schist"))
    page.goto(site + "/explore/")  # in-process tasks: the projection is computed during this request
    page.wait_for_selector("#explorer[data-drawn]")
    assert page.get_attribute("#explorer", "data-points") == str(len(images))
    assert page.evaluate("window.geosimExplorer.drawn") == len(images)
    assert page.locator(".legend-item").count() == 6
    painted = page.evaluate(
        """() => { const c = document.querySelector('#explorer canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert painted > len(images) * 4  # every point is a few opaque pixels
    page.locator(".legend-item").first.click()
    page.wait_for_function("window.geosimExplorer.drawn === 25")


def test_jobs_page_follows_a_job_until_it_finishes(admin_page, site):
    job = Job.objects.create(kind=Job.Kind.REINDEX, status=Job.Status.RUNNING, progress=0.25, done=1, total=4)
    page = admin_page
    page.goto(site + "/jobs/")
    row = page.locator(f'tr[data-job="{job.pk}"]')
    assert row.locator(".status").inner_text() == "Running"
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, progress=1.0, done=4)
    page.wait_for_selector(f'tr[data-job="{job.pk}"][data-status="succeeded"]', timeout=5000)
    assert "4 / 4" in row.inner_text()
    assert page.inner_text("#jobs-live") == "All jobs finished."
