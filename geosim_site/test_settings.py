"""Settings for the test suite: the real settings, with a throwaway secret key when none is set."""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-only-not-a-secret")
# Worker threads in tests open their own connections; close them after each task so the test
# database can be dropped at the end of the run.
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
# In-process jobs run inline, so a test can assert on a job's outcome right after starting it;
# tests/search/test_background_jobs.py covers the background threads the embedded mode uses.
os.environ.setdefault("GEOSIM_IN_PROCESS_JOBS", "inline")

from .settings import *  # noqa: E402, F403

# Tests render pages without running collectstatic first.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# The embedded pass: a file, not Django's shared-cache in-memory test database, whose table locks make
# the embedded mode's background job threads fail with "database table is locked" (a file in WAL mode
# with a busy timeout, as users run it, lets them wait their turn instead).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    import tempfile

    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"geosim-test-{os.getpid()}.sqlite3")}  # noqa: F405
