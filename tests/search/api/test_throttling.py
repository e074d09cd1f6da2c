"""Rate limits: GEOSIM_SEARCH_RATE for searches, GEOSIM_UPLOAD_RATE for uploads; 429 JSON with Retry-After."""

import pytest

from .conftest import IMAGES_URL, SEARCH_URL, assert_error, upload


def test_search_over_the_rate_is_429_with_retry_after(callers, db, settings):
    settings.GEOSIM_SEARCH_RATE = "2/minute"
    for _ in range(2):
        assert callers.anonymous.post(SEARCH_URL, {}).status_code == 400  # counted, even when invalid
    response = callers.anonymous.post(SEARCH_URL, {"image": upload()})
    error = assert_error(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    assert "throttled" in error["message"].lower()


def test_similar_shares_the_search_budget(callers, db, settings):
    settings.GEOSIM_SEARCH_RATE = "1/minute"
    callers.anonymous.post(SEARCH_URL, {})
    assert_error(callers.anonymous.get(f"{IMAGES_URL}1/similar/"), 429, "throttled")


def test_each_user_has_their_own_budget(callers, db, settings):
    settings.GEOSIM_SEARCH_RATE = "1/minute"
    assert callers.anonymous.post(SEARCH_URL, {}).status_code == 400
    assert callers.anonymous.post(SEARCH_URL, {}).status_code == 429
    assert callers.user.post(SEARCH_URL, {}).status_code == 400


def test_a_forged_forwarded_for_header_does_not_reset_the_budget(callers, db, settings):
    settings.GEOSIM_SEARCH_RATE = "1/minute"
    assert callers.anonymous.post(SEARCH_URL, {}, HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 400
    assert_error(callers.anonymous.post(SEARCH_URL, {}, HTTP_X_FORWARDED_FOR="10.0.0.2"), 429, "throttled")


def test_no_rate_means_no_limit(callers, db, settings):
    settings.GEOSIM_SEARCH_RATE = None  # GEOSIM_SEARCH_RATE=off
    assert all(callers.anonymous.post(SEARCH_URL, {}).status_code == 400 for _ in range(30))


def test_uploads_are_limited_but_reads_are_not(callers, db, settings):
    settings.GEOSIM_UPLOAD_RATE = "1/minute"
    assert callers.staff.post(IMAGES_URL, {"image": upload()}).status_code == 201
    assert_error(callers.staff.post(IMAGES_URL, {"image": upload()}), 429, "throttled")
    assert all(callers.staff.get(IMAGES_URL).status_code == 200 for _ in range(3))


def _second_process_cache():
    """A cache client of its own, as another web process (or host) of the same deployment would have."""
    from django.conf import settings
    from django.core.cache import CacheHandler

    return CacheHandler(settings.CACHES)["throttle"]


@pytest.fixture
def shared_throttle_cache(settings):
    if not settings.REDIS_URL:
        pytest.skip("the shared throttle cache is Redis: set REDIS_URL (CI does)")
    return _second_process_cache()


def test_the_limit_is_global_across_processes(callers, db, settings, shared_throttle_cache, monkeypatch):
    """Half the budget spent by this process, the rest by "another process": the third request is refused."""
    settings.GEOSIM_SEARCH_RATE = "3/minute"
    assert callers.anonymous.post(SEARCH_URL, {}).status_code == 400  # spent here
    from search.api import throttles

    real_caches = throttles.caches
    monkeypatch.setattr(throttles, "caches", {throttles.THROTTLE_CACHE: shared_throttle_cache})
    assert shared_throttle_cache is not real_caches[throttles.THROTTLE_CACHE]
    assert callers.anonymous.post(SEARCH_URL, {}).status_code == 400  # spent in the other process
    assert callers.anonymous.post(SEARCH_URL, {}).status_code == 400
    assert_error(callers.anonymous.post(SEARCH_URL, {}), 429, "throttled")
    monkeypatch.setattr(throttles, "caches", real_caches)
    assert_error(callers.anonymous.post(SEARCH_URL, {}), 429, "throttled")  # and this process agrees


def test_an_unreachable_throttle_cache_lets_searches_through(callers, db, settings, caplog):
    """Redis down: searches are answered (not 500), without waiting, and the outage is logged."""
    from tests.faults.conftest import free_port

    settings.GEOSIM_SEARCH_RATE = "1/minute"
    working = settings.CACHES
    settings.CACHES = {
        **working,
        "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        },
    }
    for _ in range(3):
        assert callers.anonymous.post(SEARCH_URL, {}).status_code == 400  # validated, not throttled, not 500
    assert "cache is unreachable" in caplog.text
    settings.CACHES = working  # so that the fixtures can reset the counters
