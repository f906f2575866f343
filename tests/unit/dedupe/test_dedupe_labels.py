"""Carrying a dropped duplicate's labels to its survivor (--merge-labels)."""

from __future__ import annotations

from pathlib import Path

from curate.core.dataset import Annotation, ImageItem
from curate.dedupe.labels import label_conflict, merge_into


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


def test_boxes_are_scaled_to_the_survivor() -> None:
    kept = _item("kept.jpg", [], w=400)
    dropped = _item("half.jpg", [(10, 20, 30, 40, 1)], w=200)
    assert merge_into(kept, [], dropped, _names(dropped)) == []
    assert kept.annotations[0].bbox == (20.0, 40.0, 60.0, 80.0)
