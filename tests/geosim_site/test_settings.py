"""Settings come from the environment through typed readers that fail loudly."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from geosim_site import env
from tests.conftest import REPO_ROOT


def _run_settings(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    clean.update({"DJANGO_SETTINGS_MODULE": "geosim_site.settings", **extra_env})
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = _run_settings({"GEOSIM_DATA_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_starts_with_secret_key(tmp_path):
    result = _run_settings({"SECRET_KEY": "x" * 50, "GEOSIM_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_debug_mode_has_a_dev_key(tmp_path):
    result = _run_settings({"DEBUG": "1", "GEOSIM_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_bad_boolean_names_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "ture")
    with pytest.raises(ImproperlyConfigured, match="DEBUG='ture'"):
        env.env_bool("DEBUG", False)


@pytest.mark.parametrize(("raw", "expected"), [("20MB", 20_000_000), ("512KiB", 524_288), ("1048576", 1_048_576)])
def test_sizes(monkeypatch, raw, expected):
    monkeypatch.setenv("GEOSIM_MAX_UPLOAD_BYTES", raw)
    assert env.env_bytes("GEOSIM_MAX_UPLOAD_BYTES", 1) == expected


@pytest.mark.parametrize("raw", ["twenty", "-5MB", "5 parsecs", "0"])
def test_bad_sizes_fail(monkeypatch, raw):
    monkeypatch.setenv("GEOSIM_MAX_UPLOAD_BYTES", raw)
    with pytest.raises(ImproperlyConfigured, match="GEOSIM_MAX_UPLOAD_BYTES"):
        env.env_bytes("GEOSIM_MAX_UPLOAD_BYTES", 1)


def test_rate_off_disables_and_bad_rate_fails(monkeypatch):
    monkeypatch.setenv("GEOSIM_SEARCH_RATE", "off")
    assert env.env_rate("GEOSIM_SEARCH_RATE", "20/second") is None
    monkeypatch.setenv("GEOSIM_SEARCH_RATE", "fast")
    with pytest.raises(ImproperlyConfigured, match="GEOSIM_SEARCH_RATE"):
        env.env_rate("GEOSIM_SEARCH_RATE", "20/second")


def test_int_minimum(monkeypatch):
    monkeypatch.setenv("GEOSIM_MAX_PIXELS", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env.env_int("GEOSIM_MAX_PIXELS", 10, minimum=1)


def test_database_url_selects_postgres(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "geosim_site.settings",
            "DEBUG": "1",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/geosim",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "GEOSIM_DATA_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["geosim_site.postgresql", "False"]  # Django's backend, cheaper health checks


def test_embedded_default_is_sqlite_and_in_process(tmp_path):
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['NAME'], settings.CELERY_TASK_ALWAYS_EAGER)",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, "DJANGO_SETTINGS_MODULE": "geosim_site.settings", "DEBUG": "1", "GEOSIM_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "geosim.sqlite3"), "True"]
