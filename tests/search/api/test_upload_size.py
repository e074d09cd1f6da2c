"""Uploads over GEOSIM_MAX_UPLOAD_BYTES are 413 JSON: refused from the declared length, or by the file's size."""

import pytest
from django.test import RequestFactory

from search.api.exceptions import PayloadTooLarge
from search.middleware import ApiGuardMiddleware, UploadLimitHandler
from search.models import Image
from tests.conftest import image_bytes

from .conftest import IMAGES_URL, SEARCH_URL, assert_error, upload


def test_declared_oversized_body_is_413_before_it_is_read(settings):
    settings.GEOSIM_MAX_UPLOAD_BYTES = 1000

    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body must not be read")

        readline = read

    request = RequestFactory().post(SEARCH_URL, data=b"", content_type="multipart/form-data; boundary=x")
    request.META.update({"CONTENT_LENGTH": str(10_000_000), "wsgi.input": Unreadable()})
    request._stream = Unreadable()
    response = ApiGuardMiddleware(lambda r: r.body)(request)
    assert "1,000 bytes" in assert_error(response, 413, "too_large")["message"]


def test_oversized_search_upload_is_413(callers, db, settings):
    settings.GEOSIM_MAX_UPLOAD_BYTES = 2_000
    big = image_bytes(seed=1, size=(200, 200), fmt="PNG")
    assert len(big) > 70_000  # beyond the multipart slack too: the middleware answers
    assert_error(callers.anonymous.post(SEARCH_URL, {"image": upload(big)}), 413, "too_large")


def test_file_just_over_the_limit_is_413_too(callers, db, settings):
    data = image_bytes(seed=2, size=(64, 64), fmt="PNG")
    settings.GEOSIM_MAX_UPLOAD_BYTES = len(data) - 1  # within the middleware's slack for the envelope
    assert_error(callers.staff.post(IMAGES_URL, {"image": upload(data)}), 413, "too_large")
    assert not Image.objects.exists()
    settings.GEOSIM_MAX_UPLOAD_BYTES = len(data)
    assert callers.staff.post(IMAGES_URL, {"image": upload(data)}).status_code == 201


def test_a_file_growing_past_the_limit_stops_the_parse(settings):
    settings.GEOSIM_MAX_UPLOAD_BYTES = 5_000
    request = RequestFactory().post(SEARCH_URL, {"image": upload(b"x" * 20_000)})
    request.upload_handlers.insert(0, UploadLimitHandler(request))
    with pytest.raises(PayloadTooLarge):
        request.FILES  # noqa: B018 — parsing is what is tested
    settings.GEOSIM_MAX_UPLOAD_BYTES = 20_000
    request = RequestFactory().post(SEARCH_URL, {"image": upload(b"x" * 20_000)})
    request.upload_handlers.insert(0, UploadLimitHandler(request))
    assert request.FILES["image"].size == 20_000


def test_pages_are_not_affected(client, db, settings):
    settings.GEOSIM_MAX_UPLOAD_BYTES = 10
    response = client.post("/admin/login/", {"username": "x" * 100, "password": "y"})
    assert response.status_code == 200
