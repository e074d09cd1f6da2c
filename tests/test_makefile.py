"""`make test` runs the embedded pass only after a main pass on Postgres/Redis (otherwise it would repeat it)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

EMBEDDED_PASS = "env -u DATABASE_URL -u REDIS_URL"


def _dry_run(**env: str) -> str:
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "MAKEFLAGS", "MAKELEVEL"}}
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_without_database_url_the_suite_runs_once():
    out = _dry_run()
    assert ".venv/bin/python -m pytest" in out or "-m pytest" in out  # the main pass
    assert EMBEDDED_PASS not in out


def test_with_postgres_and_redis_the_embedded_pass_follows():
    out = _dry_run(DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/15")
    assert EMBEDDED_PASS in out
