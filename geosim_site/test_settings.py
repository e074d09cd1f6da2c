"""Settings for the test suite: the real settings, with a throwaway secret key when none is set."""

import os

os.environ.setdefault("SECRET_KEY", "test-suite-only-not-a-secret")

from .settings import *  # noqa: E402, F403
