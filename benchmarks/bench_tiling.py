"""Tiling speed as a ratio to the unavoidable work, and side by side with SAHI's ``slice_coco``.

Baseline (measured in the same run): decode every source image once and encode every
tile window with the same codec and quality (``read_image`` + ``write_image``, JPEG
q95). sodkit's ``tile_dataset`` does that plus planning, clipping and writing COCO;
the goal is <= 1.5x the baseline, serial. SAHI runs in its own venv as a subprocess
(``--sahi-python``, default ``/tmp/sahi-venv/bin/python``); without it that column is
skipped with a message.

Data: ``--data COCO_JSON`` (a COCO file whose images sit in one folder), or by default a
synthetic set built from the real aerial photos in ``../shared/data/sahi-terrain``
(mosaics of them at 4000x2250 and crops at 1920x1080, JPEG q95) with hundreds of small
car-sized boxes per image.

    .venv/bin/python benchmarks/bench_tiling.py [--data FILE.json] [--images 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from curate.core.imageio import read_image, write_image
from curate.core.parallel import ProcessExecutor
from curate.io import load_dataset
from curate.tiling import TileConfig, tile_dataset, tile_windows

T = TypeVar("T")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sahi-terrain"

SAHI_SCRIPT = """
import json, sys, time
from sahi.slicing import slice_coco
ann, img_dir, out, size, overlap, min_ratio, ext = sys.argv[1:8]
t, c = time.perf_counter(), time.process_time()
coco, _ = slice_coco(ann, img_dir, "sliced", output_dir=out, ignore_negative_samples=False,
    slice_height=int(size), slice_width=int(size), overlap_height_ratio=float(overlap),
    overlap_width_ratio=float(overlap), min_area_ratio=float(min_ratio), out_ext=ext or None, verbose=False)
dt, dc = time.perf_counter() - t, time.process_time() - c
small = sum(1 for i in coco["images"] if i["width"] < int(size) or i["height"] < int(size))
print(json.dumps({"seconds": dt, "cpu": dc, "tiles": len(coco["images"]), "boxes": len(coco["annotations"]), "small_tiles": small}))
"""


def _source_photos(rng: np.random.Generator) -> list[np.ndarray]:
    photos = [
        SHARED / "coco_utils" / "terrain1.jpg",
        SHARED / "boats.jpg",
        SHARED / "small-vehicles1.jpeg",
    ]
    found = [read_image(p) for p in photos if p.is_file()]
    if found:
        return found
    print("(shared data absent: using smooth random images)")
    import cv2

    noise = rng.integers(0, 255, (270, 480, 3), dtype=np.uint8)
    return [cv2.resize(cv2.GaussianBlur(noise, (9, 9), 3), (1920, 1080))]


def _mosaic(photos: list[np.ndarray], w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A ``w`` x ``h`` image made of flipped real photos side by side, randomly offset."""
    rows = []
    while sum(r.shape[0] for r in rows) < h + 1:
        row, width = [], 0
        while width < w + 1:
            p = photos[int(rng.integers(len(photos)))]
            p = p[:, ::-1] if rng.random() < 0.5 else p
            row.append(p[: min(p.shape[0] for p in photos)])
            width += p.shape[1]
        rows.append(np.concatenate(row, axis=1)[:, : w + 1])
    big = np.concatenate(rows, axis=0)
    y = int(rng.integers(0, big.shape[0] - h + 1))
    x = int(rng.integers(0, big.shape[1] - w + 1))
    return np.ascontiguousarray(big[y : y + h, x : x + w])


def make_synthetic(root: Path, n_each: int, seed: int = 0) -> Path:
    """``n_each`` 4000x2250 and 1920x1080 JPEGs with small boxes; returns the COCO file."""
    rng = np.random.default_rng(seed)
    photos = _source_photos(rng)
    (root / "images").mkdir(parents=True)
    images, anns = [], []
    for k in range(2 * n_each):
        w, h, n_boxes = (4000, 2250, 300) if k < n_each else (1920, 1080, 150)
        name = f"aerial_{k:03d}.jpg"
        write_image(root / "images" / name, _mosaic(photos, w, h, rng), quality=95)
        images.append({"id": k + 1, "file_name": name, "width": w, "height": h})
        wh = rng.uniform(8, 40, (n_boxes, 2))
        xy = rng.uniform(0, 1, (n_boxes, 2)) * (np.array([w, h]) - wh)
        for (x, y), (bw, bh) in zip(xy, wh, strict=True):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": k + 1,
                    "category_id": 1,
                    "bbox": [round(float(v), 2) for v in (x, y, bw, bh)],
                    "iscrowd": 0,
                }
            )
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "car"}]}
    path = root / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


Timing = tuple[float, float]  # wall seconds, CPU seconds of this process


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(t0: Timing) -> Timing:
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


def measure_decode(ann: Path) -> Timing:
    """Decode every image once."""
    ds = load_dataset(f"coco:{ann}")
    t0 = _clock()
    for img in ds.images:
        read_image(img.path)
    return _since(t0)


def measure_baseline(ann: Path, size: int, overlap: float, out: Path, quality: int) -> Timing:
    """Decode every image once and encode every tile window with the same codec and quality."""
    ds = load_dataset(f"coco:{ann}")
    out.mkdir(parents=True)
    t0 = _clock()
    for img in ds.images:
        pixels = read_image(img.path)
        for w in tile_windows(img.width, img.height, size, overlap):
            crop = pixels[w.y : w.y + w.height, w.x : w.x + w.width]
            write_image(
                out / f"{img.path.stem}_{w.x}_{w.y}{img.path.suffix}", crop, quality=quality
            )
    return _since(t0)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure_sodkit(
    ann: Path, cfg: TileConfig, out: Path, workers: int
) -> tuple[Timing, dict[str, Any]]:
    """``tile_dataset``: CPU time counts this process and its pool (once the pool is closed)."""
    ds = load_dataset(f"coco:{ann}")
    out.mkdir(parents=True)
    c0 = _children_cpu()
    t0 = _clock()
    ex = ProcessExecutor(workers) if workers > 1 else None
    try:
        res = tile_dataset(ds, out, "coco", cfg, executor=ex)
    finally:
        if ex is not None:
            ex.close()
    wall, cpu = _since(t0)
    return (wall, cpu + _children_cpu() - c0), res.counts


def fresh(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a new interpreter, as a command would run: no allocator or cache warmed
    by an earlier measurement (a second decode pass in a warm process skips most page faults)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run_sahi(
    python: str,
    ann: Path,
    img_dir: Path,
    out: Path,
    size: int,
    overlap: float,
    min_ratio: float,
    ext: str,
) -> dict[str, Any] | None:
    if not Path(python).is_file():
        print(
            f"SAHI column skipped: {python} not found (python3 -m venv /tmp/sahi-venv && /tmp/sahi-venv/bin/pip install --no-deps sahi shapely pybboxes ...)"
        )
        return None
    cmd = [
        python,
        "-c",
        SAHI_SCRIPT,
        str(ann),
        str(img_dir),
        str(out),
        str(size),
        str(overlap),
        str(min_ratio),
        ext,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        print(f"SAHI column skipped: it failed:\n{proc.stderr[-2000:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, help="a COCO JSON whose images are in one folder")
    ap.add_argument(
        "--images",
        type=int,
        default=8,
        help="synthetic: images of each size (4000x2250, 1920x1080)",
    )
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--overlap", type=float, default=0.2)
    ap.add_argument(
        "--min-visibility", type=float, default=0.1, help="SAHI's min_area_ratio is the same rule"
    )
    ap.add_argument(
        "--min-area", type=float, default=0.0, help="SAHI has no absolute floor; 0 for parity"
    )
    ap.add_argument("--quality", type=int, default=95)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sahi-python", default="/tmp/sahi-venv/bin/python")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-tiling-"))
    try:
        ann = args.data or make_synthetic(work / "data", args.images)
        ds = load_dataset(f"coco:{ann}")
        img_dir = ds.images[0].path.parent
        n_px = sum(i.width * i.height for i in ds.images)
        print(
            f"data: {len(ds)} images ({n_px / 1e6:.0f} Mpx), {ds.num_annotations} boxes; tiles {args.size}px, overlap {args.overlap}"
        )
        # Every window is written (like SAHI without ignore_negative_samples) so the work matches.
        cfg = TileConfig(
            sizes=(args.size,),
            overlap=args.overlap,
            min_visibility=args.min_visibility,
            min_area=args.min_area,
            keep_empty=1.0,
            quality=args.quality,
        )
        best: dict[str, list[float]] = {}
        counts: dict[str, Any] = {}
        sahi: dict[str, Any] | None = None
        jpeg = ds.images[0].path.suffix.lower() in (".jpg", ".jpeg")

        def keep_best(name: str, t: Timing) -> None:
            old = best.get(name)
            best[name] = [min(old[0], t[0]), min(old[1], t[1])] if old else list(t)

        for r in range(args.repeat):
            keep_best("decode", fresh(measure_decode, ann))
            de = fresh(
                measure_baseline, ann, args.size, args.overlap, work / f"base{r}", args.quality
            )
            keep_best("decode+encode (baseline)", de)
            s1, counts = fresh(measure_sodkit, ann, cfg, work / f"serial{r}", 1)
            keep_best("sodkit tile, serial", s1)
            if args.workers > 1:
                sp, _ = fresh(measure_sodkit, ann, cfg, work / f"pool{r}", args.workers)
                keep_best(f"sodkit tile, {args.workers} processes", sp)
            got = run_sahi(
                args.sahi_python,
                Path(ann),
                img_dir,
                work / f"sahi{r}",
                args.size,
                args.overlap,
                args.min_visibility,
                ".jpg" if jpeg else "",
            )
            if got is not None:
                sahi = got
                keep_best("SAHI slice_coco, serial", (got["seconds"], got["cpu"]))
            for sub in ("base", "serial", "pool", "sahi"):
                shutil.rmtree(work / f"{sub}{r}", ignore_errors=True)
        base = best["decode+encode (baseline)"]
        dec = best["decode"]
        print(
            f"best of {args.repeat}, each run in a fresh process; CPU = CPU time of the run's own"
            " processes (robust on a busy machine)"
        )
        print(
            f"{'':32s} {'wall s':>7s} {'CPU s':>7s} {'wall/base':>9s} {'CPU/base':>9s} {'CPU/decode':>10s}"
        )
        for k, (wall, cpu) in best.items():
            print(
                f"{k:32s} {wall:7.2f} {cpu:7.2f} {wall / base[0]:9.2f} {cpu / base[1]:9.2f} {cpu / dec[1]:10.2f}"
            )
        print(
            f"\nsodkit: {counts['tiles']} tiles, {counts['tile_boxes']} boxes from {counts['source_boxes']}"
            f" (whole {counts['boxes_whole']}, cut {counts['boxes_cut']}, dropped {counts['boxes_dropped']},"
            f" source boxes cut in every tile {counts['source_boxes_cut_everywhere']})"
        )
        if sahi is not None:
            note = " (JPEG tiles at Pillow's default quality 75)" if jpeg else ""
            print(
                f"SAHI:   {sahi['tiles']} tiles ({sahi['small_tiles']} smaller than {args.size}), {sahi['boxes']} boxes{note}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
