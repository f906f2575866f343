"""train_bridge and augment CLIs through Typer's CliRunner: help, a 1-epoch run, eval, predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from augment.cli import app as augment_app
from train_bridge.cli import app
from train_bridge.synthetic import ShapesSpec, make_shapes_dataset

runner = CliRunner()
TINY = ["--preset", "cpu-smoke", "--epochs", "1", "--imgsz", "64", "--batch", "4", "--quiet"]


@pytest.fixture(autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "shapes"
    spec = ShapesSpec(width=64, height=64, splits={"train": 8, "val": 4, "test": 4})
    make_shapes_dataset(out, spec, seed=2, fmt="yolo")
    return out


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(app, ["train", str(shapes), "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("args", [[], ["train"], ["eval"], ["predict"], ["validate"], ["synth"]])
def test_help(args):
    result = runner.invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_augment_help_names_coming_commands():
    result = runner.invoke(augment_app, ["--help"])
    assert result.exit_code == 0
    assert "mosaic" in result.output and "copypaste" in result.output


def test_train_one_epoch_writes_a_run(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"best.pt", "last.pt", "results.csv", "loss.png", "map.png", "manifest.json"} <= names
    rows = list(csv.DictReader((trained / "results.csv").read_text().splitlines()))
    assert len(rows) == 1 and rows[0]["epoch"] == "1" and rows[0]["AP50"] != ""
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["counts"]["train_images"] == 8
    assert manifest["options"]["model"] == "nano"


def test_train_refuses_non_empty_out_and_resumes(shapes, trained, tmp_path):
    result = runner.invoke(app, ["train", str(shapes), "--out", str(trained), *TINY])
    assert result.exit_code == 1
    assert "not empty" in result.output and "--overwrite" in result.output
    # --resume on a finished run adds nothing and keeps the run usable.
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in trained.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    result = runner.invoke(app, ["train", str(shapes), "--out", str(copy), "--resume", *TINY])
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output
    result = runner.invoke(app, ["train", str(shapes), "--out", str(tmp_path / "x"), "--resume"])
    assert result.exit_code == 1 and "cannot resume" in result.output


def test_eval_and_predict(shapes, trained, tmp_path):
    metrics = tmp_path / "metrics.json"
    result = runner.invoke(
        app,
        ["eval", str(shapes), "--weights", str(trained / "best.pt"), "--out", str(metrics), "-q"],
    )
    assert result.exit_code == 0, result.output
    assert "AP50" in result.output
    data = json.loads(metrics.read_text())
    assert data["metrics"]["images"] == 4
    preds = tmp_path / "preds.json"
    result = runner.invoke(
        app,
        [
            "predict",
            str(shapes / "images" / "test"),
            "--weights",
            str(trained / "best.pt"),
            "--out",
            str(preds),
            "--conf",
            "0.0",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads(preds.read_text())
    assert results and {"image_id", "category_id", "bbox", "score", "file_name"} <= set(results[0])
    result = runner.invoke(
        app,
        ["predict", str(shapes), "--weights", str(trained / "best.pt"), "--out", str(preds)],
    )
    assert result.exit_code == 1 and "exists" in result.output


def test_errors_are_one_line(shapes, tmp_path):
    result = runner.invoke(app, ["eval", str(shapes), "--weights", str(tmp_path / "none.pt")])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(
        app, ["train", str(shapes), "--out", str(tmp_path / "r"), "--imgsz", "100"]
    )
    assert result.exit_code == 1 and "multiple of 32" in result.output
    result = runner.invoke(
        app, ["train", str(shapes), "--out", str(tmp_path / "r"), "--preset", "bogus"]
    )
    assert result.exit_code == 1 and "unknown preset" in result.output


def test_synth_writes_a_split_dataset(tmp_path):
    out = tmp_path / "s"
    result = runner.invoke(
        app, ["synth", str(out), "--train", "3", "--val", "1", "--test", "1", "--size", "64"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "data.yaml").is_file() and (out / "manifest.json").is_file()


def test_validate_compares_raw_and_curated(shapes, tmp_path):
    raw = tmp_path / "raw"
    spec = ShapesSpec(width=64, height=64, splits={"train": 6})
    make_shapes_dataset(raw, spec, seed=5, fmt="yolo")
    # A raw image identical to a curated test image must not be trained on.
    test_img = sorted((shapes / "images" / "test").iterdir())[0]
    (raw / "images" / "train" / "leak.png").write_bytes(test_img.read_bytes())
    out = tmp_path / "cmp"
    result = runner.invoke(
        app,
        ["validate", "--raw", str(raw), "--curated", str(shapes), "--out", str(out), *TINY],
    )
    assert result.exit_code == 0, result.output
    for name in ("comparison.csv", "comparison.md", "comparison.png", "manifest.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "comparison.csv").read_text().splitlines()))
    assert [r["run"] for r in rows] == ["raw", "curated"]
    assert rows[0]["train_images"] == "6"  # 7 raw images, the leaked one left out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["raw_images_dropped_as_test_duplicates"] == 1
    assert manifest["counts"]["test_images"] == 4
    assert (out / "runs" / "raw" / "best.pt").is_file()
    assert "| run |" in (out / "comparison.md").read_text()


def test_eval_with_tiles_merges_back_onto_parents(shapes, trained, tmp_path):
    from curate.io import load_dataset
    from curate.tiling import TileConfig, tile_dataset

    tiles = tmp_path / "tiles"
    tiles.mkdir()
    config = TileConfig(sizes=(32,), keep_empty=1.0)
    tile_dataset(load_dataset(str(shapes)), tiles, "yolo", config)
    metrics = tmp_path / "m.json"
    result = runner.invoke(
        app,
        [
            "eval",
            str(shapes),
            "--weights",
            str(trained / "best.pt"),
            "--tiles",
            str(tiles),
            "--full-pass",
            "--conf",
            "0",
            "--out",
            str(metrics),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(metrics.read_text())
    assert data["metrics"]["images"] == 4
    test_ids = {r["image_id"] for r in data["predictions"]}
    assert test_ids and all(isinstance(i, int) for i in test_ids)
