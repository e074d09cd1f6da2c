"""The PostgreSQL backend pings a reused connection only when it has not proven itself a moment ago."""

import pytest
from django.db import DatabaseError, connection, connections

from geosim_site.postgresql import base

pytestmark = pytest.mark.django_db


@pytest.fixture
def wrapper(monkeypatch):
    """A connection of its own to the test database, persistent and health-checked as in production."""
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL=postgres://…")
    settings_dict = {**connections.settings["default"], "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}
    own = base.DatabaseWrapper(settings_dict, alias="health-check-test")
    own.pings = 0
    real_is_usable = own.is_usable

    def counting_is_usable() -> bool:
        own.pings += 1
        return real_is_usable()

    monkeypatch.setattr(own, "is_usable", counting_is_usable)
    yield own
    own.close()


def _request(wrapper, sql: str = "SELECT 1") -> None:
    """What one request does to its thread's connection: the signals around it, and its query."""
    wrapper.close_if_unusable_or_obsolete()  # request_started
    try:
        with wrapper.cursor() as cursor:
            cursor.execute(sql)
    finally:
        wrapper.close_if_unusable_or_obsolete()  # request_finished


def test_the_settings_select_this_backend():
    if connection.vendor != "postgresql":
        pytest.skip("needs DATABASE_URL=postgres://…")
    assert isinstance(connections["default"], base.DatabaseWrapper)


def test_a_connection_used_a_moment_ago_is_not_pinged(wrapper):
    for _ in range(5):
        _request(wrapper)
    assert wrapper.pings == 0


def test_a_connection_idle_for_longer_is_pinged_before_use(wrapper, monkeypatch):
    _request(wrapper)
    monkeypatch.setattr(base, "TRUSTED_SECONDS", 0.0)  # as if a long time had passed
    _request(wrapper)
    _request(wrapper)
    assert wrapper.pings == 2


def test_a_connection_that_failed_is_pinged_until_it_serves_a_request_cleanly(wrapper):
    _request(wrapper)
    with pytest.raises(DatabaseError):
        _request(wrapper, "SELECT * FROM no_such_table")
    assert wrapper.pings == 1  # Django checks it when the failed request ends
    _request(wrapper)
    assert wrapper.pings == 2  # and it is checked again before the next request's query
    _request(wrapper)
    assert wrapper.pings == 2  # served that one cleanly: trusted again
