"""`curate convert --to coco` on a synthetic YOLO set vs json.dump + json.load of the result.

Builds 50k tiny image files (a few pre-encoded JPEG headers of realistic sizes, copied)
and 500k boxes, converts with the library (the same code path as the CLI), then times
``json.dump`` + ``json.load`` of the COCO file it wrote. Prints the ratio (goal <= 3x).

    python benchmarks/bench_convert.py [--images 50000] [--boxes-per-image 10]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from curate.core.output import Manifest
from curate.export import export_dataset
from curate.formats.base import ReadOptions, WriteOptions
from curate.io import load_dataset


def build(root: Path, n_images: int, per_image: int, rng: np.random.Generator) -> None:
    sizes = [(640, 480), (1280, 720), (1920, 1080), (4000, 2250)]
    blobs = []
    for w, h in sizes:
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (90, 120, 60)).save(buf, format="JPEG", quality=30)
        blobs.append(buf.getvalue())
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i in range(n_images):
        (root / "images" / "train" / f"im{i:06d}.jpg").write_bytes(blobs[i % len(blobs)])
        k = per_image
        c = rng.uniform(0.05, 0.95, (k, 2))
        wh = rng.uniform(0.002, 0.05, (k, 2))
        cls = rng.integers(0, 3, k)
        lines = "\n".join(
            f"{a} {x:.6f} {y:.6f} {w:.6f} {h:.6f}"
            for a, (x, y), (w, h) in zip(cls, c, wh, strict=True)
        )
        (root / "labels" / "train" / f"im{i:06d}.txt").write_text(lines + "\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [fire, smoke, car]\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--boxes-per-image", type=int, default=10)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="sodkit-bench-convert-"))
    try:
        src = tmp / "yolo"
        t = time.perf_counter()
        build(src, args.images, args.boxes_per_image, rng)
        print(
            f"built {args.images} images / {args.images * args.boxes_per_image} boxes in {time.perf_counter() - t:.1f}s"
        )

        t0 = time.perf_counter()
        ds = load_dataset(f"yolo:{src}", ReadOptions())
        t1 = time.perf_counter()
        export_dataset(
            ds, tmp / "coco", "coco", Manifest("convert"), options=WriteOptions(link="hardlink")
        )
        t2 = time.perf_counter()
        convert = t2 - t0

        coco_file = next((tmp / "coco" / "annotations").glob("*.json"))
        t3 = time.perf_counter()
        with open(coco_file) as fh:
            data = json.load(fh)
        with open(tmp / "again.json", "w") as fh:
            json.dump(data, fh)
        baseline = time.perf_counter() - t3
        print(f"convert: {convert:.2f}s (read {t1 - t0:.2f}s, write {t2 - t1:.2f}s)")
        print(f"baseline json.load + json.dump: {baseline:.2f}s")
        print(f"ratio convert / baseline: {convert / baseline:.2f}x (goal <= 3x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
