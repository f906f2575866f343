"""``curate stats`` and ``curate anchors`` through Typer's CliRunner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import Result


def write_coco(folder: Path, rng: np.random.Generator, *, bad: bool = False) -> Path:
    """A COCO file of small boxes (no image files: stats read annotations only)."""
    images, anns = [], []
    k = 1
    for i in range(1, 13):
        w, h = (1920, 1080) if i % 2 else (640, 480)
        images.append({"id": i, "file_name": f"img{i}.jpg", "width": w, "height": h})
        for _ in range(int(rng.integers(0, 25)) if i != 3 else 0):
            bw, bh = rng.uniform(3, 40), rng.uniform(3, 40)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            anns.append(
                {"id": k, "image_id": i, "category_id": int(rng.integers(1, 3)),
                 "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0}
            )  # fmt: skip
            k += 1
    if bad:
        # slightly outside (clipped by the reader) and degenerate (image skipped)
        anns.append({"id": k, "image_id": 1, "category_id": 1, "bbox": [1915, 10, 10, 10]})
        anns.append({"id": k + 1, "image_id": 2, "category_id": 1, "bbox": [5, 5, 0, 10]})
    data = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "fire"}, {"id": 2, "name": "smoke"}],
    }
    path = folder / "data" / "annotations.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return path


Run = Callable[..., Result]


def test_stats_terminal_json_and_report(run: Run, tmp_path: Path, rng: np.random.Generator) -> None:
    src = write_coco(tmp_path, rng)
    before = src.read_bytes()
    out = tmp_path / "report"
    js = tmp_path / "s.json"
    res = run("stats", f"coco:{src}", "--imgsz", "640", "--out", out, "--json", js)
    assert "Label quality" in res.output and "fire" in res.output
    d = json.loads(js.read_text())
    assert d["images"] == 12 and d["negatives"] >= 1
    assert [c["name"] for c in d["classes"]] == ["fire", "smoke"]
    assert (out / "report.html").is_file() and (out / "stats.json").is_file()
    assert {p.name for p in (out / "plots").iterdir()} >= {"sizes.png", "heatmaps.png"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "stats" and "report.html" in manifest["outputs"]
    assert src.read_bytes() == before  # inputs untouched


def test_stats_refuses_non_empty_out_and_json_in_input(
    run: Run, tmp_path: Path, rng: np.random.Generator
) -> None:
    src = write_coco(tmp_path, rng)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("keep me")
    res = run("stats", src, "--out", out, code=1)
    assert "--overwrite" in res.output
    assert (out / "x").read_text() == "keep me"
    res = run("stats", src.parent, "--json", src.parent / "s.json", code=1)
    assert "inputs are never modified" in res.output
    run("stats", src, "--json", src, "--overwrite", code=1)
    run("stats", src, "--out", out, "--overwrite")
    assert not (out / "x").exists() and (out / "report.html").is_file()


def test_stats_reports_reader_changes_and_skips(
    run: Run, tmp_path: Path, rng: np.random.Generator
) -> None:
    src = write_coco(tmp_path, rng, bad=True)
    res = run("stats", src, code=1)
    assert "degenerate" in res.output
    js = tmp_path / "s.json"
    run("stats", src, "--on-error", "skip", "--json", js)
    reader = json.loads(js.read_text())["reader"]
    assert reader["skipped"] >= 1
    assert reader["changed"] >= 1


def test_anchors_prints_paste_ready_blocks(
    run: Run, tmp_path: Path, rng: np.random.Generator
) -> None:
    src = write_coco(tmp_path, rng)
    js = tmp_path / "a.json"
    res = run("anchors", src, "--seed", "3", "--json", js)
    text = res.output
    block = text[text.index("anchors:") : text.index("anchors =")]
    parsed = yaml.safe_load(block)
    assert len(parsed["anchors"]) == 3 and all(len(r) == 6 for r in parsed["anchors"])
    assert "YOLOv5 COCO default" in text and "P3-P5 head" in text
    d = json.loads(js.read_text())
    assert d["ours"]["fitness"] >= d["yolov5_default"]["fitness"]
    again = tmp_path / "b.json"
    run("anchors", src, "--seed", "3", "--json", again)
    assert json.loads(again.read_text())["anchors"] == d["anchors"]  # deterministic


def test_anchors_four_levels(run: Run, tmp_path: Path, rng: np.random.Generator) -> None:
    src = write_coco(tmp_path, rng)
    res = run("anchors", src, "--n", "12", "--levels", "4")
    assert "# P2/4" in res.output and "# P5/32" in res.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n", "10"], "cannot be split over 3 levels"),
        (["--levels", "5"], "levels must be 3"),
    ],
)
def test_anchors_bad_options(
    run: Run, tmp_path: Path, rng: np.random.Generator, args: list[str], message: str
) -> None:
    src = write_coco(tmp_path, rng)
    res = run("anchors", src, *args, code=1)
    assert message in res.output


def test_missing_dataset(run: Run, tmp_path: Path) -> None:
    res = run("stats", tmp_path / "nope", code=1)
    assert "does not exist" in res.output
