"""Settings for ``make demo``: the real settings, for a trial on this machine.

- A secret key of its own, created once in ``GEOSIM_DATA_DIR/secret_key``, which the normal settings
  read too: the README's commands then work in the same checkout without ``DEBUG=1``.
- ``DEBUG`` off, so visitors see the project's own 404 and 500 pages (errors are logged on the console).
- Static files served from the source tree (no ``collectstatic``), to local host names only.
"""

from pathlib import Path

from .local_secret import data_dir, ensure_secret_key

ensure_secret_key(data_dir(Path(__file__).resolve().parent.parent))

from .env import env_list  # noqa: E402
from .settings import *  # noqa: E402, F403

DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 — WhiteNoise warns at start-up when it is missing
