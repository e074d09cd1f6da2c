"""Rate limits whose rates are read from Django settings on every request (None or ``off`` = no limit).

DRF's own throttles copy their rates once at import; reading them per request lets an operator's
settings (``GEOSIM_SEARCH_RATE``, ``GEOSIM_UPLOAD_RATE``) and tests change them. Counters live in
Django's default cache, keyed by user for authenticated callers and by client address otherwise.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle


class SettingRateThrottle(SimpleRateThrottle):
    rate_setting = ""

    def __init__(self) -> None:  # the rate is read per request, in allow_request
        pass

    def get_rate(self) -> str | None:
        return getattr(settings, self.rate_setting, None)

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

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
