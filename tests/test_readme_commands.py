"""The README's commands work as written after `make demo`, in the same checkout.

What a newcomer does: `make demo`, then the README's `python …` lines in another terminal, with no
DEBUG and no SECRET_KEY set. This runs the Makefile's own demo recipe (its settings module, a few
generated textures, `--no-serve`) and then every `python …` line of the README's bash blocks, each in
its own process on the embedded default (SQLite, in-process tasks) in a temporary GEOSIM_DATA_DIR.
Placeholders (PATH, DIR, rock.jpg, samples.csv, lab.pt, model.pt, old.pt) become small real files,
optional `[…]` flags are left out; the training lines get `--epochs 1` (and `--threads 1`) to stay short.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, ROCK_TYPES, image_bytes, write_tree

pytestmark = pytest.mark.slow

_UNSET = {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "GEOSIM_DEFAULT_CHECKPOINT"}


def readme_python_lines() -> list[str]:
    """Every `python …` line of the README's bash blocks, without its trailing comment."""
    readme = (REPO_ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command.startswith("python "):
                lines.append(command)
    return lines


def makefile_demo_command(*, per_class: int) -> tuple[dict[str, str], list[str]]:
    """The Makefile's `demo` recipe as (environment assignments, argv), preparing without serving."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n\t(.+)$", makefile, flags=re.M).group(1)
    recipe = re.sub(r"\$\(if \$\(DATASET\).*$", "", recipe)  # no DATASET: generated textures
    recipe = recipe.replace("$(PY)", sys.executable).replace("$(PORT)", "8765")
    recipe = recipe.replace("$(DEMO_PER_CLASS)", str(per_class))
    words = shlex.split(recipe)
    assignments = {}
    while "=" in words[0] and not words[0].startswith("/"):
        name, value = words.pop(0).split("=", 1)
        assignments[name] = value
    return assignments, [*words, "--no-serve"]


def _run(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{shlex.join(argv)} failed:\n{output}"
    assert "Traceback" not in output
    assert "faiss.loader" not in output, "faiss's import log leaks into the command's output"
    return result.stdout


def _fill(command: str, *, files: dict[str, Path]) -> list[str]:
    """The README line with its placeholders replaced by real files and its optional flags left out."""
    words = shlex.split(re.sub(r"\s*\[[^\]]*\]", "", command))
    argv = [sys.executable if word == "python" else str(files.get(word, word)) for word in words]
    if argv[1:3] == ["-m", "training.train"]:
        argv += ["--epochs", "1", "--threads", "1"]
    if argv[1:3] == ["manage.py", "train_model"]:
        argv += ["--epochs", "1"]
    return argv


def test_readme_commands_work_after_make_demo(tmp_path):
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env.update({"GEOSIM_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"})

    assignments, demo = makefile_demo_command(per_class=3)
    demo_output = _run(demo, {**env, **assignments})
    token = re.search(r"API token of the staff user 'curator' \(uploads, rebuilds\): (\w+)", demo_output).group(1)

    tree = write_tree(tmp_path / "rocks", per_class=20, classes=ROCK_TYPES, seed=5)
    query = tmp_path / "rock.jpg"
    query.write_bytes(image_bytes(seed=4242, size=(320, 240)))  # large enough for the README's --region
    model = tmp_path / "model.pt"
    one_image = next(iter(sorted(tree.rglob("*.jpg"))))
    samples = tmp_path / "samples.csv"
    digest = hashlib.sha256(one_image.read_bytes()).hexdigest()
    samples.write_text(f"sha256,sample_id,collection\n{digest},S-1,core A\n")
    lab = tmp_path / "lab.pt"
    shutil.copyfile(REPO_ROOT / "training" / "weights" / "default.pt", lab)
    # `old.pt` is calibrated again: the model the README's training line wrote just before.
    files = {
        "PATH": tree,
        "DIR": tree,
        "rock.jpg": query,
        "samples.csv": samples,
        "lab.pt": lab,
        "model.pt": model,
        "old.pt": model,
    }

    commands = readme_python_lines()
    names = [" ".join(shlex.split(c)[1:3]) for c in commands]
    for expected in (
        "manage.py import_images",
        "manage.py rebuild_index",
        "manage.py search_similar",
        "manage.py create_api_token",
        "-m training.train",
        "-m training.evaluate",
    ):
        assert expected in names, f"the README no longer shows `python {expected}`"

    outputs = {}
    for command in commands:
        outputs[command] = _run(_fill(command, files=files), env)

    for command, output in outputs.items():
        if "search_similar" in command and "--json" in command:
            answer = json.loads(output)
            k = int(re.search(r"-k (\d+)", command).group(1))
            assert len(answer["results"]) == k
        if "create_api_token curator" in command:
            assert output.strip() == token
        if "import_images" in command:
            assert f"added {20 * len(ROCK_TYPES)}" in output
