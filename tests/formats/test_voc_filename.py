"""VOC: which image an XML reads when its <filename> does not name its own image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.core.errors import ErrorPolicy, MalformedFileError, OnError
from curate.formats.base import ReadOptions
from curate.io import load_dataset


def _voc(root: Path, xmls: dict[str, str | None], images: list[str]) -> None:
    """``Annotations/<stem>.xml`` with the given <filename> (None: an empty element) and one
    box whose class is the XML's stem; ``JPEGImages/`` with ``images`` (each a different size)."""
    (root / "Annotations").mkdir(parents=True)
    for k, name in enumerate(images):
        path = root / "JPEGImages" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40 + k, 60 + k, 3), 30 * k, np.uint8)).save(path)
    for stem, filename in xmls.items():
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{filename or ''}</filename><object><name>{stem}</name>"
            "<bndbox><xmin>2</xmin><ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox>"
            "</object></annotation>"
        )


def _read(root: Path, on_error: OnError = OnError.fail):
    options = ReadOptions(policy=ErrorPolicy(on_error))
    return load_dataset(f"voc:{root}", options), options.policy.skipped


def _images(ds) -> dict[str, str]:
    """Each image's file name and the class (the XML's stem) of its box."""
    return {i.file_name: ds.category_names()[i.annotations[0].category_id] for i in ds.images}


def test_an_xml_naming_anothers_image_takes_its_own(tmp_path: Path) -> None:
    """QA round 12: b.xml's <filename> named a.jpg, the image of a.xml, while b.jpg existed;
    both XMLs were read with a.jpg, and writing failed on the name in a temporary folder."""
    _voc(tmp_path, {"a": "a.jpg", "b": "a.jpg"}, ["a.jpg", "b.jpg"])
    ds, _ = _read(tmp_path)
    assert _images(ds) == {"a.jpg": "a", "b.jpg": "b"}
    assert ds.info["changed"] == [
        {
            "item": "b.jpg",
            "change": "<filename> 'a.jpg' in b.xml names the image of a.xml too: took 'b.jpg', "
            "named like the XML",
        }
    ]


def test_an_xml_naming_anothers_image_without_its_own_is_an_error(tmp_path: Path) -> None:
    _voc(tmp_path, {"a": "a.jpg", "b": "a.jpg", "c": "a.jpg"}, ["a.jpg", "c.png"])
    with pytest.raises(MalformedFileError) as info:
        _read(tmp_path)
    assert str(info.value) == (
        f"'{tmp_path / 'Annotations' / 'b.xml'}' field 'filename': <filename> 'a.jpg' names the "
        "image of a.xml too, and no image is named like b.xml (fix <filename> in one of them)"
    )
    ds, skipped = _read(tmp_path, OnError.skip)
    assert _images(ds) == {"a.jpg": "a", "c.png": "c"}
    assert [(s["left_out"], s["left_out_annotations"]) for s in skipped] == [("b.xml", 1)]


def test_xmls_naming_an_image_named_like_none_of_them_are_errors(tmp_path: Path) -> None:
    """Neither XML is named like the image, and neither has an image of its own: which one
    the image belongs to is not known, so neither is read."""
    _voc(tmp_path, {"a": "photo.jpg", "b": "photo.jpg"}, ["photo.jpg"])
    ds, skipped = _read(tmp_path, OnError.skip)
    assert ds.images == []
    assert [s["error"] for s in skipped] == [
        "<filename> 'photo.jpg' names the image of b.xml too, and no image is named like a.xml",
        "<filename> 'photo.jpg' names the image of a.xml too, and no image is named like b.xml",
    ]


def test_xmls_that_swap_images_are_read_as_they_say(tmp_path: Path) -> None:
    """No image is claimed twice: <filename> is followed."""
    _voc(tmp_path, {"a": "b.jpg", "b": "a.jpg"}, ["a.jpg", "b.jpg"])
    ds, _ = _read(tmp_path)
    assert _images(ds) == {"b.jpg": "a", "a.jpg": "b"}
    assert ds.info["changed"] == []


def test_an_empty_filename_is_noted(tmp_path: Path) -> None:
    """QA round 12: an empty <filename> fell back to the XML's name without an entry."""
    _voc(tmp_path, {"a": None, "b": "b.jpg"}, ["a.jpg", "b.jpg"])
    ds, _ = _read(tmp_path)
    assert _images(ds) == {"a.jpg": "a", "b.jpg": "b"}
    assert ds.info["changed"] == [
        {
            "item": "a.jpg",
            "change": "<filename> in a.xml is empty: took 'a.jpg', named like the XML",
        }
    ]


def test_images_found_by_the_xml_name_are_one_note(tmp_path: Path) -> None:
    """QA round 12: the console said nothing of the images taken by the XML's name (the CLI
    prints a reader's notes); they were only in manifest.json. A Kaggle VOC export says so
    for each split folder."""
    root = tmp_path / "voc"
    _voc(root, {"a": "IMG_1.jpg", "b": None, "c": "c.jpg"}, ["a.jpg", "b.jpg", "c.jpg"])
    note = (
        "2 image(s) found by the XML's name instead of <filename> (e.g. a.xml: "
        "<filename> 'IMG_1.jpg'); manifest.json lists each under changed"
    )
    heard: list[str] = []
    load_dataset(f"voc:{root}", ReadOptions(notify=heard.append))
    assert heard == [note]
    (root / "Annotations").rename(root / "train")
    for img in (root / "JPEGImages").iterdir():
        img.rename(root / "train" / img.name)
    assert load_dataset(f"kaggle:{root}").info["notes"] == [f"train: {note}"]
