"""Checks every reader applies to the annotations it builds.

Rules (one place, so every format and source behaves the same):

- a box with a non-finite coordinate, or a width or height under :data:`MIN_BOX_SIDE`
  (0.01 px), is an error;
- a box reaching outside the image is clipped when at least half of it lies inside
  (rounding in exports, YOLO values like 1.0000001) and the clip is reported as a
  change; a box mostly outside the image is an error (usually swapped or wrong units);
  an overhang within :data:`EDGE_SLACK` of the image's side is clipped without a report:
  that is the rounding of the numbers written, not a box out of place;
- an unknown class id is an error.

Errors go through the caller's :class:`ErrorPolicy`; under ``skip`` the whole image is
left out (keeping it without the bad box would teach a detector that the object is
background).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from curate.core.dataset import Annotation, Box, ImageItem
from curate.core.errors import AnnotationError

MIN_INSIDE_FRACTION = 0.5
#: A box narrower or lower than this many pixels is degenerate: no object is that small, and
#: the writers' rounding (COCO keeps 3 decimals) would write it with zero size (QA round 7).
MIN_BOX_SIDE = 0.01
#: Overhang, as a fraction of the image's side, clipped silently: ten times what six
#: decimals of a normalised YOLO value can add. A box flush with an edge, written as
#: centre and size with six decimals each, can reach 1e-6 of the side past it (0.0003 px
#: at 640 px), and was reported as "box clipped to image" on read-back: 264 of the
#: Roboflow export's 1,100 boxes after a dedupe (QA round 10).
EDGE_SLACK = 1e-5


@dataclass
class Fixes:
    """Changes made while validating, for the manifest."""

    changed: list[dict[str, Any]] = field(default_factory=list)


def finite_number(v: Any) -> bool:
    """Whether a value read from JSON is a finite number (not a bool, a string, NaN or
    Infinity): what a score or a coordinate must be."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_box(
    box: Box, width: float, height: float, *, where: str, line: int | None = None
) -> tuple[Box, bool]:
    """Return the (possibly clipped) box and whether the clip is worth reporting (more
    than :data:`EDGE_SLACK`); raise on a bad box."""
    x1, y1, x2, y2 = box
    if not all(math.isfinite(v) for v in box):
        raise AnnotationError(where, f"box {_fmt(box)} has a non-finite coordinate", line=line)
    if x2 - x1 < MIN_BOX_SIDE or y2 - y1 < MIN_BOX_SIDE:
        raise AnnotationError(
            where,
            f"box {_fmt(box)} is degenerate (width {x2 - x1:g}, height {y2 - y1:g})",
            line=line,
            hint="fix or remove the label",
        )
    if x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height:
        return box, False
    cx1, cy1 = max(x1, 0.0), max(y1, 0.0)
    cx2, cy2 = min(x2, float(width)), min(y2, float(height))
    sx, sy = EDGE_SLACK * width, EDGE_SLACK * height
    if x1 >= -sx and y1 >= -sy and x2 <= width + sx and y2 <= height + sy:
        return (cx1, cy1, cx2, cy2), False
    inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
    full = (x2 - x1) * (y2 - y1)
    if inside < MIN_INSIDE_FRACTION * full:
        raise AnnotationError(
            where,
            f"box {_fmt(box)} lies {'entirely' if inside == 0 else 'mostly'} outside the "
            f"{width}x{height} image",
            line=line,
            hint="check the coordinate format (normalised vs pixels) and the image size",
        )
    return (cx1, cy1, cx2, cy2), True


def _fmt(box: Box) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in box) + ")"


def validated(
    img: ImageItem,
    raw: list[tuple[Annotation, int | None]],
    known_ids: set[int],
    *,
    where: str,
    changed: list[dict[str, Any]],
    class_hint: str = "",
) -> list[Annotation]:
    """Validate ``(annotation, line)`` pairs of ``img``; clip what may be clipped.

    Raises :class:`AnnotationError` for the first bad annotation.
    """
    out: list[Annotation] = []
    for ann, line in raw:
        if ann.category_id not in known_ids:
            raise AnnotationError(
                where,
                f"unknown class id {ann.category_id}",
                line=line,
                hint=class_hint or f"known ids: {sorted(known_ids)}",
            )
        box, clipped = check_box(ann.bbox, img.width, img.height, where=where, line=line)
        if clipped:
            changed.append(
                {
                    "item": img.file_name,
                    "change": "box clipped to image",
                    "file": where,
                    "line": line,
                    "from": list(ann.bbox),
                    "to": list(box),
                }
            )
        ann.bbox = box
        out.append(ann)
    return out
