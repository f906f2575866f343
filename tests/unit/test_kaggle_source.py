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


def test_export_with_both_yolo_and_voc_and_no_split_folders(tmp_path: Path) -> None:
    """A Kaggle 'YOLO + VOC' fire set: images/, labels/ (YOLO), annotations/ (VOC)."""
    root = tmp_path / "fire-yolo-voc"
    for stem in ("a", "b"):
        _img(root / "images" / f"{stem}.jpg")
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.25 0.5\n")
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><object><name>fire</name><bndbox><xmin>31</xmin>"
            "<ymin>16</ymin><xmax>50</xmax><ymax>45</ymax></bndbox></object></annotation>"
        )
    (root / "classes.txt").write_text("fire\n")
    ds = load_dataset(f"kaggle:{root}")
    assert ds.info["export_form"] == "yolo" and len(ds) == 2 and ds.num_annotations == 2
    assert ds.images[0].annotations[0].bbox == (30.0, 15.0, 50.0, 45.0)
    voc = load_dataset(f"voc:{root}")
    assert voc.images[0].annotations[0].bbox == (30.0, 15.0, 50.0, 45.0)


def test_absolute_and_windows_paths_in_data_yaml(tmp_path: Path) -> None:
    root = tmp_path / "colab"
    for split in ("train", "valid"):
        _img(root / split / "images" / f"{split}.jpg")
        (root / split / "labels").mkdir(parents=True)
        (root / split / "labels" / f"{split}.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (root / "data.yaml").write_text(
        "names: [fire]\ntrain: /content/drive/MyDrive/fire/train/images\nval: ..\\\\valid\\\\images\n"
    )
    ds = load_dataset(str(root))
    assert sorted(i.attributes["original_split"] for i in ds.images) == ["train", "val"]


def test_names_that_collide_within_one_split_say_why(tmp_path: Path) -> None:
    """QA round 10: x.tif beside x.png read 'another split holds the same name' (one split,
    two names), x.txt served both without a word; a name in two folders of one split too."""
    root = tmp_path / "export"
    _img(root / "train" / "images" / "x.png")
    _img(root / "train" / "images" / "x.tif", 60, 80)
    _img(root / "train" / "images" / "sub" / "y.jpg")
    _img(root / "train" / "images" / "y.jpg")
    labels = root / "train" / "labels"
    (labels / "sub").mkdir(parents=True)
    for lab in ("x.txt", "y.txt", "sub/y.txt"):
        (labels / lab).write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("names: [fire]\ntrain: train/images\n")
    ds = load_dataset(str(root))
    changes = sorted(c["change"] for c in ds.info["changed"] if c["change"].startswith("renamed"))
    assert changes == [
        "renamed to train__x.tif: x.png has the same name but for the extension "
        "(labels are named by it)",
        "renamed to train__y.jpg: another folder of split train holds y.jpg too",
    ]
    assert all(len(i.annotations) == 1 for i in ds.images)
    assert sorted(c["item"] for c in ds.info["changed"] if "the label file of" in c["change"]) == [
        "x.png",
        "x.tif",
    ]
    (note,) = (n for n in ds.info["notes"] if "label file(s)" in n)
    assert note == (
        "train: 1 label file(s) each serve images of one name with different extensions "
        "(e.g. x.png and x.tif both read x.txt): each image got its boxes; check that they "
        "show one picture"
    )


def test_a_file_that_has_a_rename_target_name_keeps_it(tmp_path: Path) -> None:
    """QA round 12: valid/a.jpg was renamed to val__a.jpg, so the file really named val__a.jpg
    became val__val__a.jpg, "another image has the same name"."""
    root = tmp_path / "export"
    _img(root / "train" / "images" / "a.jpg")
    _img(root / "valid" / "images" / "a.jpg", 60, 80)
    _img(root / "valid" / "images" / "val__a.jpg", 40, 30)
    labels = {"train/labels/a.txt": "0", "valid/labels/a.txt": "1", "valid/labels/val__a.txt": "2"}
    for lab, cls in labels.items():
        (root / lab).parent.mkdir(parents=True, exist_ok=True)
        (root / lab).write_text(f"{cls} 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("names: [a, b, c]\ntrain: train/images\nval: valid/images\n")
    ds = load_dataset(str(root))
    got = {i.file_name: (i.width, i.annotations[0].category_id) for i in ds.images}
    assert got == {"a.jpg": (80, 0), "val1__a.jpg": (60, 1), "val__a.jpg": (40, 2)}
    assert [c["change"] for c in ds.info["changed"]] == [
        "renamed to val1__a.jpg: split train holds a.jpg too, and val__a.jpg is taken by "
        "valid/images/val__a.jpg"
    ]
