"""Real Chromium (Debian's /usr/bin/chromium) driven by Playwright against pytest-django's live server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("GEOSIM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "pw-browser-admin-123"


@pytest.fixture(scope="session")
def chromium():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) to run browser tests")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
    # browser steps are ordinary blocking calls, so Django's async-safety check does not apply.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # never leak into other tests' subprocesses


@pytest.fixture
def site(live_server):
    """The live server's base URL; the site's own media view serves this test's MEDIA_ROOT (read per request)."""
    return live_server.url


@pytest.fixture
def page(chromium, site):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def admin_page(page, site, django_user_model):
    """A browser tab logged in as a superuser through the admin login form."""
    django_user_model.objects.create_superuser("admin", "admin@example.org", ADMIN_PASSWORD)
    page.goto(f"{site}/admin/login/?next=/admin/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{site}/admin/")
    return page


# axe-core (npm), installed by .ci/run outside the clone; GEOSIM_AXE_JS names its axe.min.js.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
_AXE_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary.replace(/\\s+/g, " ")),
    count: v.nodes.length,
  }));
}"""


def _axe_path() -> Path | None:
    named = os.environ.get("GEOSIM_AXE_JS")
    if named:
        return Path(named)
    cache = Path(os.environ.get("GEOSIM_CI_CACHE", "/var/cache/geosim-ci"))
    found = sorted(cache.glob("axe-core-*/node_modules/axe-core/axe.min.js"))
    return found[-1] if found else None


@pytest.fixture(scope="session")
def axe_js() -> Path:
    path = _axe_path()
    if path is None or not path.is_file():
        reason = f"axe-core is absent ({path or 'GEOSIM_AXE_JS unset'}): .ci/run installs it (npm axe-core)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def axe(axe_js):
    """``axe(page)``: the WCAG 2 A/AA violations axe-core finds on the page as it is now."""

    def violations(tab) -> list[dict]:
        if not tab.evaluate("typeof window.axe !== 'undefined'"):
            tab.add_script_tag(path=str(axe_js))
        return tab.evaluate(_AXE_RUN, AXE_TAGS)

    return violations
