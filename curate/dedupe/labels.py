"""Labels of duplicates: conflicts between a dropped image and its survivor, and merging.

Annotations of a dropped duplicate are never lost silently. Its boxes are compared with
the survivor's in normalised coordinates (same class, IoU >= 0.5, one-to-one, greedy by
IoU); boxes left unmatched on either side make a *label conflict*, listed in the report.
With ``merge_labels`` the dropped image's unmatched boxes are added to the survivor,
scaled to the survivor's size (polygon masks are scaled too; RLE and bitmap masks, which
cannot be rescaled exactly, are left off and the change says so). A box that overlaps a
survivor box of its class (IoU >= :data:`OVERLAP_IOU`, or :data:`OVERLAP_IOS` of the
smaller box inside the other) is most likely the same object drawn another way: it is not
added (stacked boxes on one object teach a detector duplicates), and the change says so;
the report's label conflict still lists it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.core import boxes as B
from curate.core.dataset import Annotation, ImageItem, Mask
from curate.dedupe.roi import greedy_match

MATCH_IOU = 0.5
#: A carried box this close to a survivor box of its class is taken for the same object.
OVERLAP_IOU = 0.2
OVERLAP_IOS = 0.6
#: In a note of :func:`merge_into`: a box left off because it overlaps one of its class.
LEFT_OVERLAP = "not carried: it overlaps"


@dataclass(slots=True)
class LabelConflict:
    """Boxes (with class names) that only one side has.

    Every ``bbox`` is absolute-pixel XYXY in its own image (``dropped_size`` and
    ``kept_size`` give both sizes, width and height); a box only in the dropped image
    also carries ``bbox_in_kept``, the same box scaled to the kept image, where
    ``--merge-labels`` would put it.
    """

    dropped: str
    kept: str
    only_in_dropped: list[dict[str, Any]] = field(default_factory=list)
    only_in_kept: list[dict[str, Any]] = field(default_factory=list)
    dropped_size: tuple[int, int] = (0, 0)
    kept_size: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dropped": self.dropped,
            "kept": self.kept,
            "bbox_format": "xyxy pixels of its own image",
            "dropped_size": list(self.dropped_size),
            "kept_size": list(self.kept_size),
            "only_in_dropped": self.only_in_dropped,
            "only_in_kept": self.only_in_kept,
        }


def _same(name: str) -> str:
    return name


def _unmatched(
    a: ImageItem,
    names_a: Sequence[str],
    b: ImageItem,
    names_b: Sequence[str],
    key: Callable[[str], str] = _same,
) -> tuple[list[int], list[int]]:
    """Indices of ``a``'s and ``b``'s annotations without a same-class partner (IoU >= 0.5).

    Classes are compared by name (``key(name)``: the pipeline ignores case and spacing and
    applies ``--class-map``), so images from datasets with other ids compare right.
    """
    ba = B.normalize(a.boxes(), max(a.width, 1), max(a.height, 1))
    bb = B.normalize(b.boxes(), max(b.width, 1), max(b.height, 1))
    number: dict[str, int] = {}
    ca = np.array([number.setdefault(key(n), len(number)) for n in names_a], np.int64)
    cb = np.array([number.setdefault(key(n), len(number)) for n in names_b], np.int64)
    pairs = greedy_match(ba, ca, bb, cb, MATCH_IOU)
    used_a = {p for p, _ in pairs}
    used_b = {q for _, q in pairs}
    return (
        [i for i in range(len(ba)) if i not in used_a],
        [j for j in range(len(bb)) if j not in used_b],
    )


def _describe(ann: Annotation, name: str) -> dict[str, Any]:
    return {"category": name, "bbox": [round(v, 2) for v in ann.bbox]}


def _scale_to(dropped: ImageItem, kept: ImageItem) -> tuple[float, float]:
    """Per-axis factors from ``dropped``'s pixels to ``kept``'s (a resized copy's boxes)."""
    return kept.width / max(dropped.width, 1), kept.height / max(dropped.height, 1)


def label_conflict(
    dropped: ImageItem,
    names_dropped: Sequence[str],
    kept: ImageItem,
    names_kept: Sequence[str],
    *,
    kept_label: str | None = None,
    key: Callable[[str], str] = _same,
) -> LabelConflict | None:
    """The conflict between a dropped duplicate and its survivor, or None when labels agree.

    ``names_*``: the class name of each annotation (compared as ``key(name)``). Images
    tagged ``unlabeled`` carry no label information and never conflict.
    """
    if dropped.attributes.get("unlabeled") or kept.attributes.get("unlabeled"):
        return None
    only_d, only_k = _unmatched(dropped, names_dropped, kept, names_kept, key)
    if not only_d and not only_k:
        return None
    sx, sy = _scale_to(dropped, kept)
    in_dropped = []
    for i in only_d:
        entry = _describe(dropped.annotations[i], names_dropped[i])
        box = B.clip(B.scale([dropped.annotations[i].bbox], sx, sy), kept.width, kept.height)[0]
        entry["bbox_in_kept"] = [round(float(v), 2) for v in box]
        in_dropped.append(entry)
    return LabelConflict(
        dropped.file_name,
        kept_label or kept.file_name,
        in_dropped,
        [_describe(kept.annotations[j], names_kept[j]) for j in only_k],
        (dropped.width, dropped.height),
        (kept.width, kept.height),
    )


def merge_into(
    kept: ImageItem,
    names_kept: Sequence[str],
    dropped: ImageItem,
    names_dropped: Sequence[str],
    key: Callable[[str], str] = _same,
) -> list[str]:
    """Add ``dropped``'s unmatched annotations to ``kept`` (scaled); return notes on
    boxes not carried.

    Both images must come from one dataset (one category id space).
    """
    if dropped.attributes.get("unlabeled"):
        return []
    only_d, _ = _unmatched(dropped, names_dropped, kept, names_kept, key)
    sx, sy = _scale_to(dropped, kept)
    notes: list[str] = []
    # Boxes already on the survivor (its own, and those carried from earlier duplicates);
    # boxes of this one image may overlap each other: they are distinct objects.
    before = list(zip(kept.annotations, names_kept, strict=True))
    for i in only_d:
        src = dropped.annotations[i]
        box = B.clip(B.scale([src.bbox], sx, sy), kept.width, kept.height)[0]
        same = [a.bbox for a, n in before if key(n) == key(names_dropped[i])]
        if same:
            iou, ios = float(B.iou([box], same).max()), float(B.ios([box], same).max())
            if iou >= OVERLAP_IOU or ios >= OVERLAP_IOS:
                notes.append(
                    f"'{names_dropped[i]}' box from '{dropped.file_name}' {LEFT_OVERLAP} "
                    f"a box of the same class (IoU {iou:.2f}, {ios:.2f} of the "
                    "smaller inside the other), likely the same object"
                )
                continue
        mask: Mask | None = None
        if src.mask is not None:
            if src.mask.kind == "polygons":
                mask = Mask("polygons", [p * np.array([sx, sy]) for p in src.mask.data])
            else:
                notes.append(
                    f"{src.mask.kind} mask of a box from '{dropped.file_name}' not carried"
                )
        attrs = copy.deepcopy(src.attributes)
        attrs["merged_from"] = dropped.file_name
        kept.annotations.append(
            Annotation(
                bbox=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                category_id=src.category_id,
                mask=mask,
                iscrowd=src.iscrowd,
                score=src.score,
                attributes=attrs,
            )
        )
    return notes
