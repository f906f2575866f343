"""Every dataset in ../shared/data reads with its known counts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from curate.core.errors import ErrorPolicy, OnError
from curate.formats.base import ReadOptions
from curate.io import detect_layout, load_dataset, write_dataset
from curate.merge import ClassMap, merge_datasets

pytestmark = pytest.mark.real


def test_roboflow_export(shared_data: Path) -> None:
    root = shared_data / "roboflow-fire-smoke"
    assert detect_layout(root) == "kaggle"
    ds = load_dataset(str(root))
    assert len(ds) == 979
    assert ds.class_counts() == Counter({"smoke": 533, "Fire": 384, "default": 160})
    assert Counter(i.attributes["original_split"] for i in ds.images) == {
        "train": 877,
        "val": 47,
        "test": 55,
    }
    assert all(i.split is None for i in ds.images)
    # frames of one clip share a group
    groups = Counter(i.group for i in ds.images)
    assert len(groups) < 979 and max(groups.values()) > 1
    # independent count straight from the label files
    raw: Counter[str] = Counter()
    for f in root.glob("*/labels/*.txt"):
        for line in f.read_text().splitlines():
            if line.strip():
                raw[line.split()[0]] += 1
    assert raw == Counter({"2": 533, "0": 384, "1": 160})
    # the same export read as plain YOLO keeps its splits
    plain = load_dataset(f"yolo:{root / 'data.yaml'}")
    assert Counter(i.split for i in plain.images) == {"train": 877, "val": 47, "test": 55}


def test_roboflow_through_a_class_map(shared_data: Path, tmp_path: Path) -> None:
    cmap_file = tmp_path / "m.yaml"
    cmap_file.write_text("classes: [fire, smoke]\ndrop: [default]\n")
    ds = load_dataset(f"kaggle:{shared_data / 'roboflow-fire-smoke'}")
    merged, report = merge_datasets([("rf", ds)], ClassMap.from_file(cmap_file))
    assert merged.class_counts() == Counter({"smoke": 533, "fire": 384})
    assert len(report.dropped) == 160


def test_coco_sample_with_polygons_and_crowd_rle(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "coco-seg-sample" / "annotations" / "instances_val2017_subset.json"
    ds = load_dataset(str(path))
    assert len(ds) == 10 and ds.num_annotations == 77
    crowd = [a for _, a in ds.annotations() if a.iscrowd]
    assert len(crowd) == 1 and crowd[0].mask is not None and crowd[0].mask.kind == "rle"
    assert (
        sum(1 for _, a in ds.annotations() if a.mask is not None and a.mask.kind == "polygons")
        == 76
    )
    write_dataset(ds, tmp_path / "out", "coco")
    back = json.loads((tmp_path / "out" / "annotations.json").read_text())
    orig = json.loads(path.read_text())
    assert len(back["annotations"]) == 77
    # area is recomputed from the mask (rasterised, as pycocotools does) and stays close to COCO's
    ours = sorted(a["area"] for a in back["annotations"])
    theirs = sorted(a["area"] for a in orig["annotations"])
    assert sum(ours) == pytest.approx(sum(theirs), rel=0.02)


def test_voc_sample(shared_data: Path) -> None:
    ds = load_dataset(str(shared_data / "coco-seg-sample" / "voc"))
    assert ds.info["layout"] == "voc"
    assert len(ds) == 10 and ds.num_annotations == 18
    cow = next(i for i in ds.images if i.file_name == "2007_000464.jpg")
    assert (cow.width, cow.height) == (375, 500)
    assert cow.annotations[0].bbox == (70.0, 251.0, 216.0, 314.0)


def test_sahi_coco_with_missing_images_and_wrong_areas(shared_data: Path, tmp_path: Path) -> None:
    visdrone = (
        shared_data / "sahi-terrain" / "coco_utils" / "visdrone2019-det-train-first50image.json"
    )
    ds = load_dataset(f"coco:{visdrone}", ReadOptions(check_images=False))
    assert len(ds) == 50 and ds.num_annotations == 3326
    policy = ErrorPolicy(OnError.skip)
    empty = load_dataset(f"coco:{visdrone}", ReadOptions(policy=policy))
    assert len(empty) == 0 and len(policy.skipped) == 50 and policy.skipped[0]["kind"] == "missing"
    terrain = load_dataset(
        f"coco:{shared_data / 'sahi-terrain' / 'coco_utils' / 'terrain1_coco.json'}"
    )
    assert len(terrain) == 1 and terrain.num_annotations == 7
    write_dataset(terrain, tmp_path / "t", "coco")
    out = json.loads((tmp_path / "t" / "annotations.json").read_text())
    for a in out["annotations"]:
        if not a["segmentation"]:
            assert a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3], rel=1e-6)
