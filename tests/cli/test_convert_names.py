"""Names that collide on the way out: YOLO names label files by the image's name without its
extension, and an output collision names the output folder, never the temporary one."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.files import OutputCollisionError
from curate.core.output import Manifest
from curate.export import export_dataset
from curate.io import load_dataset

from .conftest import manifest, scene


def _image(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), scene(np.random.default_rng(seed)))
    return path


def _png_and_tif(root: Path) -> None:
    """A YOLO set whose train split holds x.png and x.tif, both read by x.txt."""
    _image(root / "images" / "train" / "x.png", 0)
    _image(root / "images" / "train" / "x.tif", 1)
    _image(root / "images" / "train" / "y.jpg", 2)
    labels = root / "labels" / "train"
    labels.mkdir(parents=True)
    (labels / "x.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (labels / "y.txt").write_text("1 0.25 0.25 0.125 0.125\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [fire, smoke]\n")


def test_yolo_to_yolo_renames_an_image_whose_label_name_is_taken(tmp_path: Path, run) -> None:
    """QA round 12: the reader took x.png and x.tif (both read x.txt), and writing YOLO
    stopped with "two images would be written to '<temp folder>/labels/train/x.txt'"."""
    src, out = tmp_path / "set", tmp_path / "out"
    _png_and_tif(src)
    run("convert", f"yolo:{src}", "--to", "yolo", "-o", out)
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == [
        "tif__x.tif",
        "x.png",
        "y.jpg",
    ]
    assert (out / "labels" / "train" / "tif__x.txt").read_text() == (
        out / "labels" / "train" / "x.txt"
    ).read_text()
    assert {
        "item": "x.tif",
        "change": "written as images/train/tif__x.tif, labels labels/train/tif__x.txt: "
        "images/train/x.png has the same name but for the extension, and YOLO names label "
        "files by the name without the extension",
    } in manifest(out)["changed"]
    back = load_dataset(f"yolo:{out}")
    assert sorted((i.file_name, len(i.annotations)) for i in back.images) == [
        ("tif__x.tif", 1),
        ("x.png", 1),
        ("y.jpg", 1),
    ]
    assert "images/train/tif__x.tif" in json.loads((out / "sodkit.json").read_text())["images"]


def _two_of_one_name(tmp_path: Path) -> Dataset:
    """Two different images that a dataset names a.jpg, in one split."""
    images = [
        ImageItem(
            "a.jpg",
            _image(tmp_path / d / "a.jpg", k),
            160,
            120,
            [Annotation((10, 10, 40, 30), 1)],
            split="train",
        )
        for k, d in enumerate(("one", "two"))
    ]
    return Dataset([Category(1, "fire")], images)


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_an_output_collision_names_the_output_folder(tmp_path: Path, fmt: str) -> None:
    """QA round 12: the message named '<out>/.out.tmp-733-59be64fc/...', which the user
    never sees (the temporary folder is removed)."""
    out = tmp_path / "out"
    with pytest.raises(OutputCollisionError) as info:
        export_dataset(_two_of_one_name(tmp_path), out, fmt, Manifest("convert"))
    msg = str(info.value)
    assert ".tmp-" not in msg
    assert f"would be written to '{out.resolve() / 'images' / 'train' / 'a.jpg'}'" in msg
    second = tmp_path / "two" / "a.jpg"
    if fmt == "yolo":  # checked before writing: both images are named
        assert f": '{tmp_path / 'one' / 'a.jpg'}' and '{second}'." in msg
    else:
        assert f": '{second}' and one before it." in msg
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_label_file_serving_two_images_is_in_the_manifest(tmp_path: Path, run) -> None:
    """QA round 12: "x.png and x.tif both read x.txt" was printed, and manifest.json had no
    word of it."""
    src, out = tmp_path / "set", tmp_path / "out"
    _png_and_tif(src)
    res = run("convert", f"yolo:{src}", "--to", "coco", "-o", out)
    assert "x.png and x.tif both read x.txt" in " ".join(res.output.split())
    why = (
        "(YOLO names label files by the image's name without the extension): check that "
        "they show one picture"
    )
    assert manifest(out)["changed"] == [
        {"item": "x.png", "change": f"boxes read from x.txt, the label file of x.tif too {why}"},
        {"item": "x.tif", "change": f"boxes read from x.txt, the label file of x.png too {why}"},
    ]
