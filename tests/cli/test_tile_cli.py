"""``curate tile`` and ``curate untile`` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.core.imageio import write_image

runner = CliRunner()


@pytest.fixture
def coco_src(tmp_path: Path) -> Path:
    """A COCO dataset on disk: one 1500x1000 JPEG with three boxes, one small PNG."""
    rng = np.random.default_rng(5)
    root = tmp_path / "src"
    (root / "images").mkdir(parents=True)
    write_image(root / "images" / "big.jpg", rng.integers(0, 255, (1000, 1500, 3), dtype=np.uint8))
    write_image(root / "images" / "small.png", rng.integers(0, 255, (200, 300, 3), dtype=np.uint8))
    data = {
        "images": [
            {"id": 5, "file_name": "big.jpg", "width": 1500, "height": 1000},
            {"id": 9, "file_name": "small.png", "width": 300, "height": 200},
        ],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 1, "bbox": [10, 10, 20, 20], "iscrowd": 0},
            {"id": 2, "image_id": 5, "category_id": 1, "bbox": [600, 600, 100, 100], "iscrowd": 0},
            {"id": 3, "image_id": 5, "category_id": 2, "bbox": [1200, 100, 40, 30], "iscrowd": 0},
            {"id": 4, "image_id": 9, "category_id": 2, "bbox": [5, 5, 30, 30], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "truck"}],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def _tile(src: Path, out: Path, *extra: str) -> object:
    return runner.invoke(
        app, ["tile", f"coco:{src}", "--out", str(out), "--workers", "1", "-q", *extra]
    )


def test_tile_writes_tiles_annotations_and_manifest(coco_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    r = _tile(coco_src, out, "--keep-empty", "1")
    assert r.exit_code == 0, r.output
    coco = json.loads((out / "annotations.json").read_text())
    man = json.loads((out / "manifest.json").read_text())
    assert man["command"] == "tile" and man["counts"]["tiles"] == len(coco["images"])
    assert man["counts"]["boxes_dropped"] == {"below-min-visibility": 1}
    assert man["dropped_by_reason"]["below-min-visibility"] == 1
    for img in coco["images"]:
        assert (out / "images" / img["file_name"]).is_file()
        assert {
            "parent_image",
            "parent_id",
            "tile_x",
            "tile_y",
            "parent_width",
            "parent_height",
        } <= set(img)
    assert {img["parent_id"] for img in coco["images"]} == {5, 9}
    assert not list(coco_src.parent.glob(".tiles.tmp-*"))


def test_tile_refuses_a_non_empty_output(coco_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = _tile(coco_src, out)
    assert r.exit_code == 1 and "--overwrite" in r.output
    assert (out / "keep.txt").read_text() == "mine"
    r = _tile(coco_src, out, "--overwrite")
    assert r.exit_code == 0 and not (out / "keep.txt").exists()


def test_tile_dry_run_writes_nothing(coco_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    r = _tile(coco_src, out, "--dry-run")
    assert r.exit_code == 0 and "dry run" in r.output
    assert not out.exists()


def test_tile_yolo_multiscale(coco_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    r = _tile(coco_src, out, "--format", "yolo", "--sizes", "512,1024", "--keep-empty", "1")
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert set(man["counts"]["windows_by_size"]) == {"512", "1024"}
    assert (out / "data.yaml").is_file() and (out / "sodkit.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "512,abc"], "--sizes"),
        (["--overlap", "1.5"], "overlap"),
        (["--keep-empty", "2"], "keep-empty"),
    ],
)
def test_tile_bad_options_are_one_line_errors(
    coco_src: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    r = _tile(coco_src, tmp_path / "tiles", *args)
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output


def test_tile_then_untile_gives_back_the_ground_truth(coco_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    assert _tile(coco_src, out, "--keep-empty", "0", "--min-visibility", "0.1").exit_code == 0
    coco = json.loads((out / "annotations.json").read_text())
    preds = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 1.0,
        }
        for a in coco["annotations"]
    ]
    pred_file = tmp_path / "preds.json"
    pred_file.write_text(json.dumps(preds))
    result = tmp_path / "merged.json"
    r = runner.invoke(
        app, ["untile", str(pred_file), "--tiles", str(out), "--out", str(result), "-q"]
    )
    assert r.exit_code == 0, r.output
    merged = json.loads(result.read_text())
    src = json.loads((coco_src / "annotations.json").read_text())
    # The box only 16 % visible in its first tile is whole in another: all four come back.
    assert sorted((m["image_id"], m["category_id"], m["bbox"]) for m in merged) == sorted(
        (a["image_id"], a["category_id"], [float(v) for v in a["bbox"]]) for a in src["annotations"]
    )
    man = json.loads((tmp_path / "merged.manifest.json").read_text())
    assert man["command"] == "untile" and man["counts"]["merged_predictions"] == 4
    r = runner.invoke(
        app, ["untile", str(pred_file), "--tiles", str(out), "--out", str(result), "-q"]
    )
    assert r.exit_code == 1 and "--overwrite" in r.output


def test_untile_reports_unknown_tiles(coco_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiles"
    assert _tile(coco_src, out).exit_code == 0
    pred_file = tmp_path / "preds.json"
    pred_file.write_text(
        json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}])
    )
    args = ["untile", str(pred_file), "--tiles", str(out), "--out", str(tmp_path / "m.json"), "-q"]
    r = runner.invoke(app, args)
    assert r.exit_code == 1 and "image_id 999" in r.output
    r = runner.invoke(app, [*args, "--on-error", "skip"])
    assert r.exit_code == 0 and json.loads((tmp_path / "m.json").read_text()) == []
