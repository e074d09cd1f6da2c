"""The README's configuration table names every environment variable the settings read."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

# How geosim_site reads the environment: its typed readers (geosim_site/env.py) and os.environ.get.
_READ = re.compile(r"""(?:env_[a-z]+|os\.environ\.get)\(\s*["']([A-Z][A-Z0-9_]+)["']""")
_NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE"}  # Django's own, set by manage.py / wsgi.py / celery.py


def _variables_read() -> set[str]:
    found = set()
    for path in (REPO_ROOT / "geosim_site").glob("*.py"):
        text = path.read_text()
        found |= set(_READ.findall(text))
        if "dj_database_url.config(" in text:  # reads DATABASE_URL itself
            found.add("DATABASE_URL")
    return found - _NOT_CONFIGURATION


def _table_rows() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("| `"))


def test_every_variable_the_settings_read_is_in_the_readme_table():
    rows = _table_rows()
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", rows))
    assert _variables_read() - listed == set()


def test_the_reader_pattern_finds_the_variables_it_should():
    """Guards the test above against a pattern that silently matches nothing."""
    found = _variables_read()
    assert {
        "DATABASE_URL",
        "REDIS_URL",
        "GEOSIM_STORAGE_URL",
        "GEOSIM_S3_ENDPOINT_URL",
        "GEOSIM_DATA_DIR",
        "SECRET_KEY",
    } <= found
