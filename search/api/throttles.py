"""Rate limits whose rates are read from Django settings on every request (None or ``off`` = no limit).

DRF's own throttles copy their rates once at import; reading them per request lets an operator's
settings (``GEOSIM_SEARCH_RATE``, ``GEOSIM_UPLOAD_RATE``) and tests change them.

Counters live in the ``throttle`` cache (``THROTTLE_CACHE``), keyed by user for authenticated callers
and by client address otherwise. With ``REDIS_URL`` set that cache is Redis, shared by every web
process and host, so the limit is the configured rate for the whole deployment; in the embedded mode
(one process) it is process memory. If the cache cannot be reached the request is let through and
the outage logged: a broken rate limiter must not take search down with it (see docs/SECURITY.md).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import caches
from redis.exceptions import RedisError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)

THROTTLE_CACHE = "throttle"


class SettingRateThrottle(SimpleRateThrottle):
    rate_setting = ""

    def __init__(self) -> None:  # the rate is read per request, in allow_request
        pass

    @property
    def cache(self):
        return caches[THROTTLE_CACHE]

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting, None)

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as exc:
            logger.warning("Rate limit %r not applied: its cache is unreachable (%s)", self.scope, exc)
            return True

    def get_cache_key(self, request, view) -> str:
        user = getattr(request, "user", None)
        ident = f"user-{user.pk}" if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class SearchThrottle(SettingRateThrottle):
    """Searches (by upload or by collection image) share the ``search`` budget."""

    scope = "search"
    rate_setting = "GEOSIM_SEARCH_RATE"


class UploadThrottle(SettingRateThrottle):
    """Uploads only; reads on the same view are not counted."""

    scope = "upload"
    rate_setting = "GEOSIM_UPLOAD_RATE"

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
