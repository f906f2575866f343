"""Anchor boxes for YOLO-style detectors, and stride coverage for anchor-free ones.

Boxes are taken at the training input size (letterboxed: ``scale = imgsz / max(w, h)``
of their image), as YOLOv5's autoanchor does. Valid boxes only (finite, width and height
> 0, image size known); crowd regions are left out.

Fitting, in three steps:

1. **k-means with the 1 - IoU distance** (both boxes placed at the origin, as in YOLOv2),
   k-means++ seeding, a few restarts; the restart with the best ratio fitness is kept.
2. **Genetic refinement** of the fitness YOLO detectors train with, YOLOv5's
   ``kmean_anchors`` mutation (probability 0.9, sigma 0.1, a mutation kept only when the
   fitness rises). A box matches an anchor ``(a, b)`` when the ratio metric
   ``r = min(w/a, a/w, h/b, b/h)`` exceeds ``1 / thr`` (``thr = 4``); the fitness is the
   mean over boxes of ``best_r * (best_r > 1 / thr)``. YOLOv5 stops after 1000
   generations, before the search has settled (on small aerial boxes 5000 generations
   still gain ~0.5% fitness); our fitness is computed in log space in float32 and costs
   a tenth of YOLOv5's, so we run 3000.
3. **Polish**: 1000 finer mutations (sigma 0.05) kept when they raise the fitness
   without lowering the anchors matched per box, or raise the matches per box at no
   loss of fitness (see :func:`polish_anchors`).

Boxes with both sides under 2 px are left out of the fitting (as YOLOv5 does); when more
than ``max_fit_boxes`` (100k) remain, the fitting runs on a random subsample of that many
(a speed trade: the fitness of a 100k subsample is within ~0.1% of the full set's), and
k-means, which only seeds the search, on at most ``max_kmeans_boxes`` (30k). The
reported metrics always use every box.

Metrics (for our anchors and for the YOLOv5 COCO defaults, on the same boxes):
``fitness`` as above; ``bpr`` (best possible recall) the share of boxes whose best ``r``
exceeds ``1 / thr``; ``anchors_above_thr`` the mean number of anchors per box with
``r > 1 / thr``; ``mean_best_iou`` the mean over boxes of the best origin IoU.

Anchor-free detectors (YOLOX, FCOS) have no anchors; :class:`StrideShare` reports for
each stride (4, 8, 16, 32) which boxes it would serve under FCOS's size ranges (a level
of stride ``s`` takes boxes whose longer side at the input is in ``(8 s, 16 s]``; the
finest level takes every smaller box, the coarsest every larger one) and the share of
boxes smaller than one grid cell (``sqrt(w * h) < s``: on average less than one grid
point falls inside the box, so the in-box candidates of YOLOX's SimOTA, or FCOS's
positives, are missing or rare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from curate.core.dataset import Dataset
from curate.core.errors import UsageError
from curate.core.progress import NullProgress, Progress

FloatArray = NDArray[np.float64]

YOLOV5_COCO_ANCHORS = np.array(
    [
        [10, 13],
        [16, 30],
        [33, 23],
        [30, 61],
        [62, 45],
        [59, 119],
        [116, 90],
        [156, 198],
        [373, 326],
    ],
    dtype=np.float64,
)
"""YOLOv5's default anchors (P3/8, P4/16, P5/32), pixels at the input."""

LEVEL_STRIDES = {3: (8, 16, 32), 4: (4, 8, 16, 32)}
"""Strides per number of levels: 3 is P3-P5, 4 adds a stride-4 P2 level for tiny objects."""

ANCHOR_FREE_STRIDES = (4, 8, 16, 32)
FCOS_RANGE_FACTOR = 8.0
"""FCOS: a level of stride ``s`` takes boxes whose longer side is in ``(8 s, 16 s]``."""


@dataclass(frozen=True)
class AnchorOptions:
    """How to fit: anchor count and levels, input size, match threshold and search effort."""

    n: int = 9
    levels: int = 3
    imgsz: int = 640
    thr: float = 4.0
    generations: int = 3000
    polish_generations: int = 1000
    polish_sigma: float = 0.05
    mutation_prob: float = 0.9
    sigma: float = 0.1
    kmeans_restarts: int = 3
    kmeans_iter: int = 100
    max_fit_boxes: int = 100_000
    max_kmeans_boxes: int = 30_000
    min_fit_side: float = 2.0

    def __post_init__(self) -> None:
        if self.levels not in LEVEL_STRIDES:
            raise UsageError(f"levels must be 3 (P3-P5) or 4 (P2-P5), got {self.levels}")
        if self.n <= 0 or self.n % self.levels:
            raise UsageError(
                f"{self.n} anchors cannot be split over {self.levels} levels; "
                f"use a multiple of {self.levels}, e.g. --n {3 * self.levels}"
            )
        if self.imgsz <= 0:
            raise UsageError(f"imgsz must be a positive number of pixels, got {self.imgsz}")
        if self.thr <= 1.0:
            raise UsageError(f"thr must be > 1 (YOLOv5 uses 4.0), got {self.thr}")
        if self.generations < 0 or self.max_fit_boxes < self.n:
            raise UsageError("generations must be >= 0 and max_fit_boxes >= n")

    @property
    def strides(self) -> tuple[int, ...]:
        return LEVEL_STRIDES[self.levels]


@dataclass(frozen=True)
class AnchorMetrics:
    """How well a set of anchors fits the boxes (see the module docstring)."""

    fitness: float
    bpr: float
    anchors_above_thr: float
    mean_best_iou: float
    mean_best_ratio: float


@dataclass(frozen=True)
class StrideShare:
    """One stride of an anchor-free detector: boxes it is assigned, boxes under one cell."""

    stride: int
    assigned_p2_p5: float
    assigned_p3_p5: float | None
    below_cell: float


@dataclass
class AnchorResult:
    """Fitted anchors ``(n, 2)`` (w, h at the input, sorted by area) and their evaluation."""

    anchors: FloatArray
    options: AnchorOptions
    num_boxes: int
    num_fit_boxes: int
    ours: AnchorMetrics
    kmeans: AnchorMetrics
    default: AnchorMetrics
    strides: list[StrideShare]
    share_under_8px: float
    side_quantiles: dict[str, float]
    native_size: float | None = None
    recommendations: list[str] = field(default_factory=list)

    def levels(self) -> list[tuple[int, FloatArray]]:
        """``(stride, anchors of that level)`` pairs, finest first."""
        per = self.options.n // self.options.levels
        return [
            (s, self.anchors[i * per : (i + 1) * per]) for i, s in enumerate(self.options.strides)
        ]

    def yaml_block(self) -> str:
        """A YOLOv5/YOLOv7 model-YAML ``anchors:`` block (integers, one row per level)."""
        lines = ["anchors:"]
        for stride, a in self.levels():
            pairs = ", ".join(f"{_r(w)},{_r(h)}" for w, h in a)
            lines.append(f"  - [{pairs}]  # P{round(math.log2(stride))}/{stride}")
        return "\n".join(lines)

    def darknet_line(self) -> str:
        """A Darknet cfg ``anchors=`` line (all levels, sorted by area)."""
        return "anchors = " + ",  ".join(f"{_r(w)},{_r(h)}" for w, h in self.anchors)

    def darknet_masks(self) -> list[str]:
        """The ``mask=`` of each ``[yolo]`` layer, by stride."""
        per = self.options.n // self.options.levels
        return [
            f"stride {s}: mask = " + ",".join(str(i * per + j) for j in range(per))
            for i, s in enumerate(self.options.strides)
        ]

    def to_dict(self) -> dict[str, Any]:
        o = self.options
        return {
            "options": {
                "n": o.n,
                "levels": o.levels,
                "strides": list(o.strides),
                "imgsz": o.imgsz,
                "thr": o.thr,
                "generations": o.generations,
                "mutation_prob": o.mutation_prob,
                "sigma": o.sigma,
                "max_fit_boxes": o.max_fit_boxes,
            },
            "boxes": self.num_boxes,
            "fit_boxes": self.num_fit_boxes,
            "anchors": [[round(float(w), 2), round(float(h), 2)] for w, h in self.anchors],
            "anchors_by_level": {
                str(s): [[round(float(w), 2), round(float(h), 2)] for w, h in a]
                for s, a in self.levels()
            },
            "ours": self.ours.__dict__,
            "kmeans_only": self.kmeans.__dict__,
            "yolov5_default": self.default.__dict__,
            "yaml": self.yaml_block(),
            "darknet": self.darknet_line(),
            "darknet_masks": self.darknet_masks(),
            "anchor_free": {
                "rule": (
                    "FCOS size ranges: stride s takes boxes whose longer side at the input "
                    "is in (8s, 16s]; the finest level every smaller box, the coarsest every "
                    "larger one. below_cell: sqrt(w*h) < s (under one grid cell)."
                ),
                "strides": [s.__dict__ for s in self.strides],
            },
            "share_under_8px": self.share_under_8px,
            "native_size": self.native_size,
            "side_quantiles": self.side_quantiles,
            "recommendations": self.recommendations,
        }


def _r(v: float) -> int:
    return max(1, round(float(v)))


# -- boxes ----------------------------------------------------------------------------


def input_box_sizes(dataset: Dataset, imgsz: int = 640) -> FloatArray:
    """``(N, 2)`` widths and heights of the valid, non-crowd boxes at the training input."""
    t = dataset.box_table()
    b = t.boxes
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    longest = np.maximum(t.image_width, t.image_height)
    with np.errstate(invalid="ignore"):
        keep = (
            np.isfinite(b).all(axis=1)
            & (w > 0)
            & (h > 0)
            & (t.image_width > 0)
            & (t.image_height > 0)
            & ~t.iscrowd
        )
    scale = imgsz / longest[keep]
    return np.stack([w[keep] * scale, h[keep] * scale], axis=1)


# -- metrics --------------------------------------------------------------------------


def ratio_metric(wh: ArrayLike, anchors: ArrayLike) -> FloatArray:
    """``(N, K)`` YOLO ratio metric ``min(w/a, a/w, h/b, b/h)`` of boxes and anchors."""
    w = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    k = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    r = w[:, None, :] / k[None, :, :]
    return np.minimum(r, 1.0 / r).min(axis=2)


def wh_iou(wh: ArrayLike, anchors: ArrayLike) -> FloatArray:
    """``(N, K)`` IoU of boxes and anchors both placed at the origin."""
    w = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    k = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    inter = np.minimum(w[:, None, 0], k[None, :, 0]) * np.minimum(w[:, None, 1], k[None, :, 1])
    union = (w[:, 0] * w[:, 1])[:, None] + (k[:, 0] * k[:, 1])[None, :] - inter
    return inter / union


def evaluate_anchors(wh: ArrayLike, anchors: ArrayLike, thr: float = 4.0) -> AnchorMetrics:
    """Fitness, BPR, anchors above threshold and mean best IoU of ``anchors`` on ``wh``."""
    w = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    k = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
    n = len(w)
    if not n:
        return AnchorMetrics(0.0, 0.0, 0.0, 0.0, 0.0)
    t = 1.0 / thr
    bw, bh = w[:, 0], w[:, 1]
    area = bw * bh
    best = np.zeros(n)
    best_iou = np.zeros(n)
    above = 0
    for a, b in k:  # one anchor at a time: no (N, K, 2) temporaries on large sets
        rw = bw / a
        rh = bh / b
        r = np.minimum(np.minimum(rw, 1.0 / rw), np.minimum(rh, 1.0 / rh))
        np.maximum(best, r, out=best)
        above += int(np.count_nonzero(r > t))
        inter = np.minimum(bw, a) * np.minimum(bh, b)
        np.maximum(best_iou, inter / (area + a * b - inter), out=best_iou)
    matched = best > t
    return AnchorMetrics(
        fitness=float((best * matched).sum() / n),
        bpr=float(matched.sum() / n),
        anchors_above_thr=above / n,
        mean_best_iou=float(best_iou.mean()),
        mean_best_ratio=float(best.mean()),
    )


class _Fitness:
    """YOLOv5's anchor fitness, fast: ``r = exp(-max(|log w - log a|, |log h - log b|))``.

    Calling it gives the fitness; :meth:`both` also the mean number of anchors per box
    with ``r > 1 / thr`` (anchors above threshold).
    """

    def __init__(self, wh: FloatArray, thr: float) -> None:
        self.lw = np.log(wh[:, 0]).astype(np.float32)
        self.lh = np.log(wh[:, 1]).astype(np.float32)
        self.log_t = np.float32(math.log(thr))

    def __call__(self, anchors: FloatArray) -> float:
        return self.both(anchors, count=False)[0]

    def both(self, anchors: FloatArray, *, count: bool = True) -> tuple[float, float]:
        lk = np.log(anchors).astype(np.float32)
        dist = np.full(len(self.lw), np.inf, dtype=np.float32)
        above = 0
        for la, lb in lk:
            d = np.maximum(np.abs(self.lw - la), np.abs(self.lh - lb))
            np.minimum(dist, d, out=dist)
            if count:
                above += int(np.count_nonzero(d < self.log_t))
        near = dist[dist < self.log_t]  # best r > 1/thr  <=>  distance < log(thr)
        n = len(self.lw)
        return float(np.exp(-near, dtype=np.float64).sum() / n), above / n


# -- fitting --------------------------------------------------------------------------


def kmeans_iou(
    wh: FloatArray, n: int, rng: np.random.Generator, *, iterations: int = 100
) -> FloatArray:
    """``(n, 2)`` cluster centres of ``wh`` under the 1 - IoU distance (k-means++ seeding)."""
    m = len(wh)
    if m < n:
        raise UsageError(f"need at least {n} boxes to fit {n} anchors, got {m}")
    centres = np.empty((n, 2), dtype=np.float64)
    centres[0] = wh[rng.integers(m)]
    best = wh_iou(wh, centres[:1])[:, 0]
    for i in range(1, n):
        d = np.clip(1.0 - best, 0.0, None) ** 2
        total = d.sum()
        pick = rng.choice(m, p=d / total) if total > 0 else rng.integers(m)
        centres[i] = wh[pick]
        best = np.maximum(best, wh_iou(wh, centres[i : i + 1])[:, 0])
    assign = np.full(m, -1)
    for _ in range(iterations):
        iou = wh_iou(wh, centres)
        new = iou.argmax(axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        counts = np.bincount(assign, minlength=n)
        sums_w = np.bincount(assign, weights=wh[:, 0], minlength=n)
        sums_h = np.bincount(assign, weights=wh[:, 1], minlength=n)
        empty = counts == 0
        centres[~empty, 0] = sums_w[~empty] / counts[~empty]
        centres[~empty, 1] = sums_h[~empty] / counts[~empty]
        if empty.any():  # re-seed an empty cluster at the worst-fitted boxes
            worst = np.argsort(iou.max(axis=1))[: int(empty.sum())]
            centres[empty] = wh[worst]
    return centres


def _mutation(
    shape: tuple[int, ...], rng: np.random.Generator, options: AnchorOptions
) -> FloatArray:
    """YOLOv5's multiplicative noise: per-anchor factors, some left at 1, never all."""
    v = np.ones(shape)
    while (v == 1).all():
        v = (
            (rng.random(shape) < options.mutation_prob)
            * rng.random()
            * rng.standard_normal(shape)
            * options.sigma
            + 1
        ).clip(0.3, 3.0)
    return v


def evolve_anchors(
    anchors: FloatArray,
    fitness: _Fitness,
    rng: np.random.Generator,
    options: AnchorOptions,
    progress: Progress,
) -> tuple[FloatArray, float]:
    """YOLOv5-style mutation search: multiply anchors by noise, keep the change if fitter."""
    k = anchors.copy()
    best = fitness(k)
    for _ in progress.track(
        range(options.generations), total=options.generations, description="evolving anchors"
    ):
        cand = (k * _mutation(k.shape, rng, options)).clip(min=2.0)
        f = fitness(cand)
        if f > best:
            best, k = f, cand
    return k, best


def polish_anchors(
    anchors: FloatArray,
    fitness: _Fitness,
    rng: np.random.Generator,
    options: AnchorOptions,
    progress: Progress,
) -> FloatArray:
    """Finer mutations (``polish_sigma``) that raise the fitness or the matches per box.

    A candidate is kept when it is fitter without fewer anchors above threshold, or has
    more anchors above threshold at a fitness no lower than the start's (less 1e-5 of
    it). YOLO trains every anchor with ``r > 1 / thr`` on a box, so more matches per box
    means more positives for small objects; the fitness alone only sees the best anchor.
    """
    k = anchors.copy()
    fit, above = fitness.both(k)
    floor = fit * (1.0 - 1e-5)
    fine = replace(options, sigma=options.polish_sigma)
    for _ in progress.track(
        range(options.polish_generations),
        total=options.polish_generations,
        description="polishing anchors",
    ):
        cand = (k * _mutation(k.shape, rng, fine)).clip(min=2.0)
        f, a = fitness.both(cand)
        if (f > fit and a >= above) or (f >= floor and a > above):
            fit, above, k = f, a, cand
    return k


def fit_anchors(
    wh: ArrayLike,
    options: AnchorOptions | None = None,
    rng: np.random.Generator | None = None,
    *,
    progress: Progress | None = None,
    native_size: float | None = None,
) -> AnchorResult:
    """Fit anchors to ``(N, 2)`` input-size box widths/heights and evaluate them.

    Deterministic for a given ``rng`` state (default: ``np.random.default_rng(0)``).
    ``native_size`` (the typical longer image side as stored) only informs the advice.
    """
    opts = options or AnchorOptions()
    gen = rng if rng is not None else np.random.default_rng(0)
    prog = progress or NullProgress()
    boxes = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    boxes = boxes[np.isfinite(boxes).all(axis=1) & (boxes > 0).all(axis=1)]
    fit = boxes[(boxes >= opts.min_fit_side).any(axis=1)]
    if len(fit) < opts.n:
        raise UsageError(
            f"need at least {opts.n} boxes of {opts.min_fit_side:g} px or more at "
            f"imgsz {opts.imgsz} to fit {opts.n} anchors, found {len(fit)}; "
            "lower --n or raise --imgsz"
        )
    if len(fit) > opts.max_fit_boxes:
        fit = fit[np.sort(gen.choice(len(fit), opts.max_fit_boxes, replace=False))]
    fitness = _Fitness(fit, opts.thr)

    km = fit  # k-means only seeds the search: a smaller subsample does
    if len(km) > opts.max_kmeans_boxes:
        km = km[np.sort(gen.choice(len(km), opts.max_kmeans_boxes, replace=False))]
    init: FloatArray | None = None
    init_f = -1.0
    for _ in range(max(1, opts.kmeans_restarts)):
        c = kmeans_iou(km, opts.n, gen, iterations=opts.kmeans_iter)
        f = fitness(c)
        if f > init_f:
            init, init_f = c, f
    assert init is not None
    anchors, _ = evolve_anchors(init, fitness, gen, opts, prog)
    anchors = polish_anchors(anchors, fitness, gen, opts, prog)
    anchors = _sort_by_area(anchors)
    init = _sort_by_area(init)

    side = np.sqrt(boxes[:, 0] * boxes[:, 1])
    result = AnchorResult(
        anchors=anchors,
        options=opts,
        num_boxes=len(boxes),
        num_fit_boxes=len(fit),
        ours=evaluate_anchors(boxes, anchors, opts.thr),
        kmeans=evaluate_anchors(boxes, init, opts.thr),
        default=evaluate_anchors(boxes, YOLOV5_COCO_ANCHORS, opts.thr),
        strides=stride_shares(boxes),
        share_under_8px=float((side < 8).mean()) if len(side) else 0.0,
        side_quantiles={
            f"p{int(q * 100)}": float(v)
            for q, v in zip((0.1, 0.5, 0.9), np.quantile(side, (0.1, 0.5, 0.9)), strict=True)
        },
        native_size=native_size,
    )
    result.recommendations = recommendations(result)
    return result


def anchors_for_dataset(
    dataset: Dataset,
    options: AnchorOptions | None = None,
    rng: np.random.Generator | None = None,
    *,
    progress: Progress | None = None,
) -> AnchorResult:
    """:func:`fit_anchors` on the dataset's boxes at ``options.imgsz``."""
    opts = options or AnchorOptions()
    longest = [max(im.width, im.height) for im in dataset.images if im.width and im.height]
    return fit_anchors(
        input_box_sizes(dataset, opts.imgsz),
        opts,
        rng,
        progress=progress,
        native_size=float(np.median(longest)) if longest else None,
    )


def _sort_by_area(anchors: FloatArray) -> FloatArray:
    return anchors[np.argsort(anchors[:, 0] * anchors[:, 1], kind="stable")]


# -- anchor-free coverage and advice ---------------------------------------------------


def fcos_level(wh: FloatArray, strides: tuple[int, ...]) -> NDArray[np.int64]:
    """Index into ``strides`` of the level FCOS's size ranges give each box."""
    longest = np.max(wh, axis=1)
    upper = np.array([2 * FCOS_RANGE_FACTOR * s for s in strides[:-1]], dtype=np.float64)
    # longer side in (8s, 16s] -> that level; <= 16 s_min -> finest; > 16 s_max -> coarsest
    return np.searchsorted(upper, longest, side="left").astype(np.int64)


def stride_shares(wh: FloatArray) -> list[StrideShare]:
    """Per stride 4, 8, 16, 32: assigned share (P2-P5 and P3-P5 heads) and sub-cell share."""
    n = len(wh)
    if not n:
        return [StrideShare(s, 0.0, 0.0 if s != 4 else None, 0.0) for s in ANCHOR_FREE_STRIDES]
    side = np.sqrt(wh[:, 0] * wh[:, 1])
    with_p2 = np.bincount(fcos_level(wh, ANCHOR_FREE_STRIDES), minlength=4) / n
    without = np.bincount(fcos_level(wh, ANCHOR_FREE_STRIDES[1:]), minlength=3) / n
    out = []
    for i, s in enumerate(ANCHOR_FREE_STRIDES):
        out.append(
            StrideShare(
                stride=s,
                assigned_p2_p5=float(with_p2[i]),
                assigned_p3_p5=None if s == 4 else float(without[i - 1]),
                below_cell=float((side < s).mean()),
            )
        )
    return out


def recommendations(result: AnchorResult) -> list[str]:
    """Plain advice on input size, extra levels and tiling from the box sizes."""
    o = result.options
    out: list[str] = []
    under8 = result.share_under_8px
    p10 = result.side_quantiles.get("p10", 0.0)
    below = {s.stride: s.below_cell for s in result.strides}
    if under8 >= 0.10:
        msg = (
            f"{under8:.0%} of boxes are under 8 px at {o.imgsz} (smaller than one stride-8 "
            "cell): add a stride-4 (P2) level or train on tiles (curate tile)"
        )
        if p10 > 0:
            need = int(math.ceil(o.imgsz * 8.0 / p10 / 32.0) * 32)
            msg += f"; --imgsz {need} would bring 90% of boxes to 8 px or more"
            if result.native_size and need > result.native_size:
                msg += (
                    f", beyond the native resolution (~{result.native_size:.0f} px): "
                    "tiles keep the pixels without upsampling"
                )
        out.append(msg)
    elif below.get(16, 0.0) >= 0.5:
        out.append(
            f"{below[16]:.0%} of boxes are under 16 px at {o.imgsz}: keep the stride-8 level; "
            "a stride-4 level helps if recall on the smallest objects is low"
        )
    else:
        out.append(f"boxes are large enough for the standard strides 8/16/32 at {o.imgsz}")
    p5_share = next(s.assigned_p3_p5 for s in result.strides if s.stride == 32) or 0.0
    if p5_share < 0.01 and o.levels == 3:
        out.append(
            f"only {p5_share:.1%} of boxes fall in the stride-32 range: that level is mostly idle"
        )
    gain = result.ours.fitness - result.default.fitness
    if gain > 0.01 or result.ours.bpr - result.default.bpr > 0.01:
        out.append(
            f"fitted anchors beat the YOLOv5 defaults (fitness {result.ours.fitness:.3f} vs "
            f"{result.default.fitness:.3f}, BPR {result.ours.bpr:.3f} vs "
            f"{result.default.bpr:.3f}): paste the anchors block into the model YAML"
        )
    else:
        out.append("the YOLOv5 default anchors fit these boxes about as well: keep them")
    return out
