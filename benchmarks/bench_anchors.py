"""`curate anchors` on 1M generated small-object boxes: seconds, and ratios.

The data: ``--boxes`` (default 1M) widths/heights at the 640 input: small aerial cars
(log-normal length around 20 px, 0.4-0.55 as wide, either orientation) plus 10% larger
objects, as a VisDrone-like mix.

Prints the wall time of :func:`curate.anchors.fit_anchors` with the default options
(k-means on a 30k subsample, 3000 genetic generations + 1000 polish generations on a
100k subsample, metrics on all boxes) against the goal of 30 s on a 2-core machine, and
against YOLOv5's ``kmean_anchors`` procedure run on the same boxes, whose cost is
estimated in the same run: 1000 generations x the measured time of one YOLOv5-style
fitness evaluation (``r = wh[:, None] / k[None]``, float32) on all boxes.

    .venv/bin/python benchmarks/bench_anchors.py [--boxes 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from curate.anchors import AnchorOptions, fit_anchors

GOAL_S = 30.0


def make_boxes(n: int, rng: np.random.Generator) -> np.ndarray:
    length = np.exp(rng.normal(np.log(20), 0.6, n))
    width = length * rng.uniform(0.4, 0.55, n)
    turned = rng.random(n) < 0.5
    wh = np.stack([np.where(turned, length, width), np.where(turned, width, length)], axis=1)
    big = rng.random(n) < 0.1
    wh[big] *= rng.uniform(3, 10, (int(big.sum()), 1))
    return wh


def yolov5_fitness_seconds(wh: np.ndarray, anchors: np.ndarray, repeat: int = 5) -> float:
    """Seconds of one YOLOv5-style fitness evaluation on all boxes (best of ``repeat``)."""
    w = wh.astype(np.float32)
    k = anchors.astype(np.float32)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = w[:, None] / k[None]
        x = np.minimum(r, 1 / r).min(2).max(1)
        float((x * (x > 0.25)).mean())
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boxes", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    wh = make_boxes(args.boxes, np.random.default_rng(args.seed))
    opts = AnchorOptions()
    t0 = time.perf_counter()
    res = fit_anchors(wh, opts, np.random.default_rng(args.seed))
    took = time.perf_counter() - t0
    per_gen = yolov5_fitness_seconds(wh, res.anchors)
    yolo_est = 1000 * per_gen
    print(f"boxes {args.boxes:,}  cpus {os.cpu_count()}  fit on {res.num_fit_boxes:,}")
    print(f"sodkit fit_anchors:                {took:.1f} s")
    print(f"ratio to the {GOAL_S:.0f} s goal:            {took / GOAL_S:.2f}x (goal <= 1)")
    print(f"YOLOv5 kmean_anchors, estimated:   {yolo_est:.1f} s (1000 x {per_gen * 1000:.0f} ms)")
    print(f"ratio sodkit / YOLOv5 estimate:    {took / yolo_est:.2f}x")
    o, d = res.ours, res.default
    print(
        f"fitness {o.fitness:.4f} (default {d.fitness:.4f})  BPR {o.bpr:.4f} ({d.bpr:.4f})  "
        f"anchors above thr {o.anchors_above_thr:.2f} ({d.anchors_above_thr:.2f})"
    )
    print(res.yaml_block())


if __name__ == "__main__":
    main()
