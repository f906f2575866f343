"""Kaggle/Roboflow exports: YOLO and VOC forms, original split kept, clip frames grouped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from curate.io import detect_layout, load_dataset
from curate.sources.kaggle import clip_of


def _img(path: Path, w: int = 80, h: int = 60) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


def test_clip_of_roboflow_names() -> None:
    assert clip_of("fire1_mp4-24_jpg.rf.b4cf490293c3b92c613200d6b1a8855c.jpg") == ("fire1.mp4", 24)
    assert clip_of("photo_001.jpg") is None


def test_voc_export(tmp_path: Path) -> None:
    root = tmp_path / "voc-export"
    for split, stem in (("train", "a"), ("valid", "b"), ("test", "c")):
        _img(root / split / f"{stem}.jpg")
        (root / split / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>80</width><height>60</height></size>"
            "<object><name>Smoke</name><bndbox><xmin>11</xmin><ymin>11</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>"
            "</annotation>"
        )
    assert detect_layout(root) == "kaggle"
    ds = load_dataset(str(root))
    assert sorted((i.file_name, i.attributes["original_split"]) for i in ds.images) == [
        ("a.jpg", "train"),
        ("b.jpg", "val"),
        ("c.jpg", "test"),
    ]
    assert all(i.split is None for i in ds.images)
    assert ds.images[0].annotations[0].bbox == (10.0, 10.0, 30.0, 40.0)
    assert [c.name for c in ds.categories] == ["Smoke"]


def test_yolo_export_groups_clip_frames(tmp_path: Path) -> None:
    root = tmp_path / "rf"
    names = [
        "clipA_mp4-1_jpg.rf.0123456789abcdef0123",
        "clipA_mp4-2_jpg.rf.0123456789abcdef4567",
        "other.jpg.x",
    ]
    for n in names:
        _img(root / "train" / "images" / f"{n}.jpg")
        (root / "train" / "labels").mkdir(parents=True, exist_ok=True)
        (root / "train" / "labels" / f"{n}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text("names: [fire]\ntrain: export-3/train/images\n")
    ds = load_dataset(f"kaggle:{root}")
    groups = {i.file_name: i.group for i in ds.images}
    assert groups[f"{names[0]}.jpg"] == groups[f"{names[1]}.jpg"] is not None
    assert groups[f"{names[2]}.jpg"] is None
