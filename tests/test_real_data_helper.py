"""Real-data tests find the archives one way: GEOSIM_REAL_DATA, else ../shared/data, else a skip with a reason."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REAL_ARCHIVE_PATTERN, REPO_ROOT, real_archives_or_skip, real_data_folder

HELPERS = {"real_archives_or_skip", "real_images_dir"}


def test_geosim_real_data_is_honoured(monkeypatch, tmp_path):
    (tmp_path / "geological_similarity-part2.tar.xz").write_bytes(b"")
    (tmp_path / "geological_similarity-part1.tar.xz").write_bytes(b"")
    monkeypatch.setenv("GEOSIM_REAL_DATA", str(tmp_path))
    assert real_data_folder() == tmp_path
    assert [p.name for p in real_archives_or_skip()] == [
        "geological_similarity-part1.tar.xz",
        "geological_similarity-part2.tar.xz",
    ]


def test_a_folder_without_the_archives_skips_with_a_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("GEOSIM_REAL_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(pytest.skip.Exception, match=rf"no {REAL_ARCHIVE_PATTERN.replace('*', '.')}.*GEOSIM_REAL_DATA"):
        real_archives_or_skip()


def test_without_the_variable_the_default_is_shared_data_beside_the_clone(monkeypatch):
    monkeypatch.delenv("GEOSIM_REAL_DATA", raising=False)
    assert real_data_folder() == REPO_ROOT.parent / "shared" / "data"


def _realdata_tests() -> list[tuple[Path, ast.FunctionDef, str]]:
    """Every test function marked ``realdata`` (by decorator or module pytestmark), with its module's source."""
    found = []
    for path in sorted((REPO_ROOT / "tests").rglob("test_*.py")):
        source = path.read_text(encoding="utf-8")
        if "realdata" not in source or path.name == Path(__file__).name:
            continue
        tree = ast.parse(source)
        module_marked = "pytestmark = pytest.mark.realdata" in source or "pytest.mark.realdata," in source
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                marked = any("realdata" in ast.unparse(d) for d in node.decorator_list)
                if marked or module_marked:
                    found.append((path, node, source))
    return found


def test_every_realdata_test_uses_the_shared_helper():
    tests = _realdata_tests()
    assert tests, "no realdata tests found"
    for path, node, source in tests:
        text = ast.unparse(node)
        arguments = {arg.arg for arg in node.args.args}
        uses_helper = any(name in text for name in HELPERS) or bool(arguments & HELPERS)
        # A module fixture may do it for its tests (e.g. an extracted folder built with the helper).
        uses_module_fixture = (
            any(name in source and "real_archives_or_skip" in source for name in arguments)
            and "real_archives_or_skip" in source
        )
        assert uses_helper or uses_module_fixture, f"{path.name}::{node.name} finds real data its own way"
        assert 'shared" / "data' not in source and "SHARED_DATA" not in source, path.name
