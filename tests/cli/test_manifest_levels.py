"""A manifest's ``dropped`` says what each entry left out: a whole image or one annotation
(or an annotation's mask), so scripts that count or remove "the dropped items" get it right."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.core.dataset import Annotation, Category, Dataset, ImageItem, Mask
from curate.io import write_dataset

from .conftest import manifest, scene

CROWD_BOX = (40.0, 30.0, 90.0, 60.0)


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    """COCO with polygons: 4 photos, an exact copy of one, and a crowd region (RLE) on a
    photo that is kept (the QA's cocoset: a person crowd on 000000193245.jpg)."""
    rng = np.random.default_rng(3)
    raw = tmp_path / "raw"
    raw.mkdir()
    items = []
    for k in range(4):
        Image.fromarray(scene(rng)).save(raw / f"p{k}.jpg", quality=92)
    shutil.copyfile(raw / "p0.jpg", raw / "p0_copy.jpg")
    for k, name in enumerate(("p0", "p1", "p2", "p3", "p0_copy")):
        poly = Mask.from_polygons([[10, 10, 50, 10, 50, 40, 10, 40]])
        anns = [Annotation((10.0, 10.0, 50.0, 40.0), 1, mask=poly, id=100 + k)]
        if name == "p2":
            crowd = np.zeros((120, 160), bool)
            crowd[30:60, 40:90] = True
            anns.append(
                Annotation(CROWD_BOX, 2, mask=Mask.from_bitmap(crowd), iscrowd=True, id=900)
            )
        items.append(ImageItem(f"{name}.jpg", raw / f"{name}.jpg", 160, 120, anns, split="train"))
    out = tmp_path / "coco"
    out.mkdir()
    write_dataset(Dataset([Category(1, "fire"), Category(2, "person")], items), out, "coco")
    return out


def test_dedupe_to_yolo_lists_the_crowd_region_as_an_annotation(
    run, coco: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = run("dedupe", coco, "--out", out, "--format", "yolo", "-j", "1")
    m = manifest(out)
    images = [d for d in m["dropped"] if d["level"] == "image"]
    (crowd,) = [d for d in m["dropped"] if d["level"] == "annotation"]
    # The duplicate is an image; the crowd region is one annotation of a kept image.
    assert [d["item"] for d in images] == ["p0_copy.jpg"]
    assert crowd["item"] == "p2.jpg" and "crowd region" in crowd["reason"]
    assert crowd["annotation_id"] == 900 and crowd["category"] == "person"
    assert crowd["bbox"] == list(CROWD_BOX) and crowd["stage"] == "write"
    assert crowd["bbox_format"] == "xyxy"  # said, as COCO readers expect x, y, w, h
    assert (out / "images" / "train" / "p2.jpg").is_file()
    assert m["counts"]["dropped"] == len(images) == 1
    assert m["counts"]["dropped_annotations"] == 1
    assert m["dropped_by_level"] == {"image": 1, "annotation": 1}
    assert "left out 1 annotation(s)" in res.output
    assert "wrote YOLO dataset (4 images)" in res.output


def test_split_to_yolo_counts_images_and_annotations_apart(run, coco: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    res = run("split", coco, "--out", out, "--format", "yolo", "--ratios", "3:1:1")
    m = manifest(out)
    (crowd,) = m["dropped"]
    assert crowd["level"] == "annotation" and crowd["annotation_id"] == 900
    assert m["dropped_by_level"] == {"annotation": 1}
    assert "left out 1 annotation(s): crowd region" in res.output
    assert "image(s)" not in res.output


def test_convert_to_voc_lists_masks_not_images(run, coco: Path, tmp_path: Path) -> None:
    out = tmp_path / "voc"
    res = run("convert", coco, "--to", "voc", "--out", out)
    m = manifest(out)
    assert {d["level"] for d in m["dropped"]} == {"mask"}
    assert m["dropped_by_level"] == {"mask": 6}
    first = m["dropped"][0]
    assert first["item"] == "p0.jpg" and first["annotation_id"] == 100
    assert first["category"] == "fire" and first["bbox"] == [10.0, 10.0, 50.0, 40.0]
    # Said on screen too, as masks (the boxes are written).
    assert "left out 6 instance mask(s)" in " ".join(res.output.split())


def test_merge_lists_class_map_drops_as_annotations(run, coco: Path, tmp_path: Path) -> None:
    cmap = tmp_path / "map.yaml"
    cmap.write_text("classes: [fire]\ndrop: [person]\n")
    out = tmp_path / "merged"
    run("merge", coco, "--class-map", cmap, "--out", out, "--format", "coco")
    m = manifest(out)
    (person,) = m["dropped"]
    assert person["level"] == "annotation" and person["category"] == "person"
    assert person["annotation_id"] == 900 and person["annotation_index"] == 1
    assert m["dropped_by_level"] == {"annotation": 1}


def test_merge_says_what_the_output_format_left_out(run, coco: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged_yolo"
    res = run("merge", coco, "--out", out, "--format", "yolo")
    (crowd,) = manifest(out)["dropped"]
    assert crowd["level"] == "annotation" and crowd["annotation_id"] == 900
    assert "left out 1 annotation(s): crowd region" in " ".join(res.output.split())


def test_an_image_with_only_crowd_regions_is_left_out_of_yolo(tmp_path: Path) -> None:
    """QA round 4: a COCO image whose only annotations are crowd regions became an empty YOLO
    label file, which training reads as 'no objects here'."""
    rng = np.random.default_rng(4)
    raw = tmp_path / "raw"
    raw.mkdir()
    items = []
    for name, crowd_only in (("people.jpg", True), ("fire.jpg", False)):
        Image.fromarray(scene(rng)).save(raw / name, quality=92)
        ann = Annotation(CROWD_BOX, 2 if crowd_only else 1, iscrowd=crowd_only)
        items.append(ImageItem(name, raw / name, 160, 120, [ann], split="train"))
    result = write_dataset(
        Dataset([Category(1, "fire"), Category(2, "person")], items), tmp_path / "y", "yolo"
    )
    assert sorted(p.name for p in (tmp_path / "y").rglob("*.jpg")) == ["fire.jpg"]
    assert not list((tmp_path / "y").rglob("people.txt"))
    (drop,) = result.dropped
    assert drop["item"] == "people.jpg" and drop["level"] == "image"
    assert drop["reason"].startswith("only crowd regions") and drop["crowd_regions"] == 1
