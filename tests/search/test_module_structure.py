"""The app's modules form no import cycle, job kinds are wired to their handlers in one place, and the
vector index package stays free of Django."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.models import Job
from search.services import duplicates, indexing, jobs, model_training, processing, projection
from tests.conftest import REPO_ROOT

SEARCH = REPO_ROOT / "search"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SEARCH.rglob("*.py") if "migrations" not in p.parts}


def _imported(node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The app modules an import statement loads (``from search import x`` counts module x, if it is one)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if node.level or not node.module:
        return set()
    found = {node.module} if node.module in known else set()
    found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known}
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every app module this one imports, at the top or inside functions (AppConfig.ready is the wiring)."""
    tree = ast.parse(path.read_text())
    wiring = {
        id(node)
        for function in ast.walk(tree)
        if name == "search.apps" and isinstance(function, ast.FunctionDef) and function.name == "ready"
        for node in ast.walk(function)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in wiring:
            found |= _imported(node, known)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting, done = [], set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            if target != node and (found := visit(target)):
                return found
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if found := visit(start):
            return found
    return None


def test_the_search_app_has_no_import_cycle():
    modules = _modules()
    known = set(modules)
    # A package's __init__ is loaded before any of its modules; only module-to-module edges make a cycle.
    graph = {
        name: {target for target in _imports(name, path, known) if not name.startswith(f"{target}.")}
        for name, path in modules.items()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_no_module_hides_an_app_import_inside_a_function():
    """Imports inside functions are how the old cycle was kept apart; only AppConfig.ready may wire modules."""
    modules = _modules()
    known = set(modules)
    hidden = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if name == "search.apps" and function.name == "ready":
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom) and _imported(node, known):
                    hidden.append(f"{name}.{function.name}")
    assert hidden == []


def test_every_job_kind_the_app_creates_has_a_registered_handler():
    expected = {
        Job.Kind.PROCESS: processing.images_process,
        Job.Kind.REMOVE: processing.images_unindex,
        Job.Kind.REINDEX: indexing.index_rebuild,
        Job.Kind.ACTIVATE_MODEL: indexing.index_rebuild,
        Job.Kind.COMPACT_INDEX: indexing.index_compact,
        Job.Kind.PROJECTION: projection.projection_compute,
        Job.Kind.TRAIN_MODEL: model_training.model_train,
        Job.Kind.DUPLICATES: duplicates.duplicates_find,
    }
    for kind, handler in expected.items():
        assert jobs.job_handler(kind) is handler
    assert jobs.job_retried_if_interrupted(Job.Kind.PROCESS)
    assert jobs.job_retried_if_interrupted(Job.Kind.REINDEX)


@pytest.mark.django_db(transaction=True)
def test_a_new_job_kind_is_one_registration(monkeypatch):
    monkeypatch.setattr(jobs, "_handlers", dict(jobs._handlers))
    jobs.register_job_handler("train_model", lambda job, progress: {"trained": job.params["epochs"]})
    job = Job.objects.create(kind="train_model", params={"epochs": 2})
    jobs.job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.result) == (Job.Status.SUCCEEDED, {"trained": 2})


@pytest.mark.django_db(transaction=True)
def test_jobs_are_sent_by_task_name_to_the_broker(monkeypatch, celery_in_process):
    """With a real broker the job service publishes "search.run_job" by name; it imports no task module."""
    sent = []
    monkeypatch.setattr(celery_in_process, "send_task", lambda name, **kwargs: sent.append((name, kwargs["args"])))
    job = Job.objects.create(kind=Job.Kind.PROCESS)
    celery_in_process.conf.task_always_eager = False
    try:
        assert jobs.job_enqueue(job.pk) is True
    finally:
        celery_in_process.conf.task_always_eager = True
    assert sent == [("search.run_job", (job.pk,))]


VECTORINDEX = REPO_ROOT / "vectorindex"


def test_the_vector_index_package_imports_nothing_from_django_or_the_app():
    """vectorindex is as independent as training/: numpy and faiss, never Django or the search app."""
    forbidden = []
    for path in sorted(VECTORINDEX.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            forbidden += [
                f"{path.name}: {name}" for name in names if name.split(".")[0] in {"django", "rest_framework", "search"}
            ]
    assert forbidden == []


def test_the_vector_index_package_loads_without_django_settings():
    """Imported in a bare interpreter, it pulls in no Django module at all (what the AST check could miss)."""
    code = (
        "import sys, vectorindex; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'search', 'rest_framework')))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
