"""Map predictions made on tiles back to their parent images and merge the overlaps.

A tile dataset written by :mod:`curate.tiling` records, per tile, its parent image id
and offset (image attributes ``parent_id``, ``tile_x``, ``tile_y``, ...). Predictions
(COCO results: ``{image_id, category_id, bbox: [x, y, w, h], score}``) made on the
tiles are shifted by the offset, optionally joined by a full-image pass on the parents,
and merged per parent image (per class unless ``class_agnostic``) by one of SAHI's
post-processes:

- ``nms``: keep the best box, drop every box matching it, repeat;
- ``greedy_nmm``: keep the best box, merge it with its direct matches into their union
  box, remove them, repeat;
- ``nmm``: like greedy NMM, but a box merged into a cluster also pulls in its own
  unassigned matches (clusters grow through chains); each cluster becomes its union box.

A match is IoU or IoS (intersection over the smaller box) ``>= threshold``. Boxes are
visited by score, ties by larger area first (so a whole box absorbs its clipped
pieces), then input order. A merged box has the best score and that box's class. Each
step compares one box with all others in NumPy; there is no loop over box pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from curate.core import boxes as B
from curate.core.dataset import Dataset
from curate.core.errors import ErrorPolicy, MalformedFileError, UsageError
from curate.core.progress import NullProgress, Progress

MergeMethod = Literal["nms", "greedy_nmm", "nmm"]
MatchMetric = Literal["iou", "ios"]
METHODS: tuple[str, ...] = ("nms", "greedy_nmm", "nmm")
METRICS: tuple[str, ...] = ("iou", "ios")


@dataclass(frozen=True)
class MergeConfig:
    """How overlapping predictions are merged (defaults as SAHI's: greedy NMM on IoS 0.5)."""

    method: MergeMethod = "greedy_nmm"
    metric: MatchMetric = "ios"
    threshold: float = 0.5
    class_agnostic: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(
                f"merge method '{self.method}' is unknown; choose one of {', '.join(METHODS)}"
            )
        if self.metric not in METRICS:
            raise UsageError(
                f"match metric '{self.metric}' is unknown; choose one of {', '.join(METRICS)}"
            )
        if not 0.0 < self.threshold <= 1.0:
            raise UsageError(f"match threshold {self.threshold} must be in (0, 1]")


# -- merging ----------------------------------------------------------------------------
def merge_order(boxes: ArrayLike, scores: ArrayLike) -> NDArray[np.int64]:
    """Visiting order: score descending, then area descending, then input order."""
    b = B.as_boxes(boxes)
    s = np.asarray(scores, dtype=np.float64)
    return np.lexsort((np.arange(len(s)), -B.area(b), -s)).astype(np.int64)


def _match(
    box: NDArray[np.float64],
    area: float,
    others: NDArray[np.float64],
    areas: NDArray[np.float64],
    metric: str,
) -> NDArray[np.float64]:
    """``(M,)`` IoU or IoS of one XYXY box with ``others`` ``(M, 4)``."""
    w = np.clip(np.minimum(others[:, 2], box[2]) - np.maximum(others[:, 0], box[0]), 0.0, None)
    h = np.clip(np.minimum(others[:, 3], box[3]) - np.maximum(others[:, 1], box[1]), 0.0, None)
    inter = w * h
    denom = areas + area - inter if metric == "iou" else np.minimum(areas, area)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, inter / denom, 0.0)


def _greedy(
    boxes: ArrayLike, scores: ArrayLike, metric: str, threshold: float
) -> NDArray[np.int64]:
    """Cluster label (index of the kept box) of each box, greedy: keeps take direct matches only."""
    b = B.as_boxes(boxes)
    order = merge_order(b, scores)
    sb = b[order]
    area = B.area(sb)
    keep_of = np.empty(len(sb), dtype=np.int64)
    remaining = np.arange(len(sb))
    while remaining.size:
        i, rest = remaining[0], remaining[1:]
        matched = _match(sb[i], area[i], sb[rest], area[rest], metric) >= threshold
        keep_of[i] = i
        keep_of[rest[matched]] = i
        remaining = rest[~matched]
    out = np.empty(len(sb), dtype=np.int64)
    out[order] = order[keep_of]
    return out


def nms(
    boxes: ArrayLike, scores: ArrayLike, *, metric: MatchMetric = "iou", threshold: float = 0.5
) -> NDArray[np.int64]:
    """Indices of the boxes NMS keeps, best first. ``boxes``: ``(N, 4)`` XYXY; ``scores``: ``(N,)``."""
    keep_of = _greedy(boxes, scores, metric, threshold)
    keeps = np.flatnonzero(keep_of == np.arange(len(keep_of)))
    return keeps[merge_order(B.as_boxes(boxes)[keeps], np.asarray(scores, dtype=np.float64)[keeps])]


def greedy_nmm(
    boxes: ArrayLike, scores: ArrayLike, *, metric: MatchMetric = "ios", threshold: float = 0.5
) -> NDArray[np.int64]:
    """``(N,)`` index of the kept box each box merges into (itself for kept boxes), greedy NMM."""
    return _greedy(boxes, scores, metric, threshold)


def nmm(
    boxes: ArrayLike, scores: ArrayLike, *, metric: MatchMetric = "ios", threshold: float = 0.5
) -> NDArray[np.int64]:
    """``(N,)`` index of the kept box each box merges into, NMM (clusters grow through chains).

    Boxes are visited in :func:`merge_order`; an unassigned box starts a cluster; every
    visited box adds its still-unassigned matches to its own cluster.
    """
    b = B.as_boxes(boxes)
    order = merge_order(b, scores)
    sb = b[order]
    area = B.area(sb)
    n = len(sb)
    keep_of = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        matched = _match(sb[i], area[i], sb, area, metric) >= threshold
        matched[i] = False
        if keep_of[i] < 0:
            keep_of[i] = i
        keep_of[matched & (keep_of < 0)] = keep_of[i]
    out = np.empty(n, dtype=np.int64)
    out[order] = order[keep_of]
    return out


@dataclass(slots=True)
class Merged:
    """Merged predictions, best first: ``boxes`` ``(K, 4)`` XYXY, ``scores``, ``category_ids``,
    and ``members``: for each input box, the row of the merged box it ended in (-1: suppressed)."""

    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    category_ids: NDArray[np.int64]
    members: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.scores)


def _union_clusters(
    boxes: NDArray[np.float64], scores: NDArray[np.float64], keep_of: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Kept indices and, per cluster, the union box and the best score (``keep_of`` from NMM)."""
    srt = np.argsort(keep_of, kind="stable")
    ks = keep_of[srt]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    sb = boxes[srt]
    merged = np.stack(
        [
            np.minimum.reduceat(sb[:, 0], starts),
            np.minimum.reduceat(sb[:, 1], starts),
            np.maximum.reduceat(sb[:, 2], starts),
            np.maximum.reduceat(sb[:, 3], starts),
        ],
        axis=1,
    )
    return ks[starts], merged, np.maximum.reduceat(scores[srt], starts)


def merge_predictions(
    boxes: ArrayLike, scores: ArrayLike, category_ids: ArrayLike, config: MergeConfig | None = None
) -> Merged:
    """Merge overlapping predictions of one image. ``boxes`` ``(N, 4)`` XYXY; never changes inputs."""
    config = config or MergeConfig()
    b = B.as_boxes(boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(category_ids, dtype=np.int64).reshape(-1)
    if not (len(b) == len(s) == len(c)):
        raise ValueError(
            f"boxes, scores and category_ids differ in length: {len(b)}, {len(s)}, {len(c)}"
        )
    classes = [None] if config.class_agnostic else np.unique(c).tolist()
    out_keep: list[NDArray[np.int64]] = []
    out_boxes: list[NDArray[np.float64]] = []
    out_scores: list[NDArray[np.float64]] = []
    keep_of_all = np.full(len(b), -1, dtype=np.int64)
    for cls in classes:
        idx = np.arange(len(b)) if cls is None else np.flatnonzero(c == cls)
        if not len(idx):
            continue
        fn = nmm if config.method == "nmm" else greedy_nmm
        local = fn(b[idx], s[idx], metric=config.metric, threshold=config.threshold)
        if config.method == "nms":
            keeps = np.flatnonzero(local == np.arange(len(idx)))
            mb, ms = b[idx][keeps], s[idx][keeps]
            keep_of_all[idx[keeps]] = idx[keeps]
        else:
            keeps, mb, ms = _union_clusters(b[idx], s[idx], local)
            keep_of_all[idx] = idx[local]
        out_keep.append(idx[keeps])
        out_boxes.append(mb)
        out_scores.append(ms)
    if not out_keep:
        return Merged(np.empty((0, 4)), np.empty(0), np.empty(0, dtype=np.int64), keep_of_all)
    keep = np.concatenate(out_keep)
    mb = np.concatenate(out_boxes)
    ms = np.concatenate(out_scores)
    order = np.lexsort((keep, -ms))
    keep, mb, ms = keep[order], mb[order], ms[order]
    row_of_keep = np.full(len(b), -1, dtype=np.int64)
    row_of_keep[keep] = np.arange(len(keep))
    members = np.where(keep_of_all >= 0, row_of_keep[np.clip(keep_of_all, 0, None)], -1)
    return Merged(mb, ms, c[keep], members)


# -- tile records -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TileRecord:
    """Where a tile lies in its parent: parent image id, offset, parent size (if known)."""

    parent_id: Any
    x: float
    y: float
    parent_width: int | None = None
    parent_height: int | None = None


def tile_index(tiles: Dataset) -> dict[Any, TileRecord]:
    """Tile records keyed by tile image id and by tile file name.

    Image ids are the dataset's (COCO ids), or 1-based positions for images without one
    (YOLO). Raises :class:`UsageError` for a tile without a parent record.
    """
    index: dict[Any, TileRecord] = {}
    for pos, img in enumerate(tiles.images, start=1):
        a = img.attributes
        missing = [k for k in ("parent_id", "tile_x", "tile_y") if k not in a]
        if missing:
            raise UsageError(
                f"image '{img.file_name}' has no parent record ({', '.join(missing)} missing): "
                "untile needs a tile dataset written by 'curate tile'"
            )
        try:
            if not isinstance(a["parent_id"], (int, str)):
                raise TypeError("parent_id must be a number or text")
            rec = TileRecord(
                parent_id=a["parent_id"],
                x=float(a["tile_x"]),
                y=float(a["tile_y"]),
                parent_width=_int_or_none(a.get("parent_width")),
                parent_height=_int_or_none(a.get("parent_height")),
            )
        except (TypeError, ValueError) as exc:
            raise UsageError(
                f"image '{img.file_name}' has a parent record sodkit did not write ({exc}): "
                "untile needs the tile dataset as 'curate tile' wrote it"
            ) from exc
        index[img.id if img.id is not None else pos] = rec
        index[img.file_name] = rec
    return index


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: inf
        return None


@dataclass(slots=True)
class _Preds:
    keys: list[Any]
    boxes: NDArray[np.float64]
    scores: NDArray[np.float64]
    categories: NDArray[np.int64]


def _parse(results: Sequence[Mapping[str, Any]], where: str, policy: ErrorPolicy) -> _Preds:
    keys: list[Any] = []
    rows: list[tuple[float, float, float, float]] = []
    scores: list[float] = []
    cats: list[int] = []
    for k, r in enumerate(results):
        try:
            x, y, w, h = (float(v) for v in r["bbox"])
            score = float(r.get("score", 1.0))
            cat = int(r["category_id"])
            key = r["image_id"]
            if not isinstance(key, (int, str)) or not all(
                math.isfinite(v) for v in (x, y, w, h, score)
            ):
                raise ValueError("image_id must be a number or text, values finite")
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            err = MalformedFileError(
                where,
                f"prediction #{k} needs image_id, category_id, bbox [x, y, w, h] and a numeric score ({exc!r})",
                field="bbox",
            )
            err.__cause__ = exc
            policy.handle(err)
            continue
        keys.append(key)
        rows.append((x, y, x + w, y + h))
        scores.append(score)
        cats.append(cat)
    return _Preds(
        keys,
        B.as_boxes(rows),
        np.asarray(scores, dtype=np.float64),
        np.asarray(cats, dtype=np.int64),
    )


@dataclass
class UntileResult:
    """Merged predictions on the parent images (COCO results) and what happened."""

    results: list[dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)


def untile_predictions(
    tile_results: Sequence[Mapping[str, Any]],
    index: Mapping[Any, TileRecord],
    *,
    full_results: Sequence[Mapping[str, Any]] | None = None,
    config: MergeConfig | None = None,
    policy: ErrorPolicy | None = None,
    progress: Progress | None = None,
    where: str = "predictions",
    where_full: str = "full-image predictions",
) -> UntileResult:
    """Shift tile predictions into their parents, add the full-image pass, merge per parent.

    ``tile_results`` use tile image ids (or tile file names) as ``image_id``;
    ``full_results`` use parent ids. A prediction on an unknown image goes through
    ``policy`` (a :class:`MalformedFileError`). Boxes are clipped to the parent when its
    size is known. Returns COCO results on the parent ids, per image best first.
    """
    config = config or MergeConfig()
    policy = policy or ErrorPolicy()
    progress = progress or NullProgress()
    tp = _parse(tile_results, where, policy)
    parent_ids: list[Any] = []
    offsets = np.zeros((len(tp.keys), 2))
    limits = np.full((len(tp.keys), 2), np.inf)
    ok = np.ones(len(tp.keys), dtype=bool)
    sizes = {r.parent_id: (r.parent_width, r.parent_height) for r in index.values()}
    for k, key in enumerate(tp.keys):
        rec = index.get(key)
        if rec is None:
            policy.handle(
                MalformedFileError(
                    where,
                    f"prediction #{k}: image_id {key!r} is not a tile of the tile dataset",
                    field="image_id",
                    hint="predict on the tiles written by 'curate tile' and pass that folder as --tiles",
                )
            )
            ok[k] = False
            parent_ids.append(None)
            continue
        parent_ids.append(rec.parent_id)
        offsets[k] = (rec.x, rec.y)
        limits[k] = (rec.parent_width or np.inf, rec.parent_height or np.inf)
    shifted = tp.boxes.copy()
    shifted[:, [0, 2]] += offsets[:, [0]]
    shifted[:, [1, 3]] += offsets[:, [1]]
    shifted[:, [0, 2]] = np.clip(shifted[:, [0, 2]], 0.0, limits[:, [0]])
    shifted[:, [1, 3]] = np.clip(shifted[:, [1, 3]], 0.0, limits[:, [1]])
    keys = [p for p, good in zip(parent_ids, ok, strict=True) if good]
    all_boxes = [shifted[ok]]
    all_scores = [tp.scores[ok]]
    all_cats = [tp.categories[ok]]
    n_full = 0
    if full_results is not None:
        fp = _parse(full_results, where_full, policy)
        fok = np.ones(len(fp.keys), dtype=bool)
        for k, key in enumerate(fp.keys):
            if key not in sizes:
                policy.handle(
                    MalformedFileError(
                        where_full,
                        f"prediction #{k}: image_id {key!r} is not a parent image of the tile dataset",
                        field="image_id",
                        hint="full-image predictions must use the parent image ids",
                    )
                )
                fok[k] = False
        fb = fp.boxes[fok]
        lim = np.array(
            [
                [sizes[k][0] or np.inf, sizes[k][1] or np.inf]
                for k, good in zip(fp.keys, fok, strict=True)
                if good
            ]
        ).reshape(-1, 2)
        fb[:, [0, 2]] = np.clip(fb[:, [0, 2]], 0.0, lim[:, [0]])
        fb[:, [1, 3]] = np.clip(fb[:, [1, 3]], 0.0, lim[:, [1]])
        keys += [k for k, good in zip(fp.keys, fok, strict=True) if good]
        all_boxes.append(fb)
        all_scores.append(fp.scores[fok])
        all_cats.append(fp.categories[fok])
        n_full = int(fok.sum())
    boxes = np.concatenate(all_boxes).reshape(-1, 4)
    scores = np.concatenate(all_scores)
    cats = np.concatenate(all_cats)
    groups: dict[Any, list[int]] = {}
    for k, key in enumerate(keys):
        groups.setdefault(key, []).append(k)
    out: list[dict[str, Any]] = []
    for key, rows in progress.track(
        _sorted_items(groups), total=len(groups), description="merging predictions"
    ):
        idx = np.asarray(rows, dtype=np.int64)
        merged = merge_predictions(boxes[idx], scores[idx], cats[idx], config)
        xywh = B.xyxy_to_xywh(merged.boxes)
        out.extend(
            {
                "image_id": key,
                "category_id": int(cat),
                "bbox": [round(float(v), 3) for v in box],
                "score": float(score),
            }
            for box, score, cat in zip(xywh, merged.scores, merged.category_ids, strict=True)
        )
    counts = {
        "tile_predictions": len(tile_results),
        "full_image_predictions": n_full,
        "predictions_unmatched": int((~ok).sum())
        + ((len(full_results) - n_full) if full_results is not None else 0),
        "parent_images": len(groups),
        "merged_predictions": len(out),
    }
    return UntileResult(out, counts)


def _sorted_items(groups: Mapping[Any, list[int]]) -> Iterable[tuple[Any, list[int]]]:
    """Parents in a stable order: numbers first (numerically), then the rest as text."""
    return sorted(
        groups.items(),
        key=lambda kv: (
            not isinstance(kv[0], (int, float)),
            kv[0] if isinstance(kv[0], (int, float)) else str(kv[0]),
        ),
    )
