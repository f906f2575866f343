"""Labels of duplicates: conflicts between a dropped image and its survivor, and merging.

Annotations of a dropped duplicate are never lost silently. Its boxes are compared with
the survivor's in normalised coordinates (same class, IoU >= 0.5, one-to-one, greedy by
IoU); boxes left unmatched on either side make a *label conflict*, listed in the report.
With ``merge_labels`` the dropped image's unmatched boxes are added to the survivor,
scaled to the survivor's size (polygon masks are scaled too; RLE and bitmap masks, which
cannot be rescaled exactly, are left off and the change says so).

A duplicate need not show the same view: SSIM passes a copy cropped by a few percent and
stretched back (QA round 8: a 5 % crop of a COCO photo scored 0.859), and its boxes,
scaled alone, land 12-16 px off their objects, so 8 of its 13 boxes counted as conflicts
and were carried as second, misplaced boxes. When boxes of the dropped image are left
unmatched, :func:`placement` aligns the two thumbnails (OpenCV's ECC, scale and offset per
axis, a mirror included) and, where they align (the alignment explains them almost wholly)
and at least as many boxes match, compares and carries the boxes through it; the conflict
then says how the images were aligned.

A box that overlaps a survivor box of its class (IoU >= :data:`OVERLAP_IOU`, or
:data:`OVERLAP_IOS` of the smaller box inside the other) is most likely the same object
drawn another way: it is not added (stacked boxes on one object teach a detector
duplicates), and the change says so; the report's label conflict still lists it. A box
nearly the same as a survivor box of another class (IoU >= :data:`CLASS_CONFLICT_IOU`)
is one object the two images label differently: it is not added either (two boxes of two
classes on one object would teach a detector both; QA round 14: a copy relabelled from
Fire to smoke gave its survivor the same box twice, once per class), and the note names
both classes for the user to decide.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from curate.core import boxes as B
from curate.core.dataset import Annotation, ImageItem, Mask
from curate.dedupe.roi import greedy_match

MATCH_IOU = 0.5
#: A carried box this close to a survivor box of its class is taken for the same object.
OVERLAP_IOU = 0.2
OVERLAP_IOS = 0.6
#: In a note of :func:`merge_into`: a box left off because it overlaps one of its class,
#: or because it falls outside the survivor's picture (a crop's survivor).
LEFT_OVERLAP = "not carried: it overlaps"
LEFT_OUTSIDE = "not carried: it lies outside the survivor's view"
LEFT_CLASS = "not carried: the survivor labels the same box"
#: A carried box this close to a survivor box of another class is that box with another
#: label: fire and smoke boxes of one scene overlap, but rarely this much.
CLASS_CONFLICT_IOU = 0.8
#: A box placed in the survivor is carried only when this much of it lies inside, as
#: ``curate tile`` keeps a cut box by default (``--min-visibility``): a sliver of an object
#: at a crop's edge is no label of it (QA round 9: boxes 14-44 % inside were carried).
MIN_CARRY_VISIBLE = 0.3


#: ECC alignment: the correlation an aligned pair must reach, the share of the images'
#: unexplained part (1 - correlation, as they are) it must leave at most, iterations, and
#: the largest rotation or shear term relative to the scale (copies are resized, cropped or
#: mirrored, not rotated). Crops, side cuts and mirrors of real photos leave 0.00-0.18 of
#: it (correlation 0.993-0.9999), of textured scenes 0.05-0.40 (0.957-0.991); frames of a
#: Roboflow clip whose fire moved or whose camera shook 1.05-2.5: aligning them explains
#: nothing, and an alignment that follows the fire would hide a real label conflict.
ALIGN_MIN_CORRELATION = 0.95
ALIGN_MAX_RESIDUAL = 0.5
#: ... unless the alignment explains the images this well and they as they are do not (a
#: crop of a smooth scene is nearly as well explained as it is: 0.995 there, 0.999 aligned).
ALIGN_EXPLAINS = 0.998
_ALIGN_ITERATIONS = 50
_ALIGN_MAX_SHEAR = 0.02


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a dropped duplicate's picture lies in its survivor's, in normalised
    coordinates (0..1 across each image): ``u_kept = ax * u_dropped + bx`` and ``v_kept =
    ay * v_dropped + by``. The identity for copies of one view (resized, re-encoded, edited);
    a 5 % centre crop stretched back is about ``ax = ay = 0.95, bx = by = 0.025``; a mirror
    has ``ax = -1, bx = 1``."""

    ax: float = 1.0
    ay: float = 1.0
    bx: float = 0.0
    by: float = 0.0

    def boxes(self, norm: NDArray[np.floating]) -> NDArray[np.float64]:
        """``(N, 4)`` normalised XYXY boxes of the dropped image, in the survivor's."""
        b = np.asarray(norm, np.float64).reshape(-1, 4)
        x = b[:, [0, 2]] * self.ax + self.bx
        y = b[:, [1, 3]] * self.ay + self.by
        return np.stack([x.min(1), y.min(1), x.max(1), y.max(1)], axis=1)

    def points(
        self, xy: NDArray[np.floating], src: tuple[int, int], dst: tuple[int, int]
    ) -> NDArray[np.float64]:
        """``(N, 2)`` pixel points of a ``src`` (width, height) image in a ``dst`` one."""
        p = np.asarray(xy, np.float64).reshape(-1, 2) / np.array(src, np.float64)
        p = p * np.array([self.ax, self.ay]) + np.array([self.bx, self.by])
        return p * np.array(dst, np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": [round(self.ax, 4), round(self.ay, 4)],
            "offset": [round(self.bx, 4), round(self.by, 4)],
            "coordinates": "normalised: kept = scale * dropped + offset",
        }


IDENTITY = Placement()


def _ecc(
    k: NDArray[np.float32], d: NDArray[np.float32], start: NDArray[np.float32]
) -> tuple[float, NDArray[np.float32]] | None:
    """ECC of ``d`` onto ``k`` from ``start``, coarse to fine (half size first: from the
    full size alone it stopped at a wrong optimum for a 5 % side cut, QA round 9), as
    ``(correlation, warp)``; None when it does not converge or the warp is no copy's (a
    scale off by more than 2x, rotation or shear)."""
    h, w = k.shape
    half = (max(8, w // 2), max(8, h // 2))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, _ALIGN_ITERATIONS, 1e-4)
    # Pixel centres: x_full = 2 x_half + 0.5, for the start and back for the result.
    warp = start.copy()
    warp[:, 2] = (warp[:, 2] - 0.5 * (1 - warp[:, 0] - warp[:, 1])) / 2
    try:
        _, warp = cv2.findTransformECC(
            cv2.resize(k, half, interpolation=cv2.INTER_AREA),
            cv2.resize(d, half, interpolation=cv2.INTER_AREA),
            warp,
            cv2.MOTION_AFFINE,
            criteria,
            None,
            3,
        )
        warp[:, 2] = 2 * warp[:, 2] + 0.5 * (1 - warp[:, 0] - warp[:, 1])
        cc, warp = cv2.findTransformECC(k, d, warp, cv2.MOTION_AFFINE, criteria, None, 5)
    except cv2.error:  # no convergence: the images do not correlate so
        return None
    (a, s1, _), (s2, e, _) = warp[0], warp[1]
    if not (0.5 <= abs(a) <= 2 and 0.5 <= abs(e) <= 2):
        return None
    if abs(s1) > _ALIGN_MAX_SHEAR * abs(a) or abs(s2) > _ALIGN_MAX_SHEAR * abs(e):
        return None
    return float(cc), warp


def align(dropped: NDArray[np.uint8], kept: NDArray[np.uint8]) -> Placement | None:
    """How ``dropped``'s grayscale thumbnail lies in ``kept``'s (ECC, an affine model kept
    to scale and offset per axis), or None when they do not align: no convergence, a
    correlation below :data:`ALIGN_MIN_CORRELATION`, one that leaves more than
    :data:`ALIGN_MAX_RESIDUAL` of what the images as they are leave unexplained (unless it
    reaches :data:`ALIGN_EXPLAINS`), rotation or shear, a scale off by more than 2x."""
    h, w = kept.shape[:2]
    d = cv2.resize(dropped, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    k = kept.astype(np.float32)
    # As they are, smoothed as ECC smooths them (gaussFiltSize 5), so the two compare.
    ks, ds = cv2.GaussianBlur(k, (5, 5), 0), cv2.GaussianBlur(d, (5, 5), 0)
    as_is = float(cv2.computeECC(ks, ds))

    def good(found: tuple[float, NDArray[np.float32]] | None) -> bool:
        return found is not None and (
            found[0] >= ALIGN_EXPLAINS > as_is
            or (
                found[0] >= ALIGN_MIN_CORRELATION
                and 1 - found[0] <= ALIGN_MAX_RESIDUAL * (1 - as_is)
            )
        )

    found = _ecc(k, d, np.eye(2, 3, dtype=np.float32))
    if not good(found) and float(cv2.computeECC(ks, ds[:, ::-1].copy())) > as_is:
        # A left-right mirror (a colour histogram takes one for a copy): ECC only refines
        # what it starts near.
        found = _ecc(k, d, np.array([[-1, 0, w - 1], [0, 1, 0]], np.float32))
    if found is None or not good(found):
        return None  # the images need no alignment, or their content itself differs
    (a, _, tx), (_, e, ty) = (float(v) for v in found[1][0]), (float(v) for v in found[1][1])
    # The warp maps a kept pixel centre x to the dropped one: x_d = a * x_k + tx. In
    # normalised coordinates (pixel edges at 0 and w) that is inverted here.
    return Placement(
        ax=1 / a,
        ay=1 / e,
        bx=(0.5 - (0.5 + tx) / a) / w,
        by=(0.5 - (0.5 + ty) / e) / h,
    )


#: An alignment this close to the identity is the identity (ECC's noise on edited copies:
#: scales within 0.5 %, offsets within a quarter of a thumbnail pixel).
_NEAR_SCALE = 0.005
_NEAR_OFFSET = 0.002


def _near_identity(p: Placement) -> bool:
    return (
        abs(p.ax - 1) <= _NEAR_SCALE
        and abs(p.ay - 1) <= _NEAR_SCALE
        and abs(p.bx) <= _NEAR_OFFSET
        and abs(p.by) <= _NEAR_OFFSET
    )


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
    placement: Placement = IDENTITY

    def to_dict(self) -> dict[str, Any]:
        out = {
            "dropped": self.dropped,
            "kept": self.kept,
            "bbox_format": "xyxy pixels of its own image",
            "dropped_size": list(self.dropped_size),
            "kept_size": list(self.kept_size),
            "only_in_dropped": self.only_in_dropped,
            "only_in_kept": self.only_in_kept,
        }
        if self.placement != IDENTITY:
            out["aligned"] = self.placement.to_dict()
        return out


def _same(name: str) -> str:
    return name


#: Normalised boxes and class numbers of two images (see :func:`_sides`).
_Sides = tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]


def _sides(
    a: ImageItem,
    names_a: Sequence[str],
    b: ImageItem,
    names_b: Sequence[str],
    key: Callable[[str], str],
) -> _Sides:
    """Normalised boxes and class numbers of both images (classes compared by ``key(name)``)."""
    ba = B.normalize(a.boxes(), max(a.width, 1), max(a.height, 1))
    bb = B.normalize(b.boxes(), max(b.width, 1), max(b.height, 1))
    number: dict[str, int] = {}
    ca = np.array([number.setdefault(key(n), len(number)) for n in names_a], np.int64)
    cb = np.array([number.setdefault(key(n), len(number)) for n in names_b], np.int64)
    return ba, ca, bb, cb


def _unmatched(
    a: ImageItem,
    names_a: Sequence[str],
    b: ImageItem,
    names_b: Sequence[str],
    key: Callable[[str], str] = _same,
    placement: Placement = IDENTITY,
) -> tuple[list[int], list[int]]:
    """Indices of ``a``'s and ``b``'s annotations without a same-class partner (IoU >= 0.5),
    ``a``'s boxes placed in ``b`` by ``placement``.

    Classes are compared by name (``key(name)``: the pipeline ignores case and spacing and
    applies ``--class-map``), so images from datasets with other ids compare right.
    """
    return _unmatched_sides(_sides(a, names_a, b, names_b, key), placement)


def _unmatched_sides(sides: _Sides, placement: Placement = IDENTITY) -> tuple[list[int], list[int]]:
    """:func:`_unmatched` of boxes and classes from :func:`_sides`."""
    ba, ca, bb, cb = sides
    pairs = greedy_match(placement.boxes(ba), ca, bb, cb, MATCH_IOU)
    used_a = {p for p, _ in pairs}
    used_b = {q for _, q in pairs}
    return (
        [i for i in range(len(ba)) if i not in used_a],
        [j for j in range(len(bb)) if j not in used_b],
    )


#: Boxes paired to fit an alignment to the labels need these IoUs, in turn: placed by the
#: images' alignment, then by each fit. The fit may move no point of the image by more
#: than ``_FIT_SLACK`` (normalised: 1.5 pixels of a 128 px thumbnail) from where the
#: images' alignment puts it.
_FIT_IOUS = (0.1, 0.3, MATCH_IOU)
_FIT_SLACK = 1.5 / 128
#: The paired boxes' edges must spread over this much of an axis to fit its scale too;
#: edges this near a border (normalised) are left out of the fit.
_FIT_SPREAD = 0.3
_BORDER = 0.005


def _fit(
    rough: Placement,
    ba: NDArray[np.float64],
    ca: NDArray[np.int64],
    bb: NDArray[np.float64],
    cb: NDArray[np.int64],
) -> Placement:
    """``rough`` (from thumbnails: about a thumbnail pixel off, several pixels of a small
    box at full size) refitted to the boxes it pairs: per axis, the least-squares line
    through the pairs' edge coordinates, the pairs taken again through each fit at a
    stricter IoU (:data:`_FIT_IOUS`: a loose first pairing holds some wrong pairs).
    ``rough`` itself when fewer than 2 pairs, or when the fit would move a point of the
    image by more than :data:`_FIT_SLACK` from where ``rough`` puts it."""
    current = rough
    for min_iou in _FIT_IOUS:
        pairs = greedy_match(current.boxes(ba), ca, bb, cb, min_iou)
        if len(pairs) < 2:
            break
        current = _line_fit(rough, ba[[p for p, _ in pairs]], bb[[q for _, q in pairs]])
    # A refinement, not a new alignment: with a few boxes a line can bend to fit objects
    # that moved (fire between video frames), so it may not move any point of the image
    # by more than the thumbnails' own error.
    for a, b, a0, b0 in (
        (current.ax, current.bx, rough.ax, rough.bx),
        (current.ay, current.by, rough.ay, rough.by),
    ):
        if max(abs(b - b0), abs(a + b - a0 - b0)) > _FIT_SLACK:
            return rough
    return current


def _line_fit(rough: Placement, src: NDArray[np.float64], dst: NDArray[np.float64]) -> Placement:
    """Per axis, the line through paired box edges (``src`` in the dropped image, ``dst``
    in the kept one); only the offset, at ``rough``'s scale, when the edges spread over
    less than :data:`_FIT_SPREAD` of the axis."""
    if rough.ax < 0:  # mirrored: a box's left edge lands on the right
        dst = dst[:, [2, 1, 0, 3]]
    if rough.ay < 0:
        dst = dst[:, [0, 3, 2, 1]]
    fitted = []
    for cols, slope in (([0, 2], rough.ax), ([1, 3], rough.ay)):
        x, y = src[:, cols].ravel(), dst[:, cols].ravel()
        # An edge on an image's border may be where a crop cut the box, not the object's.
        inside = (np.minimum(x, 1 - x) > _BORDER) & (np.minimum(y, 1 - y) > _BORDER)
        if inside.sum() < 2:
            return rough
        x, y = x[inside], y[inside]
        if np.ptp(x) >= _FIT_SPREAD:
            a, b = np.polyfit(x, y, 1)
        else:  # boxes in a narrow band tell the offset there, not the scale
            a, b = slope, float(np.mean(y - slope * x))
        fitted.append((float(a), float(b)))
    (ax, bx), (ay, by) = fitted
    return Placement(ax, ay, bx, by)


def _describe(ann: Annotation, name: str) -> dict[str, Any]:
    return {"category": name, "bbox": [round(v, 2) for v in ann.bbox]}


def _placed(
    box: Sequence[float], dropped: ImageItem, kept: ImageItem, placement: Placement
) -> tuple[float, NDArray[np.float64]]:
    """``(visible fraction, clipped box)`` of a pixel XYXY box of ``dropped`` placed in
    ``kept``'s pixels."""
    norm = B.normalize([box], max(dropped.width, 1), max(dropped.height, 1))
    placed = placement.boxes(norm) * np.array([kept.width, kept.height] * 2, np.float64)
    clipped = B.clip(placed, kept.width, kept.height)
    whole = float(B.area(placed)[0])
    return (float(B.area(clipped)[0]) / whole if whole > 0 else 0.0), clipped[0]


def placement(
    dropped: ImageItem,
    names_dropped: Sequence[str],
    kept: ImageItem,
    names_kept: Sequence[str],
    thumbs: Callable[[], tuple[NDArray[np.uint8], NDArray[np.uint8]] | None],
    key: Callable[[str], str] = _same,
) -> Placement:
    """How to compare ``dropped``'s boxes with ``kept``'s, and where to carry them: the
    identity, unless boxes of the dropped image are left unmatched and the two images align
    otherwise (:func:`align` of ``thumbs()``: their grayscale thumbnails, None when
    unknown), refined on the boxes, matching at least as many boxes as the identity does.
    A box only the dropped image has must land where its object is in the survivor (QA
    round 9: a box labelled only in a crop was carried up to 43 px off)."""
    sides = _sides(dropped, names_dropped, kept, names_kept, key)
    only_d, only_k = _unmatched_sides(sides)
    if not only_d:
        return IDENTITY
    grays = thumbs()
    found = align(*grays) if grays is not None else None
    if found is None or _near_identity(found):
        return IDENTITY
    found = _fit(found, *sides)
    d2, k2 = _unmatched_sides(sides, found)
    return found if len(d2) + len(k2) <= len(only_d) + len(only_k) else IDENTITY


def label_conflict(
    dropped: ImageItem,
    names_dropped: Sequence[str],
    kept: ImageItem,
    names_kept: Sequence[str],
    *,
    kept_label: str | None = None,
    key: Callable[[str], str] = _same,
    placed: Placement = IDENTITY,
) -> LabelConflict | None:
    """The conflict between a dropped duplicate and its survivor, or None when labels agree.

    ``names_*``: the class name of each annotation (compared as ``key(name)``). Images
    tagged ``unlabeled`` carry no label information and never conflict. ``placed``: where
    the dropped image lies in the survivor (:func:`placement`).
    """
    if dropped.attributes.get("unlabeled") or kept.attributes.get("unlabeled"):
        return None
    only_d, only_k = _unmatched(dropped, names_dropped, kept, names_kept, key, placed)
    if not only_d and not only_k:
        return None
    in_dropped = []
    for i in only_d:
        entry = _describe(dropped.annotations[i], names_dropped[i])
        _, box = _placed(dropped.annotations[i].bbox, dropped, kept, placed)
        entry["bbox_in_kept"] = [round(float(v), 2) for v in box]
        in_dropped.append(entry)
    return LabelConflict(
        dropped.file_name,
        kept_label or kept.file_name,
        in_dropped,
        [_describe(kept.annotations[j], names_kept[j]) for j in only_k],
        (dropped.width, dropped.height),
        (kept.width, kept.height),
        placed,
    )


def merge_into(
    kept: ImageItem,
    names_kept: Sequence[str],
    dropped: ImageItem,
    names_dropped: Sequence[str],
    key: Callable[[str], str] = _same,
    placed: Placement = IDENTITY,
) -> list[str]:
    """Add ``dropped``'s unmatched annotations to ``kept`` (placed by ``placed``, see
    :func:`placement`); return notes on boxes not carried.

    Both images must come from one dataset (one category id space).
    """
    if dropped.attributes.get("unlabeled"):
        return []
    only_d, _ = _unmatched(dropped, names_dropped, kept, names_kept, key, placed)
    notes: list[str] = []
    # Boxes already on the survivor (its own, and those carried from earlier duplicates);
    # boxes of this one image may overlap each other: they are distinct objects.
    before = list(zip(kept.annotations, names_kept, strict=True))
    for i in only_d:
        src = dropped.annotations[i]
        visible, box = _placed(src.bbox, dropped, kept, placed)
        if visible < MIN_CARRY_VISIBLE or box[2] - box[0] < 1 or box[3] - box[1] < 1:
            notes.append(
                f"'{names_dropped[i]}' box from '{dropped.file_name}' {LEFT_OUTSIDE} "
                f"({visible:.0%} of it inside)"
            )
            continue
        other = [(a.bbox, n) for a, n in before if key(n) != key(names_dropped[i])]
        if other:
            ious = B.iou([box], [b for b, _ in other])[0]
            j = int(np.argmax(ious))
            if ious[j] >= CLASS_CONFLICT_IOU:
                notes.append(
                    f"'{names_dropped[i]}' box from '{dropped.file_name}' {LEFT_CLASS} as "
                    f"'{other[j][1]}' (IoU {float(ious[j]):.2f}): a class disagreement, left "
                    "for you to resolve"
                )
                continue
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
                size_d, size_k = (dropped.width, dropped.height), (kept.width, kept.height)
                mask = Mask(
                    "polygons",
                    [placed.points(p, size_d, size_k).reshape(np.shape(p)) for p in src.mask.data],
                )
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
