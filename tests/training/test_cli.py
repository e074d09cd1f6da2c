"""The command-line tools on a tiny generated folder: train, embed, evaluate, visualize."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training import embed, evaluate, train, visualize
from training.checkpoint import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_train_writes_checkpoint_log_and_curve(tiny_trained_checkpoint: Path) -> None:
    loaded = load_checkpoint(tiny_trained_checkpoint)
    assert loaded.class_names == ["andesite", "gneiss", "schist"]
    assert loaded.training["epochs"] == 2 and loaded.training["seed"] == 1
    assert loaded.data["split"] == {
        "seed": 1,
        "method": "training.data.stratified_split",
        "train": 24,
        "val": 12,
        "test": 12,
    }
    assert len(loaded.data["test_keys"]) == 12 and loaded.data["description"]
    assert set(loaded.metrics["test"]) == {"p_at_1", "p_at_5", "map_at_r", "r_precision"}
    stem = tiny_trained_checkpoint.with_suffix("")
    with open(f"{stem}_log.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert {"loss", "triplet", "val_p_at_1", "val_map_at_r"} <= set(rows[0])
    assert Path(f"{stem}_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(Path(f"{stem}_summary.json").read_text())
    assert summary["metrics"]["best_epoch"] in (1, 2)


def test_training_is_reproducible_for_a_seed(tiny_folder: Path, tmp_path: Path) -> None:
    args = [
        "--data",
        str(tiny_folder),
        "--epochs",
        "1",
        "--batch-size",
        "12",
        "--widths",
        "8",
        "--no-baselines",
        "--seed",
        "4",
    ]
    assert train.main([*args, "--out", str(tmp_path / "a.pt")]) == 0
    assert train.main([*args, "--out", str(tmp_path / "b.pt")]) == 0
    first = load_checkpoint(tmp_path / "a.pt").model.state_dict()
    second = load_checkpoint(tmp_path / "b.pt").model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_embed_writes_the_contract_npz(tiny_trained_checkpoint: Path, tiny_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "embeddings.npz"
    args = ["--checkpoint", str(tiny_trained_checkpoint), "--data", str(tiny_folder), "--out", str(out)]
    assert embed.main(args) == 0
    arrays = np.load(out)
    assert set(arrays.files) == {"paths", "labels", "embeddings"}
    paths, labels, embeddings = arrays["paths"], arrays["labels"], arrays["embeddings"]
    assert paths.dtype.kind == "U" and labels.dtype.kind == "U"
    assert len(paths) == len(labels) == len(embeddings) == 48
    assert paths[0] == "andesite/C0000.png" and labels[0] == "andesite"
    assert all(label == path.split("/")[0] for path, label in zip(paths, labels, strict=True))
    assert all((tiny_folder / p).is_file() for p in paths)
    assert embeddings.dtype == np.float32 and embeddings.shape == (48, 128)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_evaluate_json_runs_as_a_command_without_django(tiny_trained_checkpoint: Path, tiny_folder: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.evaluate",
            "--checkpoint",
            str(tiny_trained_checkpoint),
            "--data",
            str(tiny_folder),
            "--json",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("p_at_1", "p_at_5", "map_at_r", "r_precision"):
        assert 0.0 <= report[key] <= 1.0
    assert report["images"] == 48
    assert sum(map(sum, report["top1_confusion"])) == 48


def test_training_package_does_not_import_django() -> None:
    code = (
        "import sys, training.train, training.embed, training.evaluate, training.visualize, "
        "training.inference; print('django' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_evaluate_text_and_heldout_only(
    tiny_trained_checkpoint: Path, tiny_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--checkpoint", str(tiny_trained_checkpoint), "--data", str(tiny_folder)]
    assert evaluate.main(args) == 0
    assert "p_at_1" in capsys.readouterr().out
    assert evaluate.main([*args, "--json", "--heldout-only"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 12


def test_visualize_writes_pngs_gif_and_self_contained_html(
    tiny_trained_checkpoint: Path, tiny_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plots"
    assert (
        visualize.main(
            [
                "--checkpoint",
                str(tiny_trained_checkpoint),
                "--data",
                str(tiny_folder),
                "--out",
                str(out),
                "--max-points",
                "30",
            ]
        )
        == 0
    )
    for name in ("pca_2d.png", "pca_3d.png", "tsne_2d.png", "tsne_3d.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (out / "tsne_3d_rotating.gif").read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    html = (out / "embedding_3d.html").read_text()
    assert "andesite" in html and "t-SNE" in html
    assert not re.search(r"<script[^>]*\bsrc=", html), "no external scripts: plotly.js is bundled"
    assert len(html) > 1_000_000


def test_visualize_heldout_only_plots_the_test_split(
    tiny_trained_checkpoint: Path, tiny_folder: Path, tmp_path: Path
) -> None:
    written = visualize.visualize(tiny_trained_checkpoint, tiny_folder, tmp_path / "held", heldout_only=True)
    assert len(written) == 6 and all(path.stat().st_size > 0 for path in written)
    held_out = set(load_checkpoint(tiny_trained_checkpoint).data["test_keys"])
    html = (tmp_path / "held" / "embedding_3d.html").read_text()
    for path in sorted(tiny_folder.rglob("*.png")):
        key = f"{path.parent.name}/{path.name}"
        assert (f'{path.name}"' in html) == (key in held_out), key  # plotly writes "andesite\u002fC0004.png"


def test_clis_report_bad_input_as_a_message_and_exit_code(
    tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a model")
    assert evaluate.main(["--checkpoint", str(bogus), "--data", str(tiny_folder)]) == 2
    assert "bogus.pt is not a GeoSim checkpoint" in capsys.readouterr().err
    assert embed.main(["--checkpoint", str(bogus), "--data", str(tiny_folder), "--out", str(tmp_path / "e.npz")]) == 2
    assert not (tmp_path / "e.npz").exists()
    assert train.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "m.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_archive_given_as_data_is_named_not_a_folder(
    tiny_trained_checkpoint: Path, tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not "does not exist" for a file that plainly exists: say it is not a folder, and how to extract it."""
    import tarfile

    archive = tmp_path / "rocks.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(tiny_folder, arcname="geological_similarity")
    assert evaluate.main(["--checkpoint", str(tiny_trained_checkpoint), "--data", str(archive)]) == 2
    err = capsys.readouterr().err
    assert f"{archive} is not a folder" in err and "tar -xf" in err and "does not exist" not in err
    assert train.main(["--data", str(archive), "--out", str(tmp_path / "m.pt")]) == 2
    assert "is not a folder" in capsys.readouterr().err
