"""Every 4xx/5xx under /api/ is the JSON error document, including errors raised outside DRF views."""

import pytest
from rest_framework.test import APIClient

from search import engine

from .conftest import SEARCH_URL, assert_error, upload


def test_unknown_api_url_is_404_json(callers, db):
    assert_error(callers.anonymous.get("/api/v1/nothing-here/"), 404, "not_found")
    assert_error(callers.anonymous.get("/api/v2/search/"), 404, "not_found")


def test_wrong_method_is_405_json_with_allow(callers, db):
    response = callers.anonymous.get(SEARCH_URL)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


@pytest.mark.parametrize("debug", [False, True])
def test_a_crash_is_500_json_without_a_traceback(db, settings, monkeypatch, debug):
    settings.DEBUG = debug

    def crash(*args, **kwargs):
        raise RuntimeError("secret internals at /srv/geosim/search/engine.py")

    monkeypatch.setattr(engine, "search_by_bytes", crash)
    response = APIClient(raise_request_exception=False).post(SEARCH_URL, {"image": upload()})
    error = assert_error(response, 500, "internal_server_error")
    assert "secret" not in response.content.decode()
    assert "logged" in error["message"]


@pytest.mark.parametrize("debug", [False, True])
def test_urls_work_without_their_trailing_slash(callers, db, settings, debug):
    settings.DEBUG = debug  # with DEBUG on, Django's APPEND_SLASH would crash on a POST
    assert_error(callers.anonymous.post(SEARCH_URL.rstrip("/"), {"k": 3}), 400, "invalid")
    assert callers.anonymous.get("/api/v1/images").status_code == 200
    assert_error(callers.anonymous.get("/api/v1/nothing"), 404, "not_found")


def test_database_outage_is_503_json(callers, db, monkeypatch):
    from django.db import OperationalError

    def outage(*args, **kwargs):
        raise OperationalError('connection to server at "db" (10.0.0.5), port 5432 failed')

    monkeypatch.setattr(engine, "search_by_bytes", outage)
    response = callers.anonymous.post(SEARCH_URL, {"image": upload()})
    error = assert_error(response, 503, "database_unavailable")
    assert "10.0.0.5" not in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert error["message"]


def test_disallowed_host_is_400_json(db, settings):
    settings.ALLOWED_HOSTS = ["geosim.example"]
    assert_error(APIClient().get("/api/v1/images/", HTTP_HOST="evil.example"), 400)


def test_pages_keep_their_html_errors(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
