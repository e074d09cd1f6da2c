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
