"""Carrying a dropped duplicate's labels to its survivor (--merge-labels)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from dedupe_helpers import dataset, item, make_photo, save

from curate.core.dataset import Annotation, ImageItem
from curate.dedupe import DedupeOptions, find_duplicates
from curate.dedupe.labels import IDENTITY, label_conflict, merge_into, placement
from curate.dedupe.report import build_report
from curate.dedupe.ssim import to_gray


def _item(
    name: str, boxes: list[tuple[float, float, float, float, int]], w: int = 200
) -> ImageItem:
    img = ImageItem(name, Path(name), w, w)
    img.annotations = [Annotation(bbox=b[:4], category_id=b[4]) for b in boxes]
    return img


NAMES = {0: "fire", 1: "smoke"}


def _names(img: ImageItem) -> list[str]:
    return [NAMES[a.category_id] for a in img.annotations]


def test_boxes_of_an_object_already_labelled_are_not_stacked() -> None:
    kept = _item("kept.jpg", [(10, 10, 60, 60, 0)])
    dropped = _item(
        "dup.jpg",
        [
            (25, 25, 75, 75, 0),  # the same flame drawn shifted: IoU 0.32 < 0.5, not a match
            (30, 30, 50, 50, 0),  # a part of it, inside the survivor's box
            (20, 20, 70, 70, 1),  # smoke over the flame: another class, carried
            (120, 120, 170, 170, 0),  # two overlapping flames the survivor lacks:
            (140, 140, 190, 190, 0),  # distinct objects of one image, both carried
        ],
    )
    conflict = label_conflict(dropped, _names(dropped), kept, _names(kept))
    assert conflict is not None and len(conflict.only_in_dropped) == 5
    notes = merge_into(kept, _names(kept), dropped, _names(dropped))
    assert [a.bbox for a in kept.annotations] == [
        (10, 10, 60, 60),
        (20.0, 20.0, 70.0, 70.0),
        (120.0, 120.0, 170.0, 170.0),
        (140.0, 140.0, 190.0, 190.0),
    ]
    assert all(a.attributes["merged_from"] == "dup.jpg" for a in kept.annotations[1:])
    assert len(notes) == 2 and all("likely the same object" in n for n in notes)
    assert "IoU 0.32" in notes[0]

    # A second duplicate that draws a carried flame shifted (IoU 0.22) adds nothing.
    again = _item("dup2.jpg", [(140, 100, 190, 150, 0)])
    assert merge_into(kept, _names(kept), again, _names(again))[0].startswith("'fire' box")
    assert len(kept.annotations) == 4


def test_a_box_the_survivor_labels_with_another_class_is_not_carried() -> None:
    """QA round 14: a copy relabelled Fire -> smoke gave its survivor the same box twice,
    once per class. Nearly the same box (IoU >= 0.8) with another class is a class
    disagreement, left for the user; smoke over a flame (IoU 0.47 above) is still carried."""
    kept = _item("kept.jpg", [(10, 10, 110, 110, 0)])
    dropped = _item("dup.jpg", [(12, 11, 110, 112, 1), (40, 40, 120, 120, 1)])
    notes = merge_into(kept, _names(kept), dropped, _names(dropped))
    assert [(a.bbox, a.category_id) for a in kept.annotations] == [
        ((10, 10, 110, 110), 0),
        ((40.0, 40.0, 120.0, 120.0), 1),  # IoU 0.49 with the fire box: carried
    ]
    assert len(notes) == 1
    assert (
        "'smoke' box from 'dup.jpg' not carried: the survivor labels the same box as 'fire'"
        in notes[0]
    )
    assert "class disagreement" in notes[0]


def test_boxes_are_scaled_to_the_survivor() -> None:
    kept = _item("kept.jpg", [], w=400)
    dropped = _item("half.jpg", [(10, 20, 30, 40, 1)], w=200)
    assert merge_into(kept, [], dropped, _names(dropped)) == []
    assert kept.annotations[0].bbox == (20.0, 40.0, 60.0, 80.0)


def _scene_with_objects(
    tmp_path: Path,
) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    rng = np.random.default_rng(7)
    scene = make_photo(rng, 480, 640)
    boxes = []
    for _ in range(10):  # small objects, 8-20 px, as a far-away crowd or fire
        x, y = float(rng.uniform(40, 580)), float(rng.uniform(40, 420))
        w, h = float(rng.uniform(8, 20)), float(rng.uniform(8, 20))
        boxes.append((x, y, x + w, y + h))
    return scene, boxes


def test_a_cropped_duplicate_is_compared_through_the_alignment(tmp_path: Path) -> None:
    """QA round 8: a 5 % crop passes SSIM 0.85 but its boxes, only scaled, missed their
    objects by 12-16 px: 8 of 13 became conflicts and were carried as second boxes. (Here
    2.5 %: a random texture loses SSIM faster than a photo.)"""
    scene, boxes = _scene_with_objects(tmp_path)
    dx, dy = 8, 6
    crop = scene[dy : 480 - dy, dx : 640 - dx]
    extra = (300.0, 200.0, 330.0, 240.0)  # an object only the crop's labeller drew
    orig_item = item(save(scene, tmp_path / "orig.jpg", 95), boxes)
    crop_boxes = [(x1 - dx, y1 - dy, x2 - dx, y2 - dy) for x1, y1, x2, y2 in boxes]
    crop_item = item(
        save(crop, tmp_path / "crop.jpg", 95),
        [*crop_boxes, (extra[0] - dx, extra[1] - dy, extra[2] - dx, extra[3] - dy)],
    )
    ds = dataset([orig_item, crop_item])
    plan = find_duplicates(ds, DedupeOptions(keep="largest", merge_labels=True))
    assert [ds.images[i].file_name for i in plan.kept_new()] == ["orig.jpg"]
    (cluster,) = build_report(plan)["clusters"]
    (conflict,) = cluster["label_conflicts"]
    assert len(conflict["only_in_dropped"]) == 1 and conflict["only_in_kept"] == []
    assert conflict["aligned"]["scale"] == pytest.approx(
        [1 - 2 * dx / 640, 1 - 2 * dy / 480], abs=1e-3
    )
    assert conflict["aligned"]["offset"] == pytest.approx([dx / 640, dy / 480], abs=1e-3)
    assert conflict["only_in_dropped"][0]["bbox_in_kept"] == pytest.approx(extra, abs=0.5)
    out, changes = plan.output_dataset()
    (survivor,) = out.images
    assert len(survivor.annotations) == 11
    assert survivor.annotations[-1].bbox == pytest.approx(extra, abs=0.5)
    assert changes[0]["added_annotations"] == 1


def test_a_mirrored_copy_places_its_boxes_mirrored(tmp_path: Path) -> None:
    scene, boxes = _scene_with_objects(tmp_path)
    kept = ImageItem("orig.jpg", Path("orig.jpg"), 640, 480)
    kept.annotations = [Annotation(bbox=b, category_id=0) for b in boxes[:6]]
    flipped = ImageItem("flip.jpg", Path("flip.jpg"), 640, 480)
    flipped.annotations = [
        Annotation(bbox=(640 - b[2], b[1], 640 - b[0], b[3]), category_id=0) for b in boxes
    ]
    grays = (to_gray(scene[:, ::-1].copy()), to_gray(scene))
    small = tuple(cv2.resize(g, (128, 96), interpolation=cv2.INTER_AREA) for g in grays)
    where = placement(flipped, _names(flipped), kept, _names(kept), lambda: small)  # type: ignore[arg-type, return-value]
    assert where.ax == pytest.approx(-1, abs=1e-3) and where.bx == pytest.approx(1, abs=1e-3)
    conflict = label_conflict(flipped, _names(flipped), kept, _names(kept), placed=where)
    assert conflict is not None and conflict.only_in_kept == []
    got = np.array([e["bbox_in_kept"] for e in conflict.only_in_dropped])
    assert np.abs(got - np.array(boxes[6:])).max() < 0.5


def test_images_of_one_view_keep_their_boxes_where_they_are(tmp_path: Path) -> None:
    """Frames where the fire moved: the images align at the identity, and the boxes that
    differ stay a conflict at their own place."""
    scene, boxes = _scene_with_objects(tmp_path)
    kept = ImageItem("a.jpg", Path("a.jpg"), 640, 480)
    kept.annotations = [Annotation(bbox=boxes[0], category_id=0)]
    moved = ImageItem("b.jpg", Path("b.jpg"), 640, 480)
    x1, y1, x2, y2 = boxes[0]
    moved.annotations = [Annotation(bbox=(x1 + 30, y1 + 5, x2 + 30, y2 + 5), category_id=0)]
    gray = cv2.resize(to_gray(scene), (128, 96), interpolation=cv2.INTER_AREA)
    brighter = np.clip(gray.astype(np.int16) + 25, 0, 255).astype(np.uint8)
    where = placement(moved, _names(moved), kept, _names(kept), lambda: (brighter, gray))
    assert where == IDENTITY


def test_a_box_mostly_outside_the_survivors_view_is_not_carried() -> None:
    """QA round 9: boxes 14-44 % inside a crop survivor were carried as slivers."""
    from curate.dedupe.labels import Placement

    kept = _item("crop.jpg", [])
    dropped = _item(
        "full.jpg",
        [
            (10, 10, 60, 60, 0),  # lands wholly inside
            (120, 10, 180, 60, 0),  # a third inside: carried, clipped
            (130, 70, 170, 110, 0),  # a quarter inside
            (150, 120, 190, 160, 0),  # wholly outside
        ],
    )
    shifted = Placement(1.0, 1.0, 0.3, 0.0)  # the survivor shows the dropped image's left part
    notes = merge_into(kept, [], dropped, _names(dropped), placed=shifted)
    assert [tuple(round(v, 3) for v in a.bbox) for a in kept.annotations] == [
        (70.0, 10.0, 120.0, 60.0),
        (180.0, 10.0, 200.0, 60.0),
    ]
    assert len(notes) == 2 and all("outside the survivor's view" in n for n in notes)
    assert "(25% of it inside)" in notes[0] and "(0% of it inside)" in notes[1]
