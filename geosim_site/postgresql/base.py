"""Django's PostgreSQL backend, with a health check that skips connections proven good a moment ago.

With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before the first query of every request that reuses
a persistent connection. A search makes one query of its own (the rows of its answer), so the ping
doubled its round trips to the database; under load each round trip waits for the database process to
get a core, and the ping alone took about a sixth of a gunicorn thread's time (docs/PERFORMANCE.md, "HTTP").

Here a connection that served queries without an error less than ``TRUSTED_SECONDS`` ago is used without
the ping; one idle for longer (what the check is for: a database restarted meanwhile, a proxy or
firewall that dropped an idle connection) is checked as before. A connection that dies within that
moment fails its next query and Django closes it at the end of that request, as when the database goes
down in the middle of one; the API answers such a failure 503, never 500 (search/api/exceptions.py).
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

TRUSTED_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    _good_at: float | None = None  # when queries last ran on this connection without an error
    _used_since_checkpoint = False

    def close_if_health_check_failed(self) -> None:
        # Called before every cursor: trust a connection that was good a moment ago, ping the others.
        if self.connection is not None and not self.health_check_done and self._recently_good():
            self.health_check_done = True
        super().close_if_health_check_failed()
        self._used_since_checkpoint = True

    def close_if_unusable_or_obsolete(self) -> None:
        # Called when a request starts and when it ends: a connection used since then without an
        # error is good now.
        used_cleanly = self.connection is not None and self._used_since_checkpoint and not self.errors_occurred
        if self.errors_occurred:
            self._good_at = None  # Django pings it now, and closes it if it is broken
        self._used_since_checkpoint = False
        super().close_if_unusable_or_obsolete()
        if used_cleanly and self.connection is not None:
            self._good_at = time.monotonic()

    def _recently_good(self) -> bool:
        return self._good_at is not None and time.monotonic() - self._good_at < TRUSTED_SECONDS
