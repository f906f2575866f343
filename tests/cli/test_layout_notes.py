"""What a reader leaves out is said, never silent: image files of a type sodkit does not read,
folders of images outside every split, and a mistyped layout prefix."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from curate.core.errors import UsageError
from curate.core.files import UNREAD_IMAGE_EXTENSIONS
from curate.io import load_dataset, parse_spec


def _save(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def _gif(path: Path) -> Path:
    """A real (two-frame) GIF, which Pillow could decode but sodkit does not read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.new("RGB", (32, 24), c) for c in ("red", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


def _roboflow(root: Path, *, yaml: bool = True) -> None:
    """A Roboflow YOLO export: train/valid/test with images and labels (+ data.yaml)."""
    for split, seeds in (("train", (0, 1, 2)), ("valid", (3,)), ("test", (4,))):
        for s in seeds:
            _save(root / split / "images" / f"p{s}.jpg", s)
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            (root / split / "labels" / f"p{s}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    if yaml:
        (root / "data.yaml").write_text(
            "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
            "nc: 1\nnames: ['fire']\n"
        )
    (root / "README.roboflow.txt").write_text("exported from roboflow\n")


def _text(result) -> str:
    """The CLI's output (notes are on stderr) with Rich's line wrapping undone."""
    return " ".join(result.output.split())


# -- 1. image files of a type sodkit does not read ------------------------------------------------


def test_unread_image_types_are_one_note(tmp_path: Path, run) -> None:
    root = tmp_path / "export"
    _roboflow(root)
    _gif(root / "train" / "images" / "a.gif")
    _gif(root / "valid" / "images" / "b.gif")
    (root / "train" / "images" / "c.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    # Files that are not images are not mentioned.
    for name in ("notes.txt", "table.csv", ".DS_Store", "about.md"):
        (root / "train" / "images" / name).write_text("x")
    text = _text(run("stats", root))
    assert text.count("of a type sodkit does not read") == 1
    assert (
        "note: 3 image file(s) of a type sodkit does not read were left out (.gif: 2, .heic: 1), "
        "e.g. train/images/a.gif; convert them to JPEG or PNG to read them"
    ) in text
    for name in ("notes.txt", "table.csv", ".DS_Store", "about.md"):
        assert name not in text
    ds = load_dataset(f"kaggle:{root}")
    assert len(ds.images) == 5
    assert not any(Path(i.file_name).suffix == ".gif" for i in ds.images)


@pytest.mark.parametrize("layout", ["yolo", "images"])
def test_unread_image_types_in_yolo_and_image_trees(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "set"
    if layout == "yolo":
        _roboflow(root)
        _gif(root / "train" / "images" / "a.gif")
    else:
        _save(root / "Train" / "Fire" / "f.jpg", 1)
        _gif(root / "Train" / "Fire" / "a.gif")
        (root / "Train" / "Fire" / "b.avif").write_bytes(b"\x00\x00\x00\x1cftypavif")
    ds = load_dataset(f"{layout}:{root}")
    notes = [n for n in ds.info["notes"] if "does not read" in n]
    assert len(notes) == 1
    if layout == "yolo":
        assert notes[0].startswith("1 image file(s) of a type sodkit does not read")
        assert "(.gif: 1), e.g. train/images/a.gif" in notes[0]
    else:
        assert "(.avif: 1, .gif: 1), e.g. Train/Fire/a.gif" in notes[0]
        assert len(ds.images) == 1


def test_a_tree_of_only_unread_types_says_why(tmp_path: Path) -> None:
    root = tmp_path / "gifs"
    _gif(root / "a.gif")
    with pytest.raises(UsageError, match=r"holds no images .*\(\.gif: 1\), e\.g\. a\.gif"):
        load_dataset(f"images:{root}")


def test_the_unread_types_are_one_short_list() -> None:
    assert {".gif", ".heic", ".avif"} <= UNREAD_IMAGE_EXTENSIONS
    assert not {".txt", ".csv", ".md", ".json", ".jpg", ".png"} & UNREAD_IMAGE_EXTENSIONS


# -- 2. folders of images outside every split ----------------------------------------------------


def test_extra_image_folders_in_a_roboflow_export_are_noted(tmp_path: Path, run) -> None:
    root = tmp_path / "export"
    _roboflow(root)
    for k in range(3):
        _save(root / "extra" / f"e{k}.jpg", 10 + k)
    for k in range(2):
        _save(root / "train" / "more_images" / f"m{k}.jpg", 20 + k)
    text = _text(run("stats", root))
    assert (
        "note: 5 image(s) in 2 folder(s) that no split holds were not read: extra/ (3), "
        "train/more_images/ (2); data.yaml names the splits read (train, val, test): "
        "add a folder to one of them to read it"
    ) in text
    # What is read does not change.
    assert len(load_dataset(str(root)).images) == 5
    assert len(load_dataset(f"yolo:{root}").images) == 5


def test_extra_image_folders_without_a_yaml_are_noted(tmp_path: Path, run) -> None:
    """D-Fire style (no data.yaml), read as kaggle (detected) and as yolo."""
    root = tmp_path / "D-Fire"
    _roboflow(root, yaml=False)
    _save(root / "extra" / "deep" / "e0.jpg", 10)
    _save(root / "extra" / "e1.png", 11)
    text = _text(run("stats", root))
    assert (
        "note: 2 image(s) in 1 folder(s) that no split holds were not read: extra/ (2); "
        "without a data.yaml, the images folders of split folders are read "
        "(train/images, valid/images, test/images): move the images into one to read them"
    ) in text
    ds = load_dataset(f"yolo:{root}")
    assert len(ds.images) == 5
    assert any("extra/ (2)" in n for n in ds.info["notes"])


def test_a_split_the_yaml_leaves_out_is_noted(tmp_path: Path) -> None:
    """data.yaml names train and val only: test/images is not read, and the note says so."""
    root = tmp_path / "export"
    _roboflow(root)
    (root / "data.yaml").write_text(
        "train: train/images\nval: valid/images\nnc: 1\nnames: ['fire']\n"
    )
    ds = load_dataset(str(root))
    assert len(ds.images) == 4
    note = next(n for n in ds.info["notes"] if "no split holds" in n)
    assert note.startswith("1 image(s) in 1 folder(s) that no split holds were not read: test/ (1)")
    assert "(train, val)" in note


def test_extra_folders_beside_a_yaml_whose_path_is_elsewhere(tmp_path: Path) -> None:
    """A Colab YAML: 'path' only existed on the author's machine; the YAML's folder is searched."""
    root = tmp_path / "export"
    _roboflow(root)
    (root / "data.yaml").write_text(
        "path: /content/datasets/fire-8\ntrain: train/images\nval: valid/images\n"
        "test: test/images\nnames: ['fire']\n"
    )
    _save(root / "extra" / "e.jpg", 7)
    ds = load_dataset(f"yolo:{root / 'data.yaml'}")
    assert len(ds.images) == 5
    assert any("were not read: extra/ (1);" in n for n in ds.info["notes"])


def test_extra_folders_in_a_voc_export_are_noted(tmp_path: Path) -> None:
    root = tmp_path / "voc-export"
    for split, s in (("train", 0), ("valid", 1)):
        img = _save(root / split / f"p{s}.jpg", s)
        img.with_suffix(".xml").write_text(
            f"<annotation><filename>{img.name}</filename><size><width>64</width>"
            "<height>48</height></size><object><name>fire</name><bndbox><xmin>2</xmin>"
            "<ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"
        )
    _save(root / "extra" / "e.jpg", 5)
    ds = load_dataset(str(root))
    assert ds.info["export_form"] == "voc" and len(ds.images) == 2
    assert any(
        n.startswith("1 image(s) in 1 folder(s) that no split holds were not read: extra/ (1);")
        and "(train, valid)" in n
        for n in ds.info["notes"]
    )


def test_a_complete_export_has_no_such_notes(tmp_path: Path, run) -> None:
    root = tmp_path / "export"
    _roboflow(root)
    text = _text(run("stats", root))
    assert "does not read" not in text and "no split holds" not in text


def test_many_extra_folders_name_a_few(tmp_path: Path) -> None:
    root = tmp_path / "export"
    _roboflow(root)
    for k in range(5):
        _save(root / f"extra{k}" / "e.jpg", 30 + k)
    note = next(n for n in load_dataset(str(root)).info["notes"] if "no split holds" in n)
    assert "5 image(s) in 5 folder(s)" in note
    assert "extra0/ (1), extra1/ (1), extra2/ (1) and 2 more folder(s);" in note


# -- 3. a mistyped layout prefix -----------------------------------------------------------------


def test_a_mistyped_layout_is_named(tmp_path: Path, run) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    res = run("stats", f"vidoe:{clips}", code=1)
    text = _text(res)
    assert (
        f"error: unknown layout 'vidoe' in 'vidoe:{clips}'; known: coco, yolo, voc, images, "
        f"bowfire, video, kaggle; did you mean 'video:{clips}'?"
    ) in text
    assert "does not exist" not in text
    with pytest.raises(UsageError, match=r"unknown layout 'yolov5' .*did you mean 'yolo:data/x'"):
        parse_spec("yolov5:data/x")
    with pytest.raises(UsageError, match=r"unknown layout 'foo_bar'.*kaggle$"):
        parse_spec("foo_bar:x")


def test_paths_with_a_colon_still_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An existing path with a colon is a path; so is a Windows drive letter.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run:1").mkdir()
    assert parse_spec("run:1") == (None, Path("run:1"))
    assert parse_spec("C:/data/x") == (None, Path("C:/data/x"))
    # A colon after a slash is a path's, not a layout's; a known prefix in any case is one.
    assert parse_spec("data/run:2") == (None, Path("data/run:2"))
    assert parse_spec("YOLO:data/x") == ("yolo", Path("data/x"))
    with pytest.raises(UsageError, match="does not exist"):
        load_dataset("data/run:2")


def test_voc_filename_naming_a_missing_file_is_noted(tmp_path: Path) -> None:
    """QA round 10: the image found by the XML's stem instead was taken without a word."""
    root = tmp_path / "voc"
    img = _save(root / "JPEGImages" / "p0.png", 0)
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "p0.xml").write_text(
        "<annotation><filename>p0.jpg</filename><size><width>64</width>"
        "<height>48</height></size><object><name>fire</name><bndbox><xmin>2</xmin>"
        "<ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    ds = load_dataset(f"voc:{root}")
    assert [i.path for i in ds.images] == [img]
    assert ds.info["changed"] == [
        {
            "item": "p0.png",
            "change": "<filename> 'p0.jpg' in p0.xml not found: took 'p0.png', named like the XML",
        }
    ]
