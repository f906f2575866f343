"""``curate split``: the summary's ``groups`` counts the units kept together, and an image
tree (``--format images``) is stratified by class folder."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from curate.core.dataset import SPLITS, Annotation, Category, Dataset, ImageItem
from curate.io import load_dataset, write_dataset

from .conftest import manifest

RATIOS = {"train": 0.8, "val": 0.1, "test": 0.1}


def _save(path: Path, seed: int) -> Path:
    """A distinct 16x16 noise image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def _report(path: Path, clusters: list[list[str]]) -> Path:
    """A dedupe report holding these clusters of file names (what --groups reads)."""
    body = {
        "schema": "sodkit.dedupe.report/1",
        "rule": {"cluster": "connected"},
        "clusters": [
            {"id": f"dup-{i:05d}", "members": [{"file_name": f} for f in members]}
            for i, members in enumerate(clusters, 1)
        ],
    }
    path.write_text(json.dumps(body))
    return path


def _table(output: str) -> dict[str, dict[str, str]]:
    """The rows of the printed splits table, by split: ``{column: cell}``."""
    lines = output.splitlines()
    header = next(line for line in lines if "┃" in line and "split" in line)
    columns = [c.strip() for c in header.strip().strip("┃").split("┃")]
    rows = {}
    for line in lines:
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == len(columns) and cells[0] in SPLITS:
            rows[cells[0]] = dict(zip(columns, cells, strict=True))
    return rows


def _units_per_split(out: Path, unit_of: dict[str, str]) -> dict[str, int]:
    """Units per split of a written split, from ``unit_of`` (file name → unit); checks that
    no unit straddles splits."""
    ds = load_dataset(str(out))
    split_of: dict[str, set[str]] = defaultdict(set)
    for img in ds.images:
        split = img.split or str(img.attributes.get("original_split"))
        split_of[unit_of[Path(img.file_name).name]].add(split)
    assert all(len(s) == 1 for s in split_of.values()), "a unit straddles splits"
    assert len(split_of) == len(set(unit_of.values()))
    counts = dict.fromkeys(SPLITS, 0)
    for splits in split_of.values():
        counts[splits.pop()] += 1
    return counts


def _check_groups_column(res_output: str, out: Path, unit_of: dict[str, str]) -> None:
    """The table, split_summary.json and the manifest count the units, not the images."""
    expected = _units_per_split(out, unit_of)
    summary = {r["split"]: r for r in json.loads((out / "split_summary.json").read_text())}
    table = _table(res_output)
    for split in SPLITS:
        assert summary[split]["groups"] == expected[split], split
        assert table[split]["groups"] == str(expected[split]), split
    assert sum(expected.values()) == manifest(out)["counts"]["units"] == len(set(unit_of.values()))
    # The data is built so that units and images differ.
    assert sum(r["groups"] for r in summary.values()) < sum(r["images"] for r in summary.values())


def test_groups_column_counts_clips_and_groups_clusters(run, tmp_path: Path) -> None:
    """3 clips of 6 frames and 40 single images; a --groups report joins s0..s2, s4+s5, and
    s3 with a frame of clip 0: 58 images in 3 + 1 + 1 + 34 = 39 units."""
    raw = tmp_path / "raw"
    items, unit_of = [], {}
    for k in range(18):
        name, clip = f"c{k // 6}_f{k % 6}.png", f"clip{k // 6}"
        unit_of[name] = clip
        items.append((name, f"video/{clip}.mp4"))
    for k in range(40):
        unit_of[f"s{k}.png"] = f"s{k}.png"
        items.append((f"s{k}.png", None))
    clusters = [["s0.png", "s1.png", "s2.png"], ["s3.png", "c0_f2.png"], ["s4.png", "s5.png"]]
    for members in clusters:
        joined = {unit_of[name] for name in members}
        for name, unit in unit_of.items():
            if unit in joined:
                unit_of[name] = members[0]
    assert len(set(unit_of.values())) == 39
    images = [
        ImageItem(
            name,
            _save(raw / name, k),
            16,
            16,
            [Annotation((1.0, 1.0, 12.0, 12.0), 0)],
            group=group,
        )
        for k, (name, group) in enumerate(items)
    ]
    data = tmp_path / "coco"
    data.mkdir()
    write_dataset(Dataset([Category(0, "fire")], images), data, "coco")
    report = _report(tmp_path / "clusters.json", clusters)
    out = tmp_path / "split"
    res = run("split", data, "--out", out, "--format", "coco", "--groups", report)
    _check_groups_column(res.output, out, unit_of)


def _fire_tree(root: Path) -> tuple[dict[str, str], dict[str, str], list[list[str]]]:
    """Train/ and Test/ with Fire (80: two Roboflow clips of 4 frames, 72 photos) and NoFire
    (10 photos). Returns file name → folder, file name → unit, and a --groups report's
    clusters (two Fire photos, one in Train and one in Test: a leak)."""
    folder_of, unit_of = {}, {}
    seed = 0

    def add(split: str, folder: str, name: str, unit: str) -> None:
        nonlocal seed
        _save(root / split / folder / name, seed)
        seed += 1
        folder_of[name], unit_of[name] = folder, unit

    for c in range(2):
        for f in range(4):
            add("Train", "Fire", f"fire{c}_mp4-{f}_jpg.rf.{'ab' * 16}.jpg", f"fire{c}.mp4")
    for k in range(72):
        add("Train" if k < 62 else "Test", "Fire", f"fire_{k}.png", f"fire_{k}.png")
    for k in range(10):
        add("Train" if k < 8 else "Test", "NoFire", f"nofire_{k}.png", f"nofire_{k}.png")
    clusters = [["Train/Fire/fire_0.png", "Test/Fire/fire_70.png"]]
    unit_of["fire_70.png"] = unit_of["fire_0.png"]
    return folder_of, unit_of, clusters


def test_image_tree_is_split_at_the_ratios_per_folder(run, tmp_path: Path) -> None:
    root = tmp_path / "fire-set"
    folder_of, unit_of, clusters = _fire_tree(root)
    report = _report(tmp_path / "clusters.json", clusters)
    for seed in (0, 1, 2):
        out = tmp_path / f"split{seed}"
        res = run(
            "split", root, "--out", out, "--format", "images", "--groups", report,
            "--seed", seed,
        )  # fmt: skip
        text = " ".join(res.output.split())
        assert "wrote IMAGES splits" in text and "warning" not in text
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for path in out.rglob("*"):
            if path.is_file() and path.suffix in (".jpg", ".png"):
                split, folder = path.relative_to(out).parts[:2]
                assert folder == folder_of[path.name]
                counts[split, folder] += 1
        # Within one unit (a clip of 4 frames, a cluster of 2, a photo) of 8:1:1 per folder.
        for folder, size, largest in (("Fire", 80, 4), ("NoFire", 10, 1)):
            for split in SPLITS:
                got = counts[split, folder]
                assert abs(got - RATIOS[split] * size) <= largest, (seed, folder, split, got)
                assert (out / split / folder).is_dir() and got >= 1
        assert [counts[s, "NoFire"] for s in SPLITS] == [8, 1, 1]
        # Clips and the --groups cluster stay whole; groups counts them once.
        _check_groups_column(res.output, out, unit_of)


def test_a_table_with_too_many_classes_says_where_their_columns_are(run, tmp_path: Path) -> None:
    """QA round 8: "boxes per class left out" read as if boxes had been dropped."""
    cats = [Category(i, f"class{i}") for i in range(9)]
    items = []
    for k in range(20):
        path = _save(tmp_path / "raw" / f"im{k:02d}.png", k)
        items.append(
            ImageItem(path.name, path, 16, 16, annotations=[Annotation((2, 2, 9, 9), k % 9)])
        )
    data = tmp_path / "coco"
    write_dataset(Dataset(cats, items), data, "coco")
    res = run("split", data, "--out", tmp_path / "s", "--dry-run")
    text = " ".join(res.output.split())
    assert "boxes of 9 classes, too many columns to show here: a run without --dry-run" in text
    res = run("split", data, "--out", tmp_path / "s")
    assert "split_summary.csv has them" in " ".join(res.output.split())
    assert "left out" not in res.output
