"""Layouts fire sets really ship in: YOLO without a YAML (D-Fire), split folders in any case,
and image trees without labels (Train/Fire/*.jpg); leaks and dedupe work on all of them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.errors import UsageError
from curate.formats.base import ReadOptions, SourceOptions, WriteOptions
from curate.io import detect_layout, load_dataset, write_dataset

from .conftest import manifest


def _photo(seed: int, w: int = 160, h: int = 120) -> np.ndarray:
    """A distinct textured colour image (smooth noise at two scales plus a few blobs)."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((6, 8, 3), np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((h, w, 3), np.float32), (0, 0), 1.5)
    img = 0.7 * coarse + 0.5 * fine
    for _ in range(4):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, c, int(rng.integers(5, 25)), rng.random(3).tolist(), -1)
    return np.clip(img * 200, 0, 255).astype(np.uint8)


def _save(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- YOLO without a YAML (D-Fire: train/images + train/labels, class ids only) -------------------


def _dfire(root: Path) -> None:
    for split, seeds in (("train", range(6)), ("test", range(100, 103))):
        for s in seeds:
            _save(root / split / "images" / f"img{s}.jpg", _photo(s))
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            (root / split / "labels" / f"img{s}.txt").write_text(
                f"{s % 2} 0.5 0.5 0.2 0.2\n" if s != 5 else ""
            )
    # Two train images copied byte for byte into test (the leak a user must see).
    for s in (1, 2):
        (root / "test" / "images" / f"copy{s}.jpg").write_bytes(
            (root / "train" / "images" / f"img{s}.jpg").read_bytes()
        )
        (root / "test" / "labels" / f"copy{s}.txt").write_text(f"{s % 2} 0.5 0.5 0.2 0.2\n")


def test_yolo_export_without_yaml_names_classes_by_id(tmp_path: Path) -> None:
    root = tmp_path / "D-Fire"
    _dfire(root)
    assert detect_layout(root) == "kaggle"
    ds = load_dataset(str(root))
    assert [c.name for c in ds.categories] == ["class_0", "class_1"]
    assert any("class_0..class_1" in n for n in ds.info["notes"])
    splits = {i.file_name: i.attributes["original_split"] for i in ds.images}
    assert splits["img0.jpg"] == "train" and splits["img100.jpg"] == "test"
    assert len(ds.images) == 11
    img1 = next(i for i in ds.images if i.file_name == "img1.jpg")
    assert [ds.categories[a.category_id].name for a in img1.annotations] == ["class_1"]
    # A classes.txt names them.
    (root / "classes.txt").write_text("smoke\nfire\n")
    assert [c.name for c in load_dataset(str(root)).categories] == ["smoke", "fire"]


def test_yolo_without_yaml_reads_split_folders(tmp_path: Path) -> None:
    """images/Train + labels/Train (no YAML): the folders name the splits, in any case."""
    root = tmp_path / "set"
    for split, s in (("Train", 0), ("Validation", 1), ("Test", 2)):
        _save(root / "images" / split / f"p{s}.jpg", _photo(s))
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split / f"p{s}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "classes.txt").write_text("fire\n")
    ds = load_dataset(f"yolo:{root}")
    assert sorted((i.file_name, i.split) for i in ds.images) == [
        ("p0.jpg", "train"),
        ("p1.jpg", "val"),
        ("p2.jpg", "test"),
    ]


def test_leaks_finds_every_exact_copy_in_a_yaml_less_export(
    tmp_path: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "D-Fire"
    _dfire(root)
    report = tmp_path / "leaks.json"
    monkeypatch.chdir(tmp_path)  # a relative data path: the report still names absolute paths
    r = run("leaks", "D-Fire", "--json", str(report))
    text = " ".join(r.output.split())
    assert "2 group(s) of exact copies" in text
    rep = json.loads(report.read_text())
    groups = sorted(sorted(m["file_name"] for m in g["images"]) for g in rep["exact_leaks"])
    assert groups == [["copy1.jpg", "img1.jpg"], ["copy2.jpg", "img2.jpg"]]
    assert all(g["kind"] == "file" for g in rep["exact_leaks"])
    assert rep["counts"]["exact_leak_images"] == 4
    paths = [Path(m["path"]) for g in rep["exact_leaks"] for m in g["images"]]
    paths += [Path(m["path"]) for c in rep["clusters"] for m in c["members"]]
    assert all(p.is_absolute() and p.is_file() and root in p.parents for p in paths), paths


# -- image trees without labels -------------------------------------------------------------------


def _tree(root: Path) -> None:
    """A classification-style fire set: Train/Fire, Train/NoFire, Test/Fire, Test/NoFire."""
    for split, cls, seeds in (
        ("Train", "Fire", range(0, 5)),
        ("Train", "NoFire", range(5, 9)),
        ("Test", "Fire", range(20, 22)),
        ("Test", "NoFire", range(22, 24)),
    ):
        for s in seeds:
            _save(root / split / cls / f"{cls.lower()}_{s}.jpg", _photo(s))
    # Leaks: a byte copy, and the same pixels saved as PNG (a re-encode with equal pixels).
    (root / "Test" / "Fire" / "leak_a.jpg").write_bytes(
        (root / "Train" / "Fire" / "fire_0.jpg").read_bytes()
    )
    decoded = cv2.imread(str(root / "Train" / "NoFire" / "nofire_6.jpg"))
    _save(root / "Test" / "NoFire" / "leak_b.png", decoded)
    (root / "README.txt").write_text("a fire set\n")


def test_image_tree_is_detected_and_read(tmp_path: Path) -> None:
    root = tmp_path / "fire-set"
    _tree(root)
    assert detect_layout(root) == "images"
    ds = load_dataset(str(root))
    assert len(ds.images) == 15
    by_name = {i.file_name: i for i in ds.images}
    item = by_name["Test/NoFire/leak_b.png"]
    assert item.attributes["original_split"] == "test"
    assert item.attributes["folder"] == "NoFire"
    assert item.attributes["unlabeled"] is True
    assert item.split is None and not item.annotations
    assert any("without labels" in n for n in ds.info["notes"])
    # --unlabeled negative reads them as negatives.
    neg = load_dataset(str(root), ReadOptions(source=SourceOptions(unlabeled="negative")))
    assert not any(i.attributes.get("unlabeled") for i in neg.images)


def test_labels_beside_images_are_never_ignored(tmp_path: Path) -> None:
    """A tree whose .txt files are named like its images holds labels: not an image tree."""
    root = tmp_path / "labelled"
    _save(root / "a.jpg", _photo(1))
    (root / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(UsageError, match="cannot tell the layout"):
        detect_layout(root)
    _save(tmp_path / "xml" / "b.jpg", _photo(2))
    (tmp_path / "xml" / "b.json").write_text("{}")
    with pytest.raises(UsageError, match="cannot tell the layout"):
        detect_layout(tmp_path / "xml")


def test_roboflow_frames_in_a_tree_are_grouped_by_clip(tmp_path: Path) -> None:
    root = tmp_path / "frames"
    for k in range(3):
        _save(root / "train" / f"fire1_mp4-{k}_jpg.rf.{'ab' * 16}.jpg", _photo(k))
    ds = load_dataset(f"images:{root}")
    assert {i.group for i in ds.images} == {"images/fire1.mp4"}


def test_leaks_and_dedupe_on_an_image_tree(tmp_path: Path, run) -> None:
    root = tmp_path / "fire-set"
    _tree(root)
    before = _digest(root)
    report = tmp_path / "leaks.json"
    r = run("leaks", str(root), "--json", str(report))
    # The table's example pair says which split holds each image.
    rows = [line for line in r.output.splitlines() if "leak_a.jpg" in line]
    assert rows and any(
        "test: Test/Fire/leak_a.jpg ~ train:" in line or "~ test: Test/Fire/leak_a.jpg" in line
        for line in rows
    ), r.output
    rep = json.loads(report.read_text())
    groups = {g["kind"]: sorted(m["file_name"] for m in g["images"]) for g in rep["exact_leaks"]}
    assert groups == {
        "file": ["Test/Fire/leak_a.jpg", "Train/Fire/fire_0.jpg"],
        "pixels": ["Test/NoFire/leak_b.png", "Train/NoFire/nofire_6.jpg"],
    }
    assert rep["counts"]["leaking_clusters"] == 2
    # dedupe writes the tree back, one of each pair of copies gone; the input is untouched.
    out = tmp_path / "clean"
    run("dedupe", str(root), "--out", str(out))
    written = sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.suffix in (".jpg", ".png")
    )
    assert len(written) == 13
    assert "Train/Fire/fire_1.jpg" in written
    assert not {"Test/Fire/leak_a.jpg", "Train/Fire/fire_0.jpg"} <= set(written)
    assert _digest(root) == before
    man = json.loads((out / "manifest.json").read_text())
    assert len(man["dropped"]) == 2
    # The output reads back as an image tree (its dedupe_report.json is not taken for COCO).
    assert detect_layout(out) == "images"
    assert len(load_dataset(str(out)).images) == 13


def test_split_of_an_image_tree(tmp_path: Path, run) -> None:
    root = tmp_path / "fire-set"
    _tree(root)
    r = run("split", str(root), "--out", str(tmp_path / "s1"), code=1)
    assert "--format images" in " ".join(r.output.split())
    out = tmp_path / "s2"
    r = run("split", str(root), "--out", str(out), "--format", "images")
    files = [p.relative_to(out) for p in out.rglob("*") if p.suffix in (".jpg", ".png")]
    assert len(files) == 15
    assert {f.parts[0] for f in files} <= {"train", "val", "test"}
    # The class folder is kept under the new split folder; the old split folder is gone.
    assert all(f.parts[1] in ("Fire", "NoFire") for f in files)
    # It reads back as an image tree (split_summary.json and the manifest are sodkit's own).
    assert detect_layout(out) == "images"
    assert len(load_dataset(str(out)).images) == 15


def test_sodkit_files_are_never_read_as_annotations(tmp_path: Path) -> None:
    from curate.core.output import OWN_FILES, is_own_file
    from curate.dedupe.report import REPORT_CSV, REPORT_JSON

    assert {REPORT_JSON, REPORT_CSV, "manifest.json"} <= OWN_FILES
    report = tmp_path / "leaks-of-train.json"
    report.write_text('{\n  "schema": "sodkit.dedupe.report/1",\n  "tool": "sodkit"}')
    coco = tmp_path / "instances.json"
    coco.write_text('{"info": {"description": "written by sodkit"}, "images": []}')
    assert is_own_file(report) and not is_own_file(coco)


def test_images_writer_refuses_labels(tmp_path: Path) -> None:
    img = _save(tmp_path / "a.jpg", _photo(3))
    ds = Dataset(
        images=[
            ImageItem(
                "a.jpg", img, 160, 120, annotations=[Annotation((1, 1, 20, 20), category_id=0)]
            )
        ]
    )
    with pytest.raises(UsageError, match="holds no labels"):
        write_dataset(ds, tmp_path / "out", "images", WriteOptions())


def test_dedupe_of_a_voc_export_keeps_its_splits(tmp_path: Path, run) -> None:
    """Written as COCO, which holds original_split (VOC cannot): leaks still sees the splits."""
    root = tmp_path / "voc-export"
    for split, s in (("train", 0), ("train", 1), ("valid", 2), ("test", 3)):
        _save(root / split / f"p{s}.jpg", _photo(s))
    # p0 copied into test under another name: a duplicate with its own box.
    (root / "test" / "c0.jpg").write_bytes((root / "train" / "p0.jpg").read_bytes())
    for xml in [*root.glob("*/*.jpg")]:
        xml.with_suffix(".xml").write_text(
            f"<annotation><filename>{xml.name}</filename><size><width>160</width>"
            "<height>120</height></size><object><name>fire</name><bndbox><xmin>11</xmin>"
            "<ymin>11</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>"
        )
    out = tmp_path / "clean"
    r = run("dedupe", str(root), "--out", str(out))
    assert "wrote COCO dataset (4 images)" in " ".join(r.output.split())
    ds = load_dataset(str(out))
    assert sum(len(i.annotations) for i in ds.images) == 4
    assert sorted(i.attributes["original_split"] for i in ds.images) == [
        "test",
        "train",
        "train",
        "val",
    ]


def test_split_renames_copies_that_share_a_name(tmp_path: Path, run) -> None:
    """x.jpg in train and in test (a copy kept under its name) may land in one split."""
    # An image tree: Train/Fire/x.jpg and Test/Fire/x.jpg (different photos).
    root = tmp_path / "tree"
    for split, s in (("Train", 1), ("Test", 2)):
        _save(root / split / "Fire" / "x.jpg", _photo(s))
    out = tmp_path / "s-tree"
    run("split", str(root), "--out", str(out), "--format", "images", "--ratios", "1:0:0")
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    # Test/ sorts first and keeps the name; the other gets the split it came from as a prefix.
    assert names == ["train/Fire/train__x.jpg", "train/Fire/x.jpg"]
    assert any("train__x.jpg" in c["change"] for c in manifest(out)["changed"])
    # A COCO set with one split file per split, both naming x.jpg.
    items = [
        ImageItem("x.jpg", _save(tmp_path / s / "x.jpg", _photo(k)), 160, 120, split=s)
        for k, s in ((3, "train"), (4, "test"))
    ]
    for img in items:
        img.annotations = [Annotation((5.0, 5.0, 40.0, 40.0), 1)]
    coco = tmp_path / "coco"
    coco.mkdir()
    write_dataset(Dataset([Category(1, "fire")], items), coco, "coco", WriteOptions())
    out = tmp_path / "s-coco"
    run("split", str(coco), "--out", str(out), "--format", "coco", "--ratios", "1:0:0")
    files = sorted(p.name for p in (out / "images" / "train").iterdir())
    assert len(files) == 2 and "x.jpg" in files
    assert files[0] in ("test__x.jpg", "train__x.jpg")


def test_a_split_without_its_labels_folder_is_noted(tmp_path: Path, run) -> None:
    """An export that lost test/labels is read as negatives, and the user is told so."""
    root = tmp_path / "D-Fire"
    _dfire(root)
    for f in (root / "test" / "labels").iterdir():
        f.unlink()
    (root / "test" / "labels").rmdir()
    r = run("leaks", str(root))
    text = " ".join(r.output.split())
    assert "note: test: no labels folder" in text and "5 image(s) are read as negatives" in text


def test_a_copy_of_one_name_in_two_splits_is_named_as_on_disk(tmp_path: Path, run) -> None:
    """QA round 13: train/images/img3.jpg copied to test/images/img3.jpg. The reader names
    one of them test__img3.jpg (the name an output would give it); leaks, which writes
    nothing, named no file so, and dedupe's manifest listed that rename although the image
    was dropped and nothing was renamed."""
    root = tmp_path / "D-Fire"
    _dfire(root)
    for sub, ext in (("images", ".jpg"), ("labels", ".txt")):
        shutil.copyfile(root / "train" / sub / f"img3{ext}", root / "test" / sub / f"img3{ext}")
    r = run("leaks", str(root), "--exact")
    example = [line for line in r.output.splitlines() if "img3.jpg" in line]
    text = " ".join(example)
    assert "train/images/img3.jpg" in text and "test/images/img3.jpg" in text, r.output
    assert "__img3.jpg" not in r.output
    out = tmp_path / "clean"
    run("dedupe", str(root), "--exact", "--out", str(out))
    man = json.loads((out / "manifest.json").read_text())
    dropped = {d["path"] for d in man["dropped"]} | {d["item"] for d in man["dropped"]}
    assert len(man["dropped"]) == 3  # img3's copy, copy1, copy2
    assert not [c for c in man["changed"] if c["item"] in dropped], man["changed"]
    written = {p.name for p in (out / "images").rglob("*.jpg")}
    renames = [c for c in man["changed"] if "renamed to" in c["change"]]
    assert len(renames) == sum("__" in name for name in written)


def test_roi_objects_on_images_without_labels_is_refused(tmp_path: Path, run) -> None:
    """QA round 14: on a clip without annotations --roi objects kept 1 of 899 frames, each
    drop reasoned 'ssim+roi', and the warning advised --roi objects."""
    root = tmp_path / "fire-set"
    _tree(root)
    r = run("dedupe", str(root), "--roi", "objects", "--dry-run", code=1)
    text = " ".join(r.output.split())
    assert "--roi objects compares labelled boxes, and none of the 15 images has any" in text
    assert "Traceback" not in r.output
    # Labelled data with background images: said how many are compared as whole images.
    data = tmp_path / "D-Fire"
    _dfire(data)
    r = run("dedupe", str(data), "--roi", "objects", "--dry-run")
    assert "1 of 11 images have no boxes" in " ".join(r.output.split())
