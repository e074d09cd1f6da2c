"""Static files in production: hashed and compressed after ``collectstatic``, still served before it.

``collectstatic`` writes ``STATIC_ROOT/staticfiles.json``, the manifest mapping each file to its hashed,
cache-forever name. Django's manifest storage answers every ``{% static %}`` with a ValueError when
the manifest is missing, so one forgotten command used to turn every page (and every error page) into
a 500. Without the manifest this storage links the plain names instead, WhiteNoise serves them from the
source folders (``WHITENOISE_USE_FINDERS``, see settings.py) with a short cache lifetime, and a system
check (:mod:`search.checks`) tells the operator the command that turns on the hashed, compressed files.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from whitenoise.storage import CompressedManifestStaticFilesStorage

COLLECTSTATIC_COMMAND = "python manage.py collectstatic --noinput"
logger = logging.getLogger(__name__)


def manifest_path() -> Path:
    return Path(settings.STATIC_ROOT) / CompressedManifestStaticFilesStorage.manifest_name


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's compressed manifest storage that links unhashed names until a manifest exists."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Decided once per process: a manifest written later takes effect at the next restart,
        # together with WhiteNoise's file list.
        self._collected = self.exists(self.manifest_name)

    def stored_name(self, name: str) -> str:
        if not self._collected:
            return name
        try:
            return super().stored_name(name)
        except ValueError:  # a file added since the last collectstatic (an upgrade without it)
            logger.warning("%s is not in the static files manifest: run `%s`.", name, COLLECTSTATIC_COMMAND)
            return name

