"""Every ``dropped`` entry of a manifest says what it left out, whoever recorded it."""

from __future__ import annotations

from curate.core.dataset import Annotation
from curate.core.output import Manifest, annotation_drop, left_out_lines


def test_entries_without_a_level_get_one_and_are_counted_apart() -> None:
    m = Manifest("tile")
    # As the raw-source readers and tiling record them (no level of their own).
    m.record_read(
        {
            "dropped": [
                {"item": "fire003.png", "reason": "mask region too small", "bbox": [1, 2, 3, 4]},
                {"item": "clip7", "reason": "clip has no annotations (unlabeled=skip)"},
            ]
        }
    )
    m.dropped.append({"item": "t_0_0.jpg", "reason": "below-min-visibility", "annotation": 2})
    m.drop("a.jpg", "exact-file", duplicate_of="b.jpg")
    m.dropped.append(annotation_drop("b.jpg", "crowd region", Annotation((0, 0, 5, 5), 3), 0, "x"))
    d = m.to_dict()
    assert [e["level"] for e in d["dropped"]] == [
        "annotation",
        "image",
        "annotation",
        "image",
        "annotation",
    ]
    assert d["dropped_by_level"] == {"annotation": 3, "image": 2}
    assert m.count_dropped("image") == 2
    assert m.dropped[0] == {
        "item": "fire003.png",
        "reason": "mask region too small",
        "bbox": [1, 2, 3, 4],
    }  # to_dict never changes what was recorded


def test_left_out_lines_never_count_annotations_as_images() -> None:
    ann = Annotation((0.0, 0.0, 5.0, 5.0), 1, id=4)
    lines = left_out_lines(
        [
            annotation_drop("a.jpg", "crowd region: YOLO has no ignore regions", ann, 0, "person"),
            {"item": "c.jpg", "level": "image", "reason": "unlabeled image"},
            annotation_drop("b.jpg", "crowd region: YOLO has no ignore regions", ann, 1, "person"),
        ]
    )
    assert lines == [
        "left out 1 image(s): unlabeled image",
        "left out 2 annotation(s): crowd region: YOLO has no ignore regions",
    ]
