"""`curate stats` core on 1M generated boxes vs a plain NumPy pass over the same arrays.

The data: ``--boxes`` boxes (default 1M) spread over ``--images`` images of three sizes,
five classes, log-normal sizes around 14 px (small objects), 2% exact-ish double labels.

Baseline (measured in the same run, same arrays): what one would write by hand for the
overall numbers: widths, heights, areas, letterbox scale, size buckets native and at the
input (``np.searchsorted`` + ``np.bincount``), area ratios and their median, side and
aspect quantiles (``np.quantile``), the two relative shares, boxes per class and a 32x32
centre histogram (``np.histogram2d``).

sodkit's :func:`curate.stats.stats_from_table` computes all of that per class as well,
plus images per class, objects per image, image sizes, label quality (degenerate,
out-of-bounds, tiny, unknown class) and the double-label search (sort-and-sweep IoU).
Goal: <= 5x the baseline. With ``--from-dataset`` it also times :func:`compute_stats`
on a :class:`Dataset` of the same boxes (adds ``Dataset.box_table()``, a Python pass
over the annotation objects).

    .venv/bin/python benchmarks/bench_stats.py [--boxes 1000000] [--images 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from curate.core.dataset import Annotation, BoxTable, Category, Dataset, ImageItem
from curate.stats import QUANTILES, StatsOptions, compute_stats, stats_from_table

EDGES = np.array([8, 16, 32, 96], dtype=np.float64) ** 2


def make_table(
    n_boxes: int, n_images: int, n_cls: int, rng: np.random.Generator
) -> tuple[BoxTable, np.ndarray, np.ndarray]:
    img = np.sort(rng.integers(0, n_images, n_boxes))
    sizes = np.array([[640, 480], [1920, 1080], [4000, 3000]], dtype=np.float64)
    pick = rng.integers(0, len(sizes), n_images)
    iw, ih = sizes[pick, 0], sizes[pick, 1]
    side = np.exp(rng.normal(np.log(14), 0.8, n_boxes))
    ar = np.exp(rng.normal(0, 0.3, n_boxes))
    w, h = side * np.sqrt(ar), side / np.sqrt(ar)
    cx, cy = rng.random(n_boxes) * iw[img], rng.random(n_boxes) * ih[img]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, iw[img][:, None])
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, ih[img][:, None])
    cls = rng.integers(0, n_cls, n_boxes)
    dup = np.flatnonzero(rng.random(n_boxes) < 0.02)  # a double label right after the box
    dup = dup[dup + 1 < n_boxes]
    dup = dup[img[dup + 1] == img[dup]]
    boxes[dup + 1] = boxes[dup] + rng.normal(0, 0.05, (len(dup), 4))
    cls[dup + 1] = cls[dup]
    table = BoxTable(img, cls, boxes, np.zeros(n_boxes, bool), iw[img], ih[img])
    return table, iw, ih


def baseline(t: BoxTable, imgsz: int) -> dict[str, Any]:
    """The overall numbers in plain NumPy (no per-class split, no quality, no sorting)."""
    b = t.boxes
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    area = w * h
    iw, ih = t.image_width, t.image_height
    scale = imgsz / np.maximum(iw, ih)
    in_area = area * scale * scale
    ratio = area / (iw * ih)
    return {
        "native": np.bincount(np.searchsorted(EDGES, area, side="right"), minlength=5),
        "input": np.bincount(np.searchsorted(EDGES, in_area, side="right"), minlength=5),
        "median_ratio": np.median(ratio),
        "side": np.quantile(np.sqrt(area), QUANTILES),
        "side_in": np.quantile(np.sqrt(in_area), QUANTILES),
        "aspect": np.quantile(w / h, QUANTILES),
        "wh_below": np.mean((w < 0.1 * iw) & (h < 0.1 * ih)),
        "sqrt_below": np.mean(np.sqrt(ratio) < 0.03),
        "per_class": np.bincount(t.category_id),
        "heat": np.histogram2d(
            (b[:, 1] + b[:, 3]) / 2 / ih,
            (b[:, 0] + b[:, 2]) / 2 / iw,
            bins=32,
            range=[[0, 1], [0, 1]],
        )[0],
    }


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def to_dataset(t: BoxTable, iw: np.ndarray, ih: np.ndarray, n_cls: int) -> Dataset:
    images = [
        ImageItem(f"im{i}.jpg", Path(f"im{i}.jpg"), int(iw[i]), int(ih[i])) for i in range(len(iw))
    ]
    for i, c, box in zip(
        t.image_index.tolist(), t.category_id.tolist(), t.boxes.tolist(), strict=True
    ):
        images[i].annotations.append(Annotation(tuple(box), c))  # type: ignore[arg-type]
    return Dataset([Category(c, f"c{c}") for c in range(n_cls)], images)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boxes", type=int, default=1_000_000)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--from-dataset", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    table, iw, ih = make_table(args.boxes, args.images, args.classes, rng)
    cats = [Category(c, f"c{c}") for c in range(args.classes)]
    opts = StatsOptions(imgsz=args.imgsz)

    t_base, ref = best_of(lambda: baseline(table, args.imgsz), args.repeat)
    t_ours, st = best_of(lambda: stats_from_table(table, iw, ih, cats, opts), args.repeat)
    assert (np.array(list(st.overall.buckets_native.values())) == ref["native"]).all()
    print(f"boxes {args.boxes:,}  images {args.images:,}  classes {args.classes}")
    print(f"baseline (plain NumPy pass):   {t_base:.3f} s")
    print(f"sodkit stats_from_table:       {t_ours:.3f} s")
    print(f"ratio: {t_ours / t_base:.2f}x   (goal <= 5x)")
    print(f"double labels found: {st.quality.double_labels:,}")
    if args.from_dataset:
        ds = to_dataset(table, iw, ih, args.classes)
        t_ds, _ = best_of(lambda: compute_stats(ds, opts), 1)
        t_bt, _ = best_of(ds.box_table, 1)
        print(f"compute_stats from a Dataset:  {t_ds:.3f} s  (of which box_table {t_bt:.3f} s)")
        print(f"ratio incl. box_table: {t_ds / t_base:.2f}x")


if __name__ == "__main__":
    main()
