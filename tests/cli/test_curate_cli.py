"""merge → split → convert through the CLI on the synthetic sources, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from curate.io import load_dataset
from curate.synthetic import make_demo_sources

from .conftest import manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_demo_sources(tmp_path_factory.mktemp("sources"), seed=1)


def _tree(p: Path) -> dict[str, int]:
    return {
        str(f.relative_to(p)): f.stat().st_mtime_ns for f in sorted(p.rglob("*")) if f.is_file()
    }


def test_merge_split_convert(sources: dict[str, Path], tmp_path: Path, run) -> None:
    before = {k: _tree(v) for k, v in sources.items()}
    merged = tmp_path / "merged"
    res = run(
        "merge",
        f"bowfire:{sources['bowfire']}",
        f"video:{sources['video']}",
        str(sources["kaggle"]),
        "--class-map",
        EXAMPLES / "class_map.yaml",
        "--out",
        merged,
        "--format",
        "coco",
        "--every",
        "3",
    )
    assert "merged sources" in res.output
    assert {k: _tree(v) for k, v in sources.items()} == before, "inputs must never change"
    m = manifest(merged)
    assert m["command"] == "merge" and m["counts"]["images"] == m["counts"]["images_written"]
    assert any("default" in d["reason"] for d in m["dropped"])
    coco = json.loads((merged / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["fire", "smoke"]
    per_source = m["sources"]
    assert sum(s["images"] for s in per_source.values()) == len(coco["images"])
    assert all("original_path" in im and "source" in im for im in coco["images"])

    # refuse a non-empty output without --overwrite
    res = run(
        "merge",
        str(sources["kaggle"]),
        "--class-map",
        EXAMPLES / "class_map.yaml",
        "--out",
        merged,
        code=1,
    )
    assert "--overwrite" in res.output

    split = tmp_path / "split"
    res = run("split", merged, "--out", split, "--format", "yolo", "--seed", "0")
    data = yaml.safe_load((split / "data.yaml").read_text())
    assert data["train"] == "images/train" and data["names"] == ["fire", "smoke"]
    for s in ("train", "val", "test"):
        assert (split / "images" / s).is_dir() and (split / "labels" / s).is_dir()
    ds = load_dataset(str(split))
    by_group: dict[str, set[str]] = {}
    for img in ds.images:
        if img.group:
            by_group.setdefault(img.group, set()).add(img.split or "")
    assert by_group and all(len(v) == 1 for v in by_group.values()), (
        "frames of one clip in two splits"
    )
    assert (split / "split_summary.csv").is_file()
    sm = manifest(split)
    assert any("unlabeled" in d["reason"] for d in sm["dropped"])  # the clip without annotations

    out = tmp_path / "voc"
    run("convert", split, "--to", "voc", "--out", out)
    assert len(list((out / "Annotations").glob("*.xml"))) == len(ds)
    assert (out / "ImageSets" / "Main" / "train.txt").is_file()


def test_demo_export_leaks_are_frames_of_one_clip(
    sources: dict[str, Path], tmp_path: Path, run
) -> None:
    """The demo's Roboflow-style export, split at random as real ones are, leaks frames of
    its clips between splits; its landscapes have texture, so frames of different clips
    never join (with flat synthetic skies they did, and the flat-images note fired)."""
    report = tmp_path / "leaks.json"
    res = run("leaks", f"yolo:{sources['kaggle'] / 'data.yaml'}", "--json", report)
    got = json.loads(report.read_text())
    assert got["notes"] == []
    leaking = [c for c in got["clusters"] if c["leak"]]
    assert leaking
    for c in leaking:
        assert len({m["file_name"].split("_mp4-")[0] for m in c["members"]}) == 1, c
    # The frame exported again into test (named as a re-export names it) is found.
    ((copy, original),) = [sorted(m["file_name"] for m in g["images"]) for g in got["exact_leaks"]]
    assert copy.split(".rf.")[0] == original.split(".rf.")[0]
    # The summary names the splits the leaking clusters span.
    spanned = sorted({s for c in leaking for s in c["splits"]})
    assert f"across splits {', '.join(spanned)}" in " ".join(res.output.split())


def test_dry_run_writes_nothing(sources: dict[str, Path], tmp_path: Path, run) -> None:
    res = run(
        "merge",
        str(sources["kaggle"]),
        "--class-map",
        EXAMPLES / "class_map.yaml",
        "--out",
        tmp_path / "o",
        "--dry-run",
    )
    assert "dry run" in res.output and not (tmp_path / "o").exists()


def test_overwrite_replaces_and_output_inside_input_is_refused(
    sources: dict[str, Path], tmp_path: Path, run
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("x")
    run("convert", str(sources["kaggle"]), "--to", "yolo", "--out", out, "--overwrite")
    assert not (out / "old.txt").exists() and (out / "data.yaml").is_file()
    res = run(
        "convert",
        str(sources["kaggle"]),
        "--to",
        "yolo",
        "--out",
        sources["kaggle"] / "sub",
        code=1,
    )
    assert "overlaps input" in res.output


def test_unknown_class_without_map_entry(sources: dict[str, Path], tmp_path: Path, run) -> None:
    cmap = tmp_path / "map.yaml"
    cmap.write_text("classes: [fire]\n")
    res = run("merge", str(sources["kaggle"]), "--class-map", cmap, "--out", tmp_path / "o", code=1)
    assert "'default'" in res.output and "'smoke'" in res.output and "['fire']" in res.output


def test_ambiguous_layout_is_a_clear_error(tmp_path: Path, run) -> None:
    d = tmp_path / "amb"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    (d / "data.yaml").write_text("train: images\nnames: [a]\n")
    (d / "annotations.json").write_text('{"images": [], "annotations": [], "categories": []}')
    res = run("convert", d, "--to", "coco", "--out", tmp_path / "o", code=1)
    assert "could be" in res.output and "prefix" in res.output


def test_help_lists_commands(run) -> None:
    res = run("--help")
    for cmd in ("merge", "split", "convert"):
        assert cmd in res.output


def test_merge_keeps_coco_ids_or_records_them(tmp_path: Path, run) -> None:
    """Two COCO sources with the same image ids: renumbered, input ids kept as original_id."""
    import numpy as np
    from PIL import Image

    from curate.core.dataset import Annotation, Category, Dataset, ImageItem
    from curate.io import write_dataset

    def coco(name: str, ids: list[int]) -> Path:
        items = []
        for k, i in enumerate(ids):
            p = tmp_path / f"{name}-src" / f"{name}{k}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((40, 50, 3), 40 * k, np.uint8)).save(p)
            ann = Annotation((1.0, 2.0, 20.0, 30.0), 1, id=100 + i)
            items.append(ImageItem(p.name, p, 50, 40, [ann], id=i))
        out = tmp_path / name
        out.mkdir()
        write_dataset(Dataset([Category(1, "fire")], items), out, "coco")
        return out

    one = coco("one", [397133, 5])
    solo = tmp_path / "solo"
    run("merge", f"coco:{one}", "--out", solo, "--format", "coco")
    data = json.loads((solo / "annotations.json").read_text())
    assert sorted(i["id"] for i in data["images"]) == [5, 397133]
    two = coco("two", [5, 6])
    both = tmp_path / "both"
    run("merge", f"coco:{one}", f"coco:{two}", "--out", both, "--format", "coco")
    data = json.loads((both / "annotations.json").read_text())
    assert sorted(i["id"] for i in data["images"]) == [1, 2, 3, 4]
    assert sorted(i["original_id"] for i in data["images"]) == [5, 5, 6, 397133]
    changed = " ".join(c["change"] for c in manifest(both)["changed"])
    assert "image ids renumbered" in changed
