"""Box formats and geometry, pure NumPy.

Inside sodkit every box is absolute-pixel XYXY float: ``(x1, y1, x2, y2)`` with
``x1 <= x2`` and ``y1 <= y2``, pixel edges (a box covering pixel 0 only is
``(0, 0, 1, 1)``). Other layouts (COCO ``xywh``, YOLO normalised ``cxcywh``,
VOC integer corners) appear only at the edges, in ``curate.formats``.

Every function takes ``(N, 4)`` (or ``(4,)``) array-likes, never changes its
inputs and returns new float64 arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def as_boxes(boxes: ArrayLike) -> FloatArray:
    """Return ``boxes`` as a new float64 ``(N, 4)`` array (a single box becomes ``(1, 4)``)."""
    arr = np.array(boxes, dtype=np.float64, copy=True)
    if arr.size == 0:
        return arr.reshape(0, 4)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return arr


def xywh_to_xyxy(boxes: ArrayLike) -> FloatArray:
    """COCO ``(x, y, w, h)`` → ``(x1, y1, x2, y2)``."""
    b = as_boxes(boxes)
    b[:, 2] += b[:, 0]
    b[:, 3] += b[:, 1]
    return b


def xyxy_to_xywh(boxes: ArrayLike) -> FloatArray:
    """``(x1, y1, x2, y2)`` → COCO ``(x, y, w, h)``."""
    b = as_boxes(boxes)
    b[:, 2] -= b[:, 0]
    b[:, 3] -= b[:, 1]
    return b


def cxcywh_to_xyxy(boxes: ArrayLike) -> FloatArray:
    """``(cx, cy, w, h)`` → ``(x1, y1, x2, y2)``."""
    b = as_boxes(boxes)
    out = np.empty_like(b)
    out[:, 0] = b[:, 0] - b[:, 2] / 2
    out[:, 1] = b[:, 1] - b[:, 3] / 2
    out[:, 2] = b[:, 0] + b[:, 2] / 2
    out[:, 3] = b[:, 1] + b[:, 3] / 2
    return out


def xyxy_to_cxcywh(boxes: ArrayLike) -> FloatArray:
    """``(x1, y1, x2, y2)`` → ``(cx, cy, w, h)``."""
    b = as_boxes(boxes)
    out = np.empty_like(b)
    out[:, 0] = (b[:, 0] + b[:, 2]) / 2
    out[:, 1] = (b[:, 1] + b[:, 3]) / 2
    out[:, 2] = b[:, 2] - b[:, 0]
    out[:, 3] = b[:, 3] - b[:, 1]
    return out


def normalize(boxes: ArrayLike, width: float, height: float) -> FloatArray:
    """Divide x by ``width`` and y by ``height`` (any 4-column layout)."""
    b = as_boxes(boxes)
    b[:, [0, 2]] /= width
    b[:, [1, 3]] /= height
    return b


def denormalize(boxes: ArrayLike, width: float, height: float) -> FloatArray:
    """Multiply x by ``width`` and y by ``height`` (any 4-column layout)."""
    b = as_boxes(boxes)
    b[:, [0, 2]] *= width
    b[:, [1, 3]] *= height
    return b


def widths_heights(boxes: ArrayLike) -> FloatArray:
    """``(N, 2)`` widths and heights of XYXY boxes (negative for inverted boxes)."""
    b = as_boxes(boxes)
    return np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def area(boxes: ArrayLike) -> FloatArray:
    """``(N,)`` areas of XYXY boxes; inverted boxes have area 0."""
    wh = np.clip(widths_heights(boxes), 0.0, None)
    return wh[:, 0] * wh[:, 1]


def clip(boxes: ArrayLike, width: float, height: float) -> FloatArray:
    """Clip XYXY boxes to the image ``[0, width] x [0, height]``."""
    b = as_boxes(boxes)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0.0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0.0, height)
    return b


def translate(boxes: ArrayLike, dx: float, dy: float) -> FloatArray:
    """Shift XYXY boxes by ``(dx, dy)``."""
    b = as_boxes(boxes)
    b[:, [0, 2]] += dx
    b[:, [1, 3]] += dy
    return b


def scale(boxes: ArrayLike, sx: float, sy: float) -> FloatArray:
    """Scale XYXY boxes by ``sx`` in x and ``sy`` in y (about the origin)."""
    b = as_boxes(boxes)
    b[:, [0, 2]] *= sx
    b[:, [1, 3]] *= sy
    return b


def is_degenerate(boxes: ArrayLike, min_size: float = 0.0) -> NDArray[np.bool_]:
    """``(N,)`` True where a box is not finite or its width or height is ``<= min_size``."""
    b = as_boxes(boxes)
    wh = widths_heights(b)
    finite = np.isfinite(b).all(axis=1)
    return ~finite | (wh[:, 0] <= min_size) | (wh[:, 1] <= min_size)


def out_of_bounds(
    boxes: ArrayLike, width: float, height: float, tol: float = 0.0
) -> NDArray[np.bool_]:
    """``(N,)`` True where a box reaches outside ``[0, width] x [0, height]`` by more than ``tol``."""
    b = as_boxes(boxes)
    return (b[:, 0] < -tol) | (b[:, 1] < -tol) | (b[:, 2] > width + tol) | (b[:, 3] > height + tol)


def intersection(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """``(N, M)`` pairwise intersection areas of XYXY boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)``."""
    a_ = as_boxes(a)
    b_ = as_boxes(b)
    lt = np.maximum(a_[:, None, :2], b_[None, :, :2])
    rb = np.minimum(a_[:, None, 2:], b_[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    return wh[..., 0] * wh[..., 1]


def iou(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """``(N, M)`` pairwise intersection over union; 0 where the union is empty."""
    inter = intersection(a, b)
    union = area(a)[:, None] + area(b)[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def iou_one(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two single XYXY boxes (4 numbers each) with the arithmetic of :func:`iou`
    (same value, bit for bit) but no array overhead, for hot loops matching one box to one."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    inter = max(min(ax2, bx2) - max(ax1, bx1), 0.0) * max(min(ay2, by2) - max(ay1, by1), 0.0)
    union = max(ax2 - ax1, 0.0) * max(ay2 - ay1, 0.0) + max(bx2 - bx1, 0.0) * max(by2 - by1, 0.0)
    union -= inter
    return inter / union if union > 0 else 0.0


def ios(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """``(N, M)`` pairwise intersection over the smaller box's area (IoS)."""
    inter = intersection(a, b)
    smaller = np.minimum(area(a)[:, None], area(b)[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(smaller > 0, inter / smaller, 0.0)
    return out


def ioa(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """``(N, M)`` intersection over the area of each box of ``a`` (visible fraction of ``a`` in ``b``)."""
    inter = intersection(a, b)
    area_a = area(a)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(area_a > 0, inter / area_a, 0.0)
    return out


def paired_iou(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """``(N,)`` IoU of ``a[i]`` with ``b[i]``."""
    a_ = as_boxes(a)
    b_ = as_boxes(b)
    if a_.shape != b_.shape:
        raise ValueError(f"paired_iou needs equal shapes, got {a_.shape} and {b_.shape}")
    lt = np.maximum(a_[:, :2], b_[:, :2])
    rb = np.minimum(a_[:, 2:], b_[:, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[:, 0] * wh[:, 1]
    union = area(a_) + area(b_) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def union_box(boxes: ArrayLike) -> FloatArray:
    """The ``(4,)`` smallest XYXY box enclosing all ``boxes`` (needs at least one box)."""
    b = as_boxes(boxes)
    if len(b) == 0:
        raise ValueError("union_box needs at least one box")
    return np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
