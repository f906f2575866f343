"""Small-object statistics of a dataset, computed from annotations only.

:func:`compute_stats` turns a :class:`~curate.core.dataset.Dataset` into a
:class:`DatasetStats`: counts, size buckets, the relative small-object definitions from
the literature, aspect ratios, box-centre heatmaps, objects per image and label quality,
overall and per class. Everything is vectorised over :meth:`Dataset.box_table` columns;
images are never decoded (sizes come from the annotations).

Definitions (all boxes are absolute-pixel XYXY):

- **side** of a box is ``sqrt(width * height)``; size buckets compare the box *area* with
  the squared edges, so ``side < 32`` is exactly COCO's ``area < 32**2``. Buckets:
  ``<8``, ``8-16``, ``16-32`` (together: COCO *small*), ``32-96`` (*medium*), ``>=96``
  (*large*). COCO measures the mask area; we use the box area (no masks needed).
- **native** sizes are in pixels of the image as stored; **input** sizes are at the
  training input: letterboxed to ``imgsz`` with ``scale = imgsz / max(w, h)``.
- **relative** definitions (scale-free): the class's median box-to-image area ratio and
  whether it lies in 0.08%-0.58% (Chen et al., 2016); the share of boxes narrower than 0.1
  of the image width *and* lower than 0.1 of its height; the share whose
  ``sqrt(box area / image area)`` is below 0.03.
- Counts (images, boxes, negatives, balance, objects per image) use every annotation;
  size statistics use the *valid* ones (finite, width and height > 0); ratios and
  input-size figures also need the image size (images without one are counted).
- A **double label** is a pair of same-class boxes in one image with IoU > 0.9.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from curate.core import boxes as B
from curate.core.dataset import BoxTable, Category, Dataset
from curate.core.errors import UsageError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

SIZE_EDGES = (8, 16, 32, 96)
"""Bucket edges on the box side (``sqrt(area)``) in pixels."""
SIZE_BUCKETS = ("<8", "8-16", "16-32", "32-96", ">=96")
COCO_BUCKETS = ("small", "medium", "large")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_KEYS = ("p5", "p25", "p50", "p75", "p95")
RELATIVE_AREA_RANGE = (0.0008, 0.0058)
"""Chen et al. (2016): a small-object class has a median relative area in 0.08%-0.58%."""
RELATIVE_WH_LIMIT = 0.1
RELATIVE_SQRT_LIMIT = 0.03
OBJECTS_PER_IMAGE_BINS = (0, 1, 2, 3, 4, 5, 6, 11, 21, 51, 101)
"""Left edges of the objects-per-image histogram (last bin open)."""

_AREA_EDGES = np.array([e * e for e in SIZE_EDGES], dtype=np.float64)
_UNSIZED = len(SIZE_BUCKETS)  # bucket index for boxes of images without a size


@dataclass(frozen=True)
class StatsOptions:
    """What to compute: training input size, heatmap bins, quality thresholds."""

    imgsz: int = 640
    heatmap_bins: int = 32
    double_iou: float = 0.9
    min_side: float = 2.0
    examples: int = 20

    def __post_init__(self) -> None:
        if self.imgsz <= 0:
            raise UsageError(f"imgsz must be a positive number of pixels, got {self.imgsz}")
        if self.heatmap_bins <= 0:
            raise UsageError(f"heatmap_bins must be positive, got {self.heatmap_bins}")
        if not 0.0 < self.double_iou < 1.0:
            raise UsageError(f"double_iou must be in (0, 1), got {self.double_iou}")


@dataclass
class ClassStats:
    """Statistics of one class (or of all boxes, for ``DatasetStats.overall``).

    ``images`` counts images holding at least one box of the class (all images for the
    overall entry) and ``negatives`` the labelled images holding none. Bucket dicts map
    :data:`SIZE_BUCKETS` / :data:`COCO_BUCKETS` to box counts; quantile dicts map
    ``p5 .. p95`` to pixels (``None`` when there is no box).
    """

    name: str
    category_id: int | None
    boxes: int
    images: int
    boxes_per_image: float
    negatives: int
    share: float
    valid_boxes: int
    image_width: float | None
    image_height: float | None
    buckets_native: dict[str, int]
    buckets_input: dict[str, int]
    coco_native: dict[str, int]
    coco_input: dict[str, int]
    side_native: dict[str, float | None]
    side_input: dict[str, float | None]
    aspect: dict[str, float | None]
    median_area_ratio: float | None
    median_area_ratio_in_range: bool | None
    share_wh_below: float | None
    share_sqrt_ratio_below: float | None
    unsized_boxes: int

    @property
    def small_input(self) -> int:
        """Boxes under 32 px side at the training input size."""
        return self.coco_input["small"]


@dataclass
class QualityReport:
    """Label problems among the boxes that survived reading.

    ``examples`` maps an issue name to at most ``StatsOptions.examples`` records
    (image file name, box, class); ``by_class`` maps an issue to counts per class name.
    """

    degenerate: int = 0
    out_of_bounds: int = 0
    under_min_side: int = 0
    double_labels: int = 0
    double_label_boxes: int = 0
    unknown_class_boxes: int = 0
    unknown_class_images: int = 0
    unknown_class_ids: list[int] = field(default_factory=list)
    unsized_images: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    by_class: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class SizeColumns:
    """Per-box columns of the valid boxes, for plots (input sizes NaN when unsized)."""

    class_index: IntArray
    width: FloatArray
    height: FloatArray
    input_width: FloatArray
    input_height: FloatArray


@dataclass
class DatasetStats:
    """Everything :func:`compute_stats` found; :meth:`to_dict` gives the JSON form.

    ``heatmaps`` maps ``"all"`` and each class name to a ``(bins, bins)`` int64 array of
    box-centre counts in normalised image coordinates: row ``i`` covers
    ``y / height`` in ``[i / bins, (i + 1) / bins)``, column ``j`` the same for ``x``.
    """

    options: StatsOptions
    num_images: int
    num_boxes: int
    num_valid_boxes: int
    num_negatives: int
    num_unlabeled: int
    num_crowd: int
    overall: ClassStats
    classes: list[ClassStats]
    image_sizes: dict[str, Any]
    objects_per_image: dict[str, Any]
    heatmaps: dict[str, NDArray[np.int64]]
    quality: QualityReport
    reader: dict[str, Any]
    columns: SizeColumns

    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def heatmap(self, name: str = "all", *, normalize: bool = False) -> FloatArray:
        """The centre heatmap of ``name`` (``"all"`` or a class), optionally summing to 1."""
        try:
            hm = self.heatmaps[name].astype(np.float64)
        except KeyError as exc:
            raise UsageError(
                f"no heatmap for class '{name}'; known: {', '.join(self.heatmaps)}"
            ) from exc
        if normalize and hm.sum() > 0:
            hm /= hm.sum()
        return hm

    def to_dict(self, *, heatmaps: bool = True) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes ``None``; heatmaps as nested lists)."""
        out: dict[str, Any] = {
            "options": {
                "imgsz": self.options.imgsz,
                "heatmap_bins": self.options.heatmap_bins,
                "double_iou": self.options.double_iou,
                "min_side": self.options.min_side,
            },
            "definitions": {
                "side": "sqrt(box width * box height) in pixels",
                "size_buckets": list(SIZE_BUCKETS),
                "coco": "small: area < 32^2, medium: < 96^2, large: the rest (box area)",
                "input": "letterboxed to imgsz: scale = imgsz / max(image width, height)",
                "relative_area_range": list(RELATIVE_AREA_RANGE),
                "relative_wh_limit": RELATIVE_WH_LIMIT,
                "relative_sqrt_limit": RELATIVE_SQRT_LIMIT,
                "heatmap": "rows = y / height, columns = x / width, box centres",
            },
            "images": self.num_images,
            "boxes": self.num_boxes,
            "valid_boxes": self.num_valid_boxes,
            "negatives": self.num_negatives,
            "unlabeled": self.num_unlabeled,
            "crowd": self.num_crowd,
            "overall": _class_dict(self.overall),
            "classes": [_class_dict(c) for c in self.classes],
            "image_sizes": self.image_sizes,
            "objects_per_image": self.objects_per_image,
            "quality": {k: v for k, v in self.quality.__dict__.items() if not k.startswith("_")},
            "reader": self.reader,
        }
        if heatmaps:
            out["heatmaps"] = {k: v.tolist() for k, v in self.heatmaps.items()}
        return _clean(out)


def _class_dict(c: ClassStats) -> dict[str, Any]:
    d = dict(c.__dict__)
    d["small_input"] = c.small_input
    return d


def _clean(obj: Any) -> Any:
    """Plain Python types for JSON: NumPy scalars converted, NaN and inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


# -- entry points ---------------------------------------------------------------------


def compute_stats(
    dataset: Dataset,
    options: StatsOptions | None = None,
    *,
    skipped: Sequence[Mapping[str, Any]] = (),
) -> DatasetStats:
    """Statistics of ``dataset``; ``skipped`` are the reader's skipped items (policy log).

    The reader's changes (clipped boxes, ...) are taken from ``dataset.info["changed"]``
    and ``dataset.info["dropped"]`` when present.
    """
    opts = options or StatsOptions()
    images = dataset.images
    n_img = len(images)
    img_w = np.fromiter((im.width or 0 for im in images), dtype=np.float64, count=n_img)
    img_h = np.fromiter((im.height or 0 for im in images), dtype=np.float64, count=n_img)
    unlabeled = np.fromiter(
        (bool(im.attributes.get("unlabeled", False)) for im in images), dtype=bool, count=n_img
    )
    reader = reader_summary(
        skipped,
        dataset.info.get("changed", []) or [],
        dataset.info.get("dropped", []) or [],
        limit=opts.examples,
    )
    return stats_from_table(
        dataset.box_table(),
        img_w,
        img_h,
        dataset.categories,
        opts,
        unlabeled=unlabeled,
        file_names=[im.file_name for im in images],
        reader=reader,
    )


def reader_summary(
    skipped: Iterable[Mapping[str, Any]],
    changed: Iterable[Mapping[str, Any]],
    dropped: Iterable[Mapping[str, Any]] = (),
    *,
    limit: int = 20,
) -> dict[str, Any]:
    """Counts and first examples of what the reader skipped, changed or dropped."""
    sk, ch, dr = list(skipped), list(changed), list(dropped)
    return {
        "skipped": len(sk),
        "skipped_by_kind": dict(Counter(str(s.get("kind", "error")) for s in sk)),
        "changed": len(ch),
        "changed_by_kind": dict(Counter(str(c.get("change", "changed")) for c in ch)),
        "dropped": len(dr),
        "dropped_by_reason": dict(Counter(str(d.get("reason", "dropped")) for d in dr)),
        "examples": {
            "skipped": [dict(s) for s in sk[:limit]],
            "changed": [dict(c) for c in ch[:limit]],
            "dropped": [dict(d) for d in dr[:limit]],
        },
    }


def stats_from_table(
    table: BoxTable,
    image_width: FloatArray,
    image_height: FloatArray,
    categories: Sequence[Category],
    options: StatsOptions | None = None,
    *,
    unlabeled: NDArray[np.bool_] | None = None,
    file_names: Sequence[str] | None = None,
    reader: dict[str, Any] | None = None,
) -> DatasetStats:
    """The vectorised core of :func:`compute_stats`.

    ``table`` holds one row per annotation; ``image_width``/``image_height`` are ``(I,)``
    per image (0 when unknown); ``categories`` name the known class ids.
    """
    opts = options or StatsOptions()
    n_img = len(image_width)
    img_w = np.asarray(image_width, dtype=np.float64)
    img_h = np.asarray(image_height, dtype=np.float64)
    unl = np.zeros(n_img, dtype=bool) if unlabeled is None else np.asarray(unlabeled, bool)
    names_of_images = file_names if file_names is not None else [str(i) for i in range(n_img)]

    image_index = np.asarray(table.image_index, dtype=np.int64)
    if len(image_index) > 1 and np.any(image_index[1:] < image_index[:-1]):
        order = np.argsort(image_index, kind="stable")
        table = BoxTable(*(np.asarray(getattr(table, f))[order] for f in _TABLE_FIELDS))
        image_index = table.image_index
    n = len(image_index)
    boxes = np.asarray(table.boxes, dtype=np.float64).reshape(-1, 4)

    # class index: known categories first (in dataset order), then unknown ids found
    cls, class_names, class_ids, n_known = _class_index(table.category_id, categories)
    n_cls = len(class_names)

    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    with np.errstate(invalid="ignore"):
        bw = x2 - x1
        bh = y2 - y1
        valid = np.isfinite(boxes).all(axis=1) & (bw > 0) & (bh > 0)
    box_img_w = img_w[image_index]
    box_img_h = img_h[image_index]
    sized = (box_img_w > 0) & (box_img_h > 0)

    # -- per-box size columns of valid boxes ---------------------------------------
    all_valid = bool(valid.all())
    v_cls = cls if all_valid else cls[valid]
    v_w = bw if all_valid else bw[valid]
    v_h = bh if all_valid else bh[valid]
    v_iw = box_img_w if all_valid else box_img_w[valid]
    v_ih = box_img_h if all_valid else box_img_h[valid]
    v_sized = sized if all_valid else sized[valid]
    all_sized = bool(v_sized.all())
    area = v_w * v_h
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = opts.imgsz / np.maximum(v_iw, v_ih)
        img_area = v_iw * v_ih
        ratio = area / img_area
        wh_below = (v_w < RELATIVE_WH_LIMIT * v_iw) & (v_h < RELATIVE_WH_LIMIT * v_ih)
    if not all_sized:
        scale[~v_sized] = np.nan
        ratio[~v_sized] = np.nan
    in_w = v_w * scale
    in_h = v_h * scale
    in_area = area * (scale * scale)
    sqrt_below = ratio < RELATIVE_SQRT_LIMIT**2  # sqrt(r) < c  <=>  r < c^2 (r >= 0)

    n_b = len(SIZE_BUCKETS) + 1  # + unsized
    bucket_nat = _bucket(area)
    bucket_in = _bucket(in_area)
    if not all_sized:
        bucket_in[~v_sized] = _UNSIZED
    nat_counts = np.bincount(v_cls * n_b + bucket_nat, minlength=n_cls * n_b).reshape(n_cls, n_b)
    in_counts = np.bincount(v_cls * n_b + bucket_in, minlength=n_cls * n_b).reshape(n_cls, n_b)
    valid_counts = np.bincount(v_cls, minlength=n_cls)
    sized_counts = np.bincount(v_cls, weights=v_sized, minlength=n_cls)
    wh_counts = np.bincount(v_cls, weights=wh_below & v_sized, minlength=n_cls)
    sqrt_counts = np.bincount(v_cls, weights=sqrt_below, minlength=n_cls)

    # -- grouped quantiles (one stable sort by class) --------------------------------
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = v_w / v_h
    side = np.sqrt(area)
    in_side = np.sqrt(in_area)
    c_order = np.argsort(v_cls.astype(_small_int(n_cls)), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(valid_counts)])
    sized_sorted = None if all_sized else v_sized[c_order]
    q_side = _grouped_quantiles(side, c_order, bounds, None)
    q_in = _grouped_quantiles(in_side, c_order, bounds, sized_sorted)
    q_aspect = _grouped_quantiles(aspect, c_order, bounds, None)
    med_ratio = _grouped_quantiles(ratio, c_order, bounds, sized_sorted, qs=(0.5,))

    # -- images per class, image sizes per class ---------------------------------------
    all_counts = np.bincount(cls, minlength=n_cls)
    a_order = np.argsort(cls.astype(_small_int(n_cls)), kind="stable")
    cls_sorted = cls[a_order]
    img_sorted = image_index[a_order]
    first = np.ones(n, dtype=bool)
    if n > 1:
        first[1:] = (img_sorted[1:] != img_sorted[:-1]) | (cls_sorted[1:] != cls_sorted[:-1])
    pair_cls = cls_sorted[first]
    pair_img = img_sorted[first]
    images_per_class = np.bincount(pair_cls, minlength=n_cls)
    pair_bounds = np.concatenate([[0], np.cumsum(images_per_class)])

    boxes_per_image = np.bincount(image_index, minlength=n_img)
    negative = (boxes_per_image == 0) & ~unl
    n_neg = int(negative.sum())
    labelled = int((~unl).sum())

    classes: list[ClassStats] = []
    for c in range(n_cls):
        pw = img_w[pair_img[pair_bounds[c] : pair_bounds[c + 1]]]
        ph = img_h[pair_img[pair_bounds[c] : pair_bounds[c + 1]]]
        classes.append(
            _make_class(
                class_names[c],
                class_ids[c],
                boxes=int(all_counts[c]),
                images=int(images_per_class[c]),
                negatives=labelled - int(images_per_class[c]),
                share=float(all_counts[c]) / n if n else 0.0,
                valid=int(valid_counts[c]),
                sized=int(sized_counts[c]),
                img_sizes=(pw[pw > 0], ph[ph > 0]),
                nat=nat_counts[c],
                inp=in_counts[c],
                q_side=q_side[c],
                q_in=q_in[c],
                q_aspect=q_aspect[c],
                med_ratio=med_ratio[c][0],
                wh=float(wh_counts[c]),
                sq=float(sqrt_counts[c]),
            )
        )
    overall = _make_class(
        "all",
        None,
        boxes=n,
        images=n_img,
        negatives=n_neg,
        share=1.0 if n else 0.0,
        valid=len(v_w),
        sized=int(v_sized.sum()),
        img_sizes=(img_w[img_w > 0], img_h[img_h > 0]),
        nat=nat_counts.sum(axis=0),
        inp=in_counts.sum(axis=0),
        q_side=_quantiles(side),
        q_in=_quantiles(in_side if all_sized else in_side[v_sized]),
        q_aspect=_quantiles(aspect),
        med_ratio=_quantiles(ratio if all_sized else ratio[v_sized], (0.5,))[0],
        wh=float(wh_counts.sum()),
        sq=float(sqrt_counts.sum()),
    )

    # -- heatmaps -------------------------------------------------------------------
    bins = opts.heatmap_bins
    hm_mask = v_sized
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (x1 + x2) * 0.5 / box_img_w
        cy = (y1 + y2) * 0.5 / box_img_h
    if not all_valid:
        cx, cy = cx[valid], cy[valid]
    if not all_sized:
        cx, cy, hm_cls = cx[hm_mask], cy[hm_mask], v_cls[hm_mask]
    else:
        hm_cls = v_cls
    bx = np.clip(np.floor(cx * bins), 0, bins - 1).astype(np.int64)
    by = np.clip(np.floor(cy * bins), 0, bins - 1).astype(np.int64)
    hm = np.bincount((hm_cls * bins + by) * bins + bx, minlength=n_cls * bins * bins)
    hm = hm.reshape(n_cls, bins, bins)
    heatmaps: dict[str, NDArray[np.int64]] = {"all": hm.sum(axis=0)}
    for c in range(n_cls):
        heatmaps[class_names[c]] = hm[c]

    # -- quality --------------------------------------------------------------------
    quality = _quality(
        boxes,
        bw,
        bh,
        valid,
        sized,
        box_img_w,
        box_img_h,
        image_index,
        cls,
        n_known,
        class_names,
        class_ids,
        img_w,
        img_h,
        names_of_images,
        opts,
    )

    return DatasetStats(
        options=opts,
        num_images=n_img,
        num_boxes=n,
        num_valid_boxes=len(v_w),
        num_negatives=n_neg,
        num_unlabeled=int(unl.sum()),
        num_crowd=int(np.count_nonzero(table.iscrowd)),
        overall=overall,
        classes=classes,
        image_sizes=_image_sizes(img_w, img_h),
        objects_per_image=_objects_per_image(boxes_per_image),
        heatmaps=heatmaps,
        quality=quality,
        reader=reader if reader is not None else reader_summary((), ()),
        columns=SizeColumns(v_cls, v_w, v_h, in_w, in_h),
    )


_TABLE_FIELDS = ("image_index", "category_id", "boxes", "iscrowd", "image_width", "image_height")


# -- helpers -------------------------------------------------------------------------


def _small_int(n: int) -> type[np.integer[Any]]:
    """Narrowest integer type for class indices (16 bits lets NumPy use radix sort)."""
    return np.uint16 if n < 2**16 else np.int64


def _bucket(area: FloatArray) -> IntArray:
    """Size-bucket index (0 .. len(SIZE_EDGES)) of each area; NaN falls in bucket 0."""
    out = np.zeros(len(area), dtype=np.int64)
    with np.errstate(invalid="ignore"):
        for edge in _AREA_EDGES:
            out += area >= edge
    return out


def _class_index(
    category_id: NDArray[Any], categories: Sequence[Category]
) -> tuple[IntArray, list[str], list[int], int]:
    """Map category ids to 0..C-1: known categories in order, then unknown ids, sorted."""
    cat = np.asarray(category_id, dtype=np.int64)
    known = [c.id for c in categories]
    names: list[str] = []
    seen: set[str] = set()
    for c in categories:
        name = c.name if c.name not in seen else f"{c.name}#{c.id}"
        seen.add(name)
        names.append(name)
    present = np.unique(cat)
    unknown = [int(i) for i in present if int(i) not in set(known)]
    ids = known + unknown
    names += [f"<unknown id {i}>" for i in unknown]
    if not ids:
        return np.zeros(0, dtype=np.int64), names, ids, len(known)
    id_arr = np.asarray(ids, dtype=np.int64)
    sorter = np.argsort(id_arr, kind="stable")
    pos = np.searchsorted(id_arr[sorter], cat)
    cls = sorter[np.clip(pos, 0, len(ids) - 1)].astype(np.int64)
    return cls, names, ids, len(known)


def _quantiles(values: FloatArray, qs: Sequence[float] = QUANTILES) -> list[float | None]:
    """Quantiles with NumPy's default linear interpolation (a full sort beats partition)."""
    if len(values) == 0:
        return [None] * len(qs)
    v = np.sort(values)
    pos = np.asarray(qs, dtype=np.float64) * (len(v) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(v) - 1)
    frac = pos - lo
    out = v[lo] + (v[hi] - v[lo]) * frac
    return [float(x) for x in out]


def _grouped_quantiles(
    values: FloatArray,
    order: IntArray,
    bounds: IntArray,
    mask_sorted: NDArray[np.bool_] | None,
    qs: Sequence[float] = QUANTILES,
) -> list[list[float | None]]:
    """Quantiles of ``values`` per class, classes given by ``order`` and ``bounds``."""
    v = values[order]
    out = []
    for c in range(len(bounds) - 1):
        part = v[bounds[c] : bounds[c + 1]]
        if mask_sorted is not None:
            part = part[mask_sorted[bounds[c] : bounds[c + 1]]]
        out.append(_quantiles(part, qs))
    return out


def _qdict(values: list[float | None]) -> dict[str, float | None]:
    return dict(zip(QUANTILE_KEYS, values, strict=True))


def _make_class(
    name: str,
    category_id: int | None,
    *,
    boxes: int,
    images: int,
    negatives: int,
    share: float,
    valid: int,
    sized: int,
    img_sizes: tuple[FloatArray, FloatArray],
    nat: IntArray,
    inp: IntArray,
    q_side: list[float | None],
    q_in: list[float | None],
    q_aspect: list[float | None],
    med_ratio: float | None,
    wh: float,
    sq: float,
) -> ClassStats:
    nat_d = {k: int(nat[i]) for i, k in enumerate(SIZE_BUCKETS)}
    inp_d = {k: int(inp[i]) for i, k in enumerate(SIZE_BUCKETS)}
    lo, hi = RELATIVE_AREA_RANGE
    pw, ph = img_sizes
    return ClassStats(
        name=name,
        category_id=category_id,
        boxes=boxes,
        images=images,
        boxes_per_image=boxes / images if images else 0.0,
        negatives=negatives,
        share=share,
        valid_boxes=valid,
        image_width=float(np.median(pw)) if len(pw) else None,
        image_height=float(np.median(ph)) if len(ph) else None,
        buckets_native=nat_d,
        buckets_input=inp_d,
        coco_native=_coco(nat_d),
        coco_input=_coco(inp_d),
        side_native=_qdict(q_side),
        side_input=_qdict(q_in),
        aspect=_qdict(q_aspect),
        median_area_ratio=med_ratio,
        median_area_ratio_in_range=None if med_ratio is None else bool(lo <= med_ratio <= hi),
        share_wh_below=wh / sized if sized else None,
        share_sqrt_ratio_below=sq / sized if sized else None,
        unsized_boxes=int(inp[_UNSIZED]),
    )


def _coco(buckets: Mapping[str, int]) -> dict[str, int]:
    return {
        "small": buckets["<8"] + buckets["8-16"] + buckets["16-32"],
        "medium": buckets["32-96"],
        "large": buckets[">=96"],
    }


def _image_sizes(img_w: FloatArray, img_h: FloatArray, top: int = 10) -> dict[str, Any]:
    sized = (img_w > 0) & (img_h > 0)
    w, h = img_w[sized].astype(np.int64), img_h[sized].astype(np.int64)
    out: dict[str, Any] = {"sized": int(sized.sum()), "unsized": int((~sized).sum())}
    if not len(w):
        return out | {"distinct": 0, "most_common": []}
    pairs, counts = np.unique(np.stack([w, h], axis=1), axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    out.update(
        {
            "distinct": len(pairs),
            "most_common": [
                {"width": int(pairs[i, 0]), "height": int(pairs[i, 1]), "images": int(counts[i])}
                for i in order
            ],
            "width": {"min": int(w.min()), "median": float(np.median(w)), "max": int(w.max())},
            "height": {"min": int(h.min()), "median": float(np.median(h)), "max": int(h.max())},
        }
    )
    return out


def _objects_per_image(counts: IntArray) -> dict[str, Any]:
    edges = OBJECTS_PER_IMAGE_BINS
    if not len(counts):
        return {"mean": 0.0, "median": 0.0, "p95": 0.0, "max": 0, "histogram": {}}
    which = np.searchsorted(np.asarray(edges), counts, side="right") - 1
    hist = np.bincount(which, minlength=len(edges))
    labels = [str(a) if b - a == 1 else f"{a}-{b - 1}" for a, b in itertools.pairwise(edges)] + [
        f">={edges[-1]}"
    ]
    return {
        "mean": float(counts.mean()),
        "median": float(np.median(counts)),
        "p95": float(np.quantile(counts, 0.95)),
        "max": int(counts.max()),
        "histogram": {lab: int(v) for lab, v in zip(labels, hist, strict=True)},
    }


def _quality(
    boxes: FloatArray,
    bw: FloatArray,
    bh: FloatArray,
    valid: NDArray[np.bool_],
    sized: NDArray[np.bool_],
    box_img_w: FloatArray,
    box_img_h: FloatArray,
    image_index: IntArray,
    cls: IntArray,
    n_known: int,
    class_names: list[str],
    class_ids: list[int],
    img_w: FloatArray,
    img_h: FloatArray,
    file_names: Sequence[str],
    opts: StatsOptions,
) -> QualityReport:
    n_cls = len(class_names)
    degenerate = ~valid
    with np.errstate(invalid="ignore"):
        oob = (
            valid
            & sized
            & (
                (boxes[:, 0] < 0)
                | (boxes[:, 1] < 0)
                | (boxes[:, 2] > box_img_w)
                | (boxes[:, 3] > box_img_h)
            )
        )
        tiny = valid & ((bw < opts.min_side) | (bh < opts.min_side))
    unknown = cls >= n_known
    vi = np.flatnonzero(valid)
    pa, pb, piou = double_label_pairs(
        boxes[vi], image_index[vi] * max(n_cls, 1) + cls[vi], opts.double_iou
    )
    pa, pb = vi[pa], vi[pb]
    dup_boxes = np.zeros(len(cls), dtype=bool)
    dup_boxes[pa] = True
    dup_boxes[pb] = True

    def by_class(mask: NDArray[np.bool_]) -> dict[str, int]:
        counts = np.bincount(cls[mask], minlength=n_cls)
        return {class_names[c]: int(counts[c]) for c in np.flatnonzero(counts)}

    def examples(mask: NDArray[np.bool_]) -> list[dict[str, Any]]:
        return [
            _box_record(i, boxes, image_index, cls, class_names, file_names)
            for i in np.flatnonzero(mask)[: opts.examples]
        ]

    dup_examples = []
    for a, b, v in zip(
        pa[: opts.examples], pb[: opts.examples], piou[: opts.examples], strict=True
    ):
        rec = _box_record(int(a), boxes, image_index, cls, class_names, file_names)
        rec["other_box"] = [float(x) for x in boxes[b]]
        rec["iou"] = float(v)
        dup_examples.append(rec)

    unknown_imgs = np.unique(image_index[unknown])
    return QualityReport(
        degenerate=int(degenerate.sum()),
        out_of_bounds=int(oob.sum()),
        under_min_side=int(tiny.sum()),
        double_labels=len(pa),
        double_label_boxes=int(dup_boxes.sum()),
        unknown_class_boxes=int(unknown.sum()),
        unknown_class_images=len(unknown_imgs),
        unknown_class_ids=[class_ids[c] for c in range(n_known, n_cls)],
        unsized_images=int(((img_w <= 0) | (img_h <= 0)).sum()),
        examples={
            "degenerate": examples(degenerate),
            "out_of_bounds": examples(oob),
            "under_min_side": examples(tiny),
            "double_labels": dup_examples,
            "unknown_class": examples(unknown),
        },
        by_class={
            "degenerate": by_class(degenerate),
            "out_of_bounds": by_class(oob),
            "under_min_side": by_class(tiny),
            "double_label_boxes": by_class(dup_boxes),
        },
    )


def _box_record(
    i: int,
    boxes: FloatArray,
    image_index: IntArray,
    cls: IntArray,
    class_names: list[str],
    file_names: Sequence[str],
) -> dict[str, Any]:
    return {
        "image": file_names[int(image_index[i])],
        "box": [float(x) for x in boxes[i]],
        "class": class_names[int(cls[i])],
    }


def double_label_pairs(
    boxes: FloatArray, group: IntArray, iou_threshold: float = 0.9
) -> tuple[IntArray, IntArray, FloatArray]:
    """Index pairs ``(a, b)``, ``a != b``, of boxes in the same ``group`` with IoU > threshold.

    ``boxes`` is ``(N, 4)`` XYXY with positive sizes; ``group`` ``(N,)`` ints (image and
    class combined). Sort-and-sweep, vectorised: boxes are sorted by ``(group, x1)``; a
    pair with IoU > t has ``x1_b - x1_a < (1 - t) * w_a`` for the left box ``a`` (the
    intersection is at most ``(w_a - d) * h_a`` and must exceed ``t * w_a * h_a``), so
    each box is compared only with the following boxes of its group inside that reach.
    Returns the pairs (sorted by ``a``) and their IoU.
    """
    b = B.as_boxes(boxes)
    g = np.asarray(group, dtype=np.int64)
    n = len(b)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if n < 2:
        return empty
    x1 = b[:, 0]
    xmin = float(x1.min())
    span = math.ceil(float(x1.max()) - xmin) + 1.0
    gmin = int(g.min())
    gspan = int(g.max()) - gmin
    # One float sort key (fast) while its precision is far below a pixel; else lexsort.
    if gspan * span < 2.0**40:
        order = np.argsort((g - gmin) * span + (x1 - xmin))
        slack = 1e-2
    else:
        order = np.lexsort((x1, g))
        slack = 0.0
    gs = g[order]
    bs = b[order]
    xs = bs[:, 0]
    reach = (1.0 - iou_threshold) * (bs[:, 2] - bs[:, 0]) + slack
    # k = 1 by slicing (cheap); then only boxes still inside their reach go on
    active = np.flatnonzero((gs[1:] == gs[:-1]) & (xs[1:] - xs[:-1] < reach[:-1]))
    found_a: list[IntArray] = []
    found_b: list[IntArray] = []
    found_iou: list[FloatArray] = []
    k = 1
    while active.size:
        j = active + k
        iou = B.paired_iou(bs[active], bs[j])
        hit = iou > iou_threshold
        if hit.any():
            found_a.append(order[active[hit]])
            found_b.append(order[j[hit]])
            found_iou.append(iou[hit])
        k += 1
        active = active[active + k < n]
        j = active + k
        active = active[(gs[j] == gs[active]) & (xs[j] - xs[active] < reach[active])]
    if not found_a:
        return empty
    pa = np.concatenate(found_a)
    pb = np.concatenate(found_b)
    pi = np.concatenate(found_iou)
    lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
    o = np.lexsort((hi, lo))
    return lo[o], hi[o], pi[o]
