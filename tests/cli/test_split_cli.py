"""``curate split`` through the real CLI app: ratios it cannot reach, and --groups reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.io import write_dataset

from .conftest import manifest


def _coco(tmp_path: Path, clip: int, singles: int) -> Path:
    """A COCO set: ``clip`` frames of one clip (one group), then ``singles`` single images."""
    raw = tmp_path / "raw"
    raw.mkdir()
    pixels = np.full((8, 8, 3), 120, dtype=np.uint8)
    items = []
    for k in range(clip + singles):
        name = f"f{k}.png" if k < clip else f"s{k - clip}.png"
        Image.fromarray(pixels).save(raw / name)
        group = "kaggle/export/fire2.mp4" if k < clip else None
        ann = [Annotation((1.0, 1.0, 6.0, 6.0), 0)]
        items.append(ImageItem(name, raw / name, 8, 8, ann, group=group))
    out = tmp_path / "coco"
    out.mkdir()
    write_dataset(Dataset([Category(0, "fire")], items), out, "coco")
    return out


def _report(
    path: Path,
    clusters: list[list[str]],
    cluster_mode: str | None = None,
    folder: Path | None = None,
) -> Path:
    """A dedupe report with these clusters of file names (only what --groups reads), with
    each member's path in ``folder`` when given."""
    body: dict[str, Any] = {
        "schema": "sodkit.dedupe.report/1",
        "clusters": [
            {
                "id": f"dup-{i:05d}",
                "members": [
                    {"file_name": f} | ({"path": str(folder / f)} if folder else {})
                    for f in members
                ],
            }
            for i, members in enumerate(clusters, 1)
        ],
    }
    if cluster_mode is not None:
        body["rule"] = {"cluster": cluster_mode}
    path.write_text(json.dumps(body))
    return path


def test_a_group_too_large_for_the_ratios_is_warned_and_recorded(run, tmp_path: Path) -> None:
    data = _coco(tmp_path, clip=85, singles=15)
    out = tmp_path / "split"
    res = run("split", data, "--out", out, "--ratios", "8:1:1", "--format", "coco")
    assert "warning: split ratios missed: asked train/val/test 80/10/10 %, got 85/" in res.output
    assert "group kaggle/export/fire2.mp4 has 85 images = 85 % of the data" in res.output
    assert "train can't be 80 %" in res.output
    m = manifest(out)
    assert m["ratios"]["requested"] == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1})
    assert m["ratios"]["achieved"]["train"] == pytest.approx(0.85)
    assert m["warnings"] and "train can't be 80 %" in m["warnings"][0]
    summary = json.loads((out / "split_summary.json").read_text())
    assert summary[0]["split"] == "train" and summary[0]["share"] == pytest.approx(0.85)


def test_reachable_ratios_print_no_warning(run, tmp_path: Path) -> None:
    data = _coco(tmp_path, clip=10, singles=90)
    res = run("split", data, "--out", tmp_path / "split", "--dry-run")
    assert "warning" not in res.output


def test_a_report_of_another_dataset_is_flagged(run, tmp_path: Path) -> None:
    data = _coco(tmp_path, clip=10, singles=30)
    report = _report(tmp_path / "other.json", [["a.jpg", "b.jpg"], ["c.jpg", "d.jpg", "e.jpg"]])
    out = tmp_path / "split"
    res = run("split", data, "--out", out, "--groups", report)
    assert "warning: none of the images in the 2 clusters of" in res.output
    assert "is it the report of another dataset?" in res.output
    m = manifest(out)
    assert m["groups_report"] == {
        "clusters": 2,
        "images_matched": 0,
        "clusters_present": 0,
        "clusters_joining": 0,
        "matched_by_name_only": 0,
    }
    assert any("another dataset" in w for w in m["warnings"])


def test_a_report_that_mostly_misses_says_how_many_matched(run, tmp_path: Path) -> None:
    data = _coco(tmp_path, clip=10, singles=30)
    clusters = [["s0.png", "s1.png"]] + [[f"x{k}.jpg", f"y{k}.jpg"] for k in range(5)]
    report = _report(tmp_path / "report.json", clusters)
    res = run("split", data, "--out", tmp_path / "split", "--groups", report, "--dry-run")
    assert "warning: only 1 of the 6 clusters of" in res.output
    assert "(2 images matched by file name or path)" in res.output
    assert "changes nothing" not in res.output


def test_a_report_after_dedupe_changes_nothing_and_says_so(run, tmp_path: Path) -> None:
    data = _coco(tmp_path, clip=10, singles=30)
    # dedupe kept s0 and s1 and dropped their copies: one survivor per cluster
    report = _report(tmp_path / "report.json", [["s0.png", "gone0.png"], ["s1.png", "gone1.png"]])
    res = run("split", data, "--out", tmp_path / "split", "--groups", report, "--dry-run")
    assert "note: no cluster of" in res.output and "--groups changes nothing" in res.output
    assert "warning" not in res.output


def test_a_report_of_this_dataset_is_used_quietly(run, tmp_path: Path) -> None:
    data = _coco(tmp_path, clip=10, singles=30)
    report = _report(tmp_path / "report.json", [["s0.png", "s1.png"], ["s2.png", "s3.png"]])
    out = tmp_path / "split"
    res = run("split", data, "--out", out, "--groups", report)
    assert "warning" not in res.output and "note" not in res.output
    assert manifest(out)["groups_report"]["clusters_joining"] == 2


@pytest.mark.parametrize("mode", ["greedy", "connected"])
def test_greedy_clusters_are_flagged_as_not_leak_free(run, tmp_path: Path, mode: str) -> None:
    data = _coco(tmp_path, clip=10, singles=30)
    report = _report(tmp_path / "r.json", [["s0.png", "s1.png"], ["s2.png", "s3.png"]], mode)
    res = run("split", data, "--out", tmp_path / "split", "--groups", report, "--dry-run")
    text = " ".join(res.output.split())
    flagged = "are greedy ones" in text and "curate leaks --json" in text
    assert flagged == (mode == "greedy")


def test_greedy_clusters_of_exact_copies_are_not_flagged(run, tmp_path: Path) -> None:
    """Exact copies are copies of one another, so greedy and connected clusters are the
    same (QA round 10: the warning told a user to redo a `dedupe --exact` report)."""
    data = _coco(tmp_path, clip=10, singles=30)
    report = _report(tmp_path / "r.json", [["s0.png", "s1.png"]], "greedy")
    body = json.loads(report.read_text())
    body["rule"]["exact_only"] = True
    report.write_text(json.dumps(body))
    res = run("split", data, "--out", tmp_path / "split", "--groups", report, "--dry-run")
    assert "greedy ones" not in " ".join(res.output.split())


def test_a_report_matching_by_name_only_names_its_folder(run, tmp_path: Path) -> None:
    """Another dataset with the same file names: its clusters would join unrelated images."""
    data = _coco(tmp_path, clip=10, singles=30)
    clusters = [["s0.png", "s1.png"], ["s2.png", "s3.png"]]
    other = tmp_path / "elsewhere" / "images"
    report = _report(tmp_path / "r.json", clusters, "connected", folder=other)
    res = run("split", data, "--out", tmp_path / "split", "--groups", report, "--dry-run")
    text = " ".join(res.output.split())
    assert "4 of the 4 images found in" in text and "match by file name only" in text
    assert f"(under {other})" in text
    # The report of this very dataset (its own paths) is used quietly.
    own = _report(tmp_path / "own.json", clusters, "connected", folder=(data / "images").resolve())
    res = run("split", data, "--out", tmp_path / "split2", "--groups", own, "--dry-run")
    assert "warning" not in res.output, res.output
