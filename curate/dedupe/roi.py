"""Object-aware checks: labelled boxes that match one-to-one, and the SSIM of their regions.

Boxes are compared in normalised coordinates (divided by their image's width and height),
so a downscaled copy matches its original. Matching is greedy by IoU: pairs of the same
class in decreasing IoU, each box used once; the boxes *match* when both images have the
same number of boxes and every box found a partner with IoU >= the threshold.

Region crops come from a reduced decode whose longer side is ``roi_size`` (default 512 px,
never upscaled; a 426x240 video frame is used at full size). Each box (clipped to the
image, widened to at least :data:`MIN_CROP` px around its centre) is cut out and, when
its longer side exceeds :data:`CROP_SIDE` (64 px), area-reduced to it. Two matched
regions are compared like two images (:func:`curate.dedupe.ssim.ssim`: both resized to
their common size, enlarged to 16 px if smaller). The region SSIM of two images is the
lowest SSIM over their matched box pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from curate.core import boxes as B
from curate.core.errors import ItemError, ItemFailure
from curate.core.imageio import read_reduced

CROP_SIDE = 64
MIN_CROP = 8
DEFAULT_ROI_SIZE = 512


def normalized_boxes(boxes: NDArray[np.floating], width: int, height: int) -> NDArray[np.float64]:
    """``(K, 4)`` XYXY pixel boxes divided by the image size."""
    return B.normalize(boxes, max(width, 1), max(height, 1))


def greedy_match(
    boxes_a: NDArray[np.floating],
    classes_a: NDArray[np.integer],
    boxes_b: NDArray[np.floating],
    classes_b: NDArray[np.integer],
    min_iou: float,
) -> list[tuple[int, int]]:
    """Same-class pairs ``(a, b)`` with IoU >= ``min_iou``, greedy by IoU, each box used once."""
    if not len(boxes_a) or not len(boxes_b):
        return []
    if len(boxes_a) == 1 and len(boxes_b) == 1:
        # The common case for small objects, without array overhead (same arithmetic).
        if int(classes_a[0]) != int(classes_b[0]):
            return []
        return [(0, 0)] if B.iou_one(boxes_a[0], boxes_b[0]) >= min_iou else []
    iou = B.iou(boxes_a, boxes_b)
    same = np.asarray(classes_a)[:, None] == np.asarray(classes_b)[None, :]
    iou = np.where(same, iou, -1.0)
    kb = iou.shape[1]
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        a, b = divmod(int(flat), kb)
        if iou[a, b] < min_iou:
            break
        if a in used_a or b in used_b:
            continue
        used_a.add(a)
        used_b.add(b)
        pairs.append((a, b))
    return pairs


def match_boxes(
    boxes_a: NDArray[np.floating],
    classes_a: NDArray[np.integer],
    boxes_b: NDArray[np.floating],
    classes_b: NDArray[np.integer],
    min_iou: float,
) -> list[tuple[int, int]] | None:
    """One-to-one same-class matching with IoU >= ``min_iou``, or None when it fails.

    ``boxes_*``: ``(K, 4)`` normalised XYXY. Two images without boxes match (empty list).
    """
    if len(boxes_a) != len(boxes_b):
        return None
    pairs = greedy_match(boxes_a, classes_a, boxes_b, classes_b, min_iou)
    return pairs if len(pairs) == len(boxes_a) else None


class BoxMatcher:
    """Vectorised necessary test that two images' boxes can match one-to-one.

    True for a pair when both have the same number of boxes and every box of each has a
    same-class box in the other with IoU >= ``min_iou``. (The one-to-one matching itself
    is checked when the pair is scored.) Boxes are normalised XYXY, one array per image.
    """

    def __init__(
        self,
        boxes: Sequence[NDArray[np.float64]],
        classes: Sequence[NDArray[np.int64]],
        min_iou: float,
    ) -> None:
        self.n_boxes = np.array([len(x) for x in boxes], np.int64)
        self.kmax = int(self.n_boxes.max()) if len(self.n_boxes) else 0
        self.pad = np.zeros((len(boxes), max(self.kmax, 1), 4))
        self.cls = np.full((len(boxes), max(self.kmax, 1)), -1, np.int64)
        for i, (bx, cl) in enumerate(zip(boxes, classes, strict=True)):
            self.pad[i, : len(bx)] = bx
            self.cls[i, : len(cl)] = cl
        self.min_iou = min_iou

    def __call__(self, a: NDArray[np.integer], b: NDArray[np.integer]) -> NDArray[np.bool_]:
        a = np.asarray(a, np.int64)
        b = np.asarray(b, np.int64)
        n_boxes = self.n_boxes
        out = n_boxes[a] == n_boxes[b]
        for k in range(1, self.kmax + 1):
            sel = np.flatnonzero(out & (n_boxes[a] == k))
            for start in range(0, len(sel), 65536):
                part = sel[start : start + 65536]
                out[part] = self._all_matched(a[part], b[part], k)
        return out

    def _all_matched(self, a: NDArray[np.int64], b: NDArray[np.int64], k: int) -> NDArray[np.bool_]:
        ba, bb = self.pad[a, :k], self.pad[b, :k]
        lt = np.maximum(ba[:, :, None, :2], bb[:, None, :, :2])
        rb = np.minimum(ba[:, :, None, 2:], bb[:, None, :, 2:])
        inter = np.clip(rb - lt, 0, None).prod(axis=3)
        area_a = (ba[:, :, 2] - ba[:, :, 0]) * (ba[:, :, 3] - ba[:, :, 1])
        area_b = (bb[:, :, 2] - bb[:, :, 0]) * (bb[:, :, 3] - bb[:, :, 1])
        union = area_a[:, :, None] + area_b[:, None, :] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        same = self.cls[a, :k][:, :, None] == self.cls[b, :k][:, None, :]
        good = np.where(same, iou, -1.0) >= self.min_iou
        return good.any(axis=2).all(axis=1) & good.any(axis=1).all(axis=1)


def crop_regions(
    gray: NDArray[np.uint8], boxes_norm: NDArray[np.floating]
) -> tuple[NDArray[np.uint8], ...]:
    """Crops of the normalised boxes from a grayscale image, each at most ``CROP_SIDE`` px.

    A crop keeps its box's aspect; larger ones are area-reduced to a longer side of
    ``CROP_SIDE``. Two crops are compared at their common size (see :func:`ssim`).
    """
    h, w = gray.shape
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes_norm, np.float64):
        bx1, bx2 = _span(x1 * w, x2 * w, w)
        by1, by2 = _span(y1 * h, y2 * h, h)
        region = gray[by1:by2, bx1:bx2]
        side = max(region.shape)
        if side > CROP_SIDE:
            f = CROP_SIDE / side
            size = (max(1, round(region.shape[1] * f)), max(1, round(region.shape[0] * f)))
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(region))
    return tuple(out)


def _span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Integer pixel span of ``[lo, hi)`` clipped to ``[0, size)``, at least MIN_CROP wide."""
    lo, hi = max(0.0, min(lo, hi)), min(float(size), max(lo, hi))
    need = min(MIN_CROP, size)
    if hi - lo < need:
        centre = (lo + hi) / 2
        lo = min(max(0.0, centre - need / 2), size - need)
        hi = lo + need
    a = int(np.floor(lo))
    b = max(a + 1, int(np.ceil(hi)))
    return a, min(b, size)


def roi_task(
    job: tuple[str, NDArray[np.float64], int, int | None],
) -> tuple[NDArray[np.uint8], ...] | ItemFailure:
    """Worker task: decode ``path`` at ``roi_size`` and crop its normalised boxes."""
    path, boxes_norm, roi_size, max_pixels = job
    try:
        gray = read_reduced(Path(path), roi_size, gray=True, max_pixels=max_pixels)
    except ItemError as err:
        return ItemFailure.of(err)
    return crop_regions(gray, boxes_norm)
