"""Dedupe speed, scaling, recall and decisions, each against a baseline measured in this run.

Run from the project root::

    python benchmarks/bench_dedupe.py            # (a) (c) (d) on the shared data, (b) at 1k and 10k
    python benchmarks/bench_dedupe.py --big      # (b) also at 100k tiny generated images

It prints:

(a) dedupe time on the FURG clip frames and on the Roboflow export, cold (empty signature
    cache) and warm, as a ratio to the bare reduced-size decode of the same images
    (``read_reduced(path, 128)`` through the same executor) and to all-pairs SSIM giving the
    same decisions (brute force: every pair scored at 128 px with per-image terms reused,
    timed on a random sample of pairs and extrapolated; said so in the output); and once
    more with every run in a new process, as one CLI run is (pool start and first-run
    costs included, which the medians of runs in one process leave out);
(b) per-image cost and peak memory (max RSS of a fresh process) at 1k, 10k (and 100k)
    generated images with 10 % planted near-duplicates, for SSIM (the default), the colour
    histogram alone (``--hist 0.9``) and both (``--hist 0.9 --combine any``);
(c) recall, on the pairs all-pairs SSIM calls duplicates (> 0.85, 128 px), of a pHash-only
    baseline (64-bit DCT hash, Hamming <= 6 and <= 10) and of ours (candidates and final
    clusters); plus how often working-resolution decisions agree with full-resolution
    SSIM on pairs near the threshold: at 128 px alone and with ``--refine auto``;
(d) on the FURG clip at SSIM 0.85: images kept by greedy, connected and ``--roi objects``,
    and a short sweep;
(e) edited copies of the COCO sample photos (re-encodes, brightness and gain, downscales,
    PNG): SSIM of each kind of copy at full resolution and at 128 px; precision and recall
    of the clusters against the ground truth; and against all-pairs SSIM > 0.85 (every pair
    scored, at 128 px and at full size): recall, pairs left with both images kept, and how
    many drops the reference backs. ``--only copies`` runs this part alone.
"""

from __future__ import annotations

import argparse
import atexit
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# Idle OpenBLAS threads spin for about 0.1 s after each call before they sleep; that counts
# as CPU time without doing work. Let them sleep at once so the CPU figures below count work
# (wall times do not change measurably). Set before NumPy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import cv2
import numpy as np

from curate.core.dataset import Category, Dataset, ImageItem
from curate.core.imageio import read_image, read_reduced
from curate.core.parallel import Executor, make_executor
from curate.dedupe import DedupeOptions, Runtime, SignatureCache, find_duplicates, sweep
from curate.dedupe import ssim as S
from curate.dedupe.index import find_candidates, ssim_radius
from curate.dedupe.pipeline import REFINE_AUTO
from curate.dedupe.signatures import SignatureParams, compute_signature
from curate.io import load_dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SODKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
THRESHOLD = 0.85
REPEAT = 5
#: Pairs sampled for the agreement figure: about half fall within 0.05 of the threshold;
#: with 1,200 the figure moved by 0.01 between samples (0.977 vs 0.988 with 3,000).
AGREE_SAMPLE = 3000


# -- helpers -------------------------------------------------------------------------------------


def _bare(path: str) -> int:
    return int(read_reduced(path, 128).shape[0])


def _thumb(path: str) -> np.ndarray:
    return compute_signature(path, "-", SignatureParams()).thumb


def _brute_rows(job: tuple[list[np.ndarray], int, int, float]) -> list[tuple[int, int, float]]:
    """All pairs (i, j > i) for rows [a, b): those with SSIM above ``floor``."""
    thumbs, a, b, floor = job
    terms = {}

    def t(k: int) -> S.SsimTerms:
        if k not in terms:
            terms[k] = S.terms(thumbs[k])
        return terms[k]

    out = []
    for i in range(a, b):
        for j in range(i + 1, len(thumbs)):
            if thumbs[i].shape == thumbs[j].shape:
                v = S.ssim_terms(t(i), t(j))
            else:
                v = S.ssim(thumbs[i], thumbs[j])
            if v > floor:
                out.append((i, j, v))
    return out


def brute_force(
    thumbs: list[np.ndarray], ex: Executor, floor: float = 0.6
) -> dict[tuple[int, int], float]:
    """Every pair with SSIM > floor (all pairs scored), through the executor."""
    n = len(thumbs)
    # Row blocks of about equal pair counts.
    bounds = [0]
    per = max(1, n * (n - 1) // 2 // 12)
    acc = 0
    for i in range(n):
        acc += n - 1 - i
        if acc >= per:
            bounds.append(i + 1)
            acc = 0
    if bounds[-1] != n:
        bounds.append(n)
    jobs = [(thumbs, a, b, floor) for a, b in itertools.pairwise(bounds)]
    out: dict[tuple[int, int], float] = {}
    for rows in ex.map(_brute_rows, jobs, chunksize=1):
        out.update({(i, j): v for i, j, v in rows})
    return out


def time_pairs(thumbs: list[np.ndarray], rng: np.random.Generator, samples: int = 3000) -> float:
    """Seconds per pair of brute-force SSIM (per-image terms reused), from a random sample."""
    n = len(thumbs)
    a = rng.integers(0, n, samples)
    b = rng.integers(0, n, samples)
    terms = [S.terms(t) for t in thumbs]
    t0 = time.perf_counter()
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        if terms[i].shape == terms[j].shape:
            S.ssim_terms(terms[i], terms[j])
        else:
            S.ssim(thumbs[i], thumbs[j])
    return (time.perf_counter() - t0) / samples


def greedy_reference(n: int, priority: Sequence[int], dup: set[tuple[int, int]]) -> np.ndarray:
    """Kept mask of greedy clustering over a complete duplicate graph (the brute-force answer)."""
    nbrs: dict[int, set[int]] = {}
    for i, j in dup:
        nbrs.setdefault(i, set()).add(j)
        nbrs.setdefault(j, set()).add(i)
    kept = np.zeros(n, bool)
    for i in priority:
        if not any(kept[j] for j in nbrs.get(i, ())):
            kept[i] = True
    return kept


def phash(gray: np.ndarray) -> int:
    """64-bit perceptual hash: 32x32 DCT, top-left 8x8 against its median (as imagehash)."""
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8]
    bits = (low > np.median(low)).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float | None:
    """CPU time (user + system) of this process and all its live descendants (pool workers).

    None without psutil (it comes with Dask's ``distributed``).
    """
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


class Clock:
    """Wall and CPU time of one measured step."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> Clock:
        self._t = time.perf_counter()
        self._c = cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall.append(time.perf_counter() - self._t)
        c = cpu_seconds()
        if c is not None and self._c is not None:
            self.cpu.append(c - self._c)

    def median(self) -> tuple[float, float | None]:
        cpu = float(np.median(self.cpu)) if self.cpu else None
        return float(np.median(self.wall)), cpu


# -- (a) (c) (d) on real data --------------------------------------------------------------------


def real_set(
    name: str, spec: str, ds: Dataset, ex: Executor, rng: np.random.Generator, brute: bool
) -> dict:
    paths = [str(i.path) for i in ds.images]
    n = len(paths)
    list(ex.map(_bare, paths[:64]))  # warm the pool
    bare_clock, cold_clock, warm_clock = Clock(), Clock(), Clock()
    for _ in range(REPEAT):
        # Medians of REPEAT runs: this machine is shared and single runs vary by 2-3x.
        with bare_clock:
            list(ex.map(_bare, paths))
        with tempfile.TemporaryDirectory() as cache_dir:
            cache = SignatureCache(cache_dir)
            with cold_clock:
                plan = find_duplicates(
                    ds, DedupeOptions(), runtime=Runtime(executor=ex, cache=cache)
                )
                cache.close()  # the background cache writes are part of the cold run
            with warm_clock:
                find_duplicates(ds, DedupeOptions(), runtime=Runtime(executor=ex, cache=cache))
            cache.close()
    (bare, bare_cpu), (cold, cold_cpu), (warm, _) = (
        c.median() for c in (bare_clock, cold_clock, warm_clock)
    )
    cold_runs, warm_runs = cold_clock.wall, warm_clock.wall
    t0 = time.perf_counter()
    for p in paths[: min(n, 300)]:
        _bare(p)
    bare_serial = (time.perf_counter() - t0) / min(n, 300) * n
    thumbs = [s.thumb for s in plan.signatures]  # type: ignore[union-attr]
    per_pair = time_pairs(thumbs, rng)
    all_pairs = n * (n - 1) // 2
    workers = getattr(ex, "workers", 1)
    brute_est = bare + all_pairs * per_pair / workers
    print(f"\n== {name}: {n} images, {all_pairs:,} pairs")
    print(
        f"  medians of {REPEAT} runs; bare reduced decode (128 px, {workers} workers): "
        f"{bare:.2f} s (serial {bare_serial:.2f} s)"
    )
    runs = ", ".join(f"{c:.2f}/{w:.2f}" for c, w in zip(cold_runs, warm_runs, strict=True))
    print(
        f"  dedupe cold cache: {cold:.2f} s  = {cold / bare:.2f}x bare decode ({cold / bare_serial:.2f}x serial)"
    )
    print(
        f"  dedupe warm cache: {warm:.2f} s  = {warm / bare:.2f}x bare decode   (cold/warm runs: {runs})"
    )
    if bare_cpu and cold_cpu:
        print(
            f"  CPU time (all processes): bare decode {bare_cpu:.2f} s, dedupe cold {cold_cpu:.2f} s "
            f"= {cold_cpu / bare_cpu:.2f}x: with perfect use of {workers} cores the wall-time ratio "
            f"could not go below about {cold_cpu / workers / bare:.2f}x"
        )
    st = plan.stats
    print(
        f"    signatures {st['signatures_s']:.2f} s, exact copies and features {st['prepare_s']:.2f} s, "
        f"search and clustering {st['cluster_s']:.2f} s ({st['candidates']:,} candidate pairs "
        f"found, {st['index_method']}; {st['pairs_scored']:,} pairs scored)"
    )
    fresh_processes(spec, workers)
    print(
        f"  brute force (estimated from {3000} timed pairs: {per_pair * 1e6:.0f} us/pair): "
        f"{brute_est:.1f} s -> dedupe is {brute_est / cold:.0f}x faster (cold)"
    )
    out = {"plan": plan, "thumbs": thumbs, "bare": bare, "cold": cold, "warm": warm}
    if brute:
        t0 = time.perf_counter()
        bf = brute_force(thumbs, ex)
        took = time.perf_counter() - t0
        print(f"  brute force measured: {took:.1f} s for all {all_pairs:,} pairs (+ decode)")
        pos = {k for k, v in bf.items() if v > THRESHOLD}
        kept_ref = greedy_reference(n, plan.priority, pos)
        same = np.array_equal(kept_ref, plan.resolution.kept)
        print(
            f"  same kept set as brute-force greedy: {'yes' if same else 'NO'}"
            f" ({int(kept_ref.sum())} vs {int(plan.resolution.kept.sum())})"
        )
        out["brute"] = bf
    return out


def recall_section(name: str, res: dict, ds: Dataset) -> None:
    bf = res.get("brute")
    if bf is None:
        return
    plan, thumbs = res["plan"], res["thumbs"]
    pos = {k for k, v in bf.items() if v > THRESHOLD}
    n = len(thumbs)
    feats = np.stack([s.feature for s in plan.signatures]).astype(np.float32)  # type: ignore[union-attr]
    cands = find_candidates(feats, ssim_radius(THRESHOLD), method="exact")
    cset = set(zip(cands.i.tolist(), cands.j.tolist(), strict=True))
    lsh = find_candidates(feats, ssim_radius(THRESHOLD), method="lsh")
    lset = set(zip(lsh.i.tolist(), lsh.j.tolist(), strict=True))
    conn = find_duplicates(ds, DedupeOptions(cluster="connected"))
    cl = conn.resolution.cluster
    together = sum(cl[i] == cl[j] for i, j in pos)
    hashes = [phash(t) for t in thumbs]
    print(f"\n== recall on {name}: {len(pos):,} pairs with SSIM > {THRESHOLD} (all pairs scored)")
    if pos:
        print(
            f"  ours, candidate pairs (exact index): {len(pos & cset) / len(pos):.4f}"
            f"  ({len(cset):,} candidates = {len(cset) / max(1, n * (n - 1) // 2):.1%} of pairs)"
        )
        print(f"  ours, candidate pairs (LSH forced): {len(pos & lset) / len(pos):.4f}")
        print(
            f"  ours, connected clusters hold both images: {together / len(pos):.4f}; "
            "precision of every scored decision: 1.0000 (each is the exact SSIM)"
        )
        for ham in (6, 10):
            hits = {
                (i, j)
                for i, j in itertools.combinations(range(n), 2)
                if bin(hashes[i] ^ hashes[j]).count("1") <= ham
            }
            rec = len(hits & pos) / len(pos)
            prec = len(hits & pos) / len(hits) if hits else 1.0
            print(f"  pHash only, Hamming <= {ham:2d}: recall {rec:.4f}, precision {prec:.4f}")


def agreement_section(
    name: str, ds: Dataset, res: dict, ex: Executor, rng: np.random.Generator
) -> None:
    """Working-resolution vs full-resolution decisions on pairs near the threshold.

    Population: pairs whose full-resolution SSIM is within 0.05 of the threshold, found
    by sampling :data:`AGREE_SAMPLE` pairs uniformly among the pairs with 128 px SSIM above
    0.6 (all-pairs scored): full-resolution SSIM near 0.85 was never seen below that.
    """
    bf = res.get("brute")
    if not bf:
        return
    items = ds.images
    pool = [k for k, v in bf.items() if v > 0.6]
    if not pool:
        return
    pick = [pool[i] for i in rng.choice(len(pool), min(AGREE_SAMPLE, len(pool)), replace=False)]
    full: dict[int, np.ndarray] = {}

    def g(k: int) -> np.ndarray:
        if k not in full:
            full[k] = S.to_gray(read_image(items[k].path))
        return full[k]

    full_s = np.array([S.ssim(g(a), g(b)) for a, b in pick])
    work = np.array([bf[k] for k in pick])
    band = np.abs(full_s - THRESHOLD) <= 0.05
    err = work - full_s
    print(
        f"\n== {name}: working (128 px) vs full-resolution SSIM on {len(pick)} sampled pairs "
        f"(128 px SSIM > 0.6); {int(band.sum())} have full SSIM within 0.05 of {THRESHOLD}"
    )
    print(
        f"  128 px minus full: 1st-99th percentile {np.quantile(err, 0.01):+.3f} .. "
        f"{np.quantile(err, 0.99):+.3f}, extremes {err.min():+.3f} .. {err.max():+.3f}"
    )
    if not band.any():
        return

    def agree(below: float, above: float) -> float:
        refine = (work >= THRESHOLD - below) & (work <= THRESHOLD + above)
        decided = np.where(refine, full_s, work)
        return float(((decided > THRESHOLD) == (full_s > THRESHOLD))[band].mean())

    lo, hi = REFINE_AUTO
    print(
        f"  decisions agree: {agree(0, 0):.3f} at 128 px alone; {agree(0.1, 0.1):.3f} with "
        f"--refine-band 0.1; {agree(lo, hi):.3f} with --refine auto [T-{lo}, T+{hi}] (goal >= 0.98)"
    )
    with tempfile.TemporaryDirectory() as cache_dir:
        rt = Runtime(executor=ex, cache=SignatureCache(cache_dir))
        find_duplicates(ds, DedupeOptions(), runtime=rt)
        t0 = time.perf_counter()
        base = find_duplicates(ds, DedupeOptions(), runtime=rt)
        t_base = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = find_duplicates(ds, DedupeOptions(refine="auto"), runtime=rt)
        t_ref = time.perf_counter() - t0
    n_ref = ref.stats["pairs_refined"]
    print(
        f"  a run with --refine auto (warm cache): {t_ref:.2f} s vs {t_base:.2f} s "
        f"= {t_ref / res['bare']:.1f}x the bare decode; {ref.stats['pairs_scored']:,} pairs "
        f"scored, {n_ref:,} at full size; kept {len(ref.kept_new())} vs {len(base.kept_new())}"
    )


def _variants(rgb: np.ndarray) -> dict[str, tuple[np.ndarray, int | None]]:
    """Edited copies of one photo: re-encodes, brightness and gain changes, downscales, PNG."""
    h, w = rgb.shape[:2]

    def shift(d: float, gain: float = 1.0) -> np.ndarray:
        return np.clip(rgb.astype(np.float32) * gain + d, 0, 255).astype(np.uint8)

    def down(k: int) -> np.ndarray:
        return cv2.resize(rgb, (w // k, h // k), interpolation=cv2.INTER_AREA)

    return {
        "q20": (rgb, 20),
        "q50": (rgb, 50),
        "q75": (rgb, 75),
        "bright+20": (shift(20), 90),
        "bright+40": (shift(40), 90),
        "bright-40": (shift(-40), 90),
        "gain0.7": (shift(0, 0.7), 90),
        "gain1.3": (shift(0, 1.3), 90),
        "half": (down(2), 90),
        "quarter": (down(4), 90),
        "png": (rgb, None),
    }


def all_pairs_full(grays: Sequence[np.ndarray], threshold: float) -> set[tuple[int, int]]:
    """Pairs whose full-resolution SSIM exceeds ``threshold``, every pair scored.

    A pair is compared at the smaller height and width of the two (as
    :func:`curate.dedupe.ssim.ssim` does); pairs are grouped by that shape so each image's
    terms are computed once per shape and only one shape's terms are held at a time.
    """
    by_shape: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for a, b in itertools.combinations(range(len(grays)), 2):
        shape = S.common_shape(grays[a].shape, grays[b].shape)  # type: ignore[arg-type]
        by_shape.setdefault(shape, []).append((a, b))
    out = set()
    for shape, pairs in by_shape.items():
        terms = {k: S.terms(S.resize_gray(grays[k], shape)) for k in {k for p in pairs for k in p}}
        out.update((a, b) for a, b in pairs if S.ssim_terms(terms[a], terms[b]) > threshold)
    return out


def near_duplicates_section(ex: Executor) -> None:
    """(e) Copies of real photos with known ground truth: clusters vs truth, scales vs each other."""
    from PIL import Image

    src = sorted((SHARED / "coco-seg-sample" / "images").glob("*.jpg"))
    if not src:
        return
    folder = Path(tempfile.mkdtemp(prefix="sodkit-variants-"))
    try:
        items, group, kind = [], [], []
        for g, path in enumerate(src):
            rgb = read_image(path)
            shutil.copyfile(path, folder / path.name)
            items.append(ImageItem(path.name, folder / path.name, rgb.shape[1], rgb.shape[0]))
            group.append(g)
            kind.append("original")
            for name, (arr, quality) in _variants(rgb).items():
                out = folder / f"{path.stem}_{name}.{'png' if quality is None else 'jpg'}"
                Image.fromarray(arr).save(out, **({} if quality is None else {"quality": quality}))
                items.append(ImageItem(out.name, out, arr.shape[1], arr.shape[0]))
                group.append(g)
                kind.append(name)
        ds = Dataset([Category(0, "object")], items)
        n = len(items)
        print(
            f"\n== near-duplicates of real photos: {len(src)} COCO photos x {len(kind) // len(src) - 1} "
            f"edited copies = {n} images (ground truth: copies of one photo)"
        )
        thumbs = [S.to_gray(read_reduced(i.path, 128)) for i in items]
        grays = [S.to_gray(read_image(i.path)) for i in items]
        per_kind: dict[str, list[tuple[float, float]]] = {}
        full: dict[tuple[int, int], float] = {}
        for k in range(n):
            if kind[k] != "original":
                o = group.index(group[k])
                full[(o, k)] = S.ssim(grays[o], grays[k])
                per_kind.setdefault(kind[k], []).append(
                    (full[(o, k)], S.ssim(thumbs[o], thumbs[k]))
                )
        print("  SSIM of each copy to its original, full resolution / 128 px (min .. max):")
        for name, v in per_kind.items():
            a = np.array(v)
            print(
                f"    {name:10s} full {a[:, 0].min():.3f} .. {a[:, 0].max():.3f}   "
                f"128 px {a[:, 1].min():.3f} .. {a[:, 1].max():.3f}"
            )
        pairs = list(itertools.combinations(range(n), 2))
        truth = {(a, b) for a, b in pairs if group[a] == group[b]}
        t0 = time.perf_counter()
        brute = {
            "all-pairs 128 px": {
                (a, b) for a, b in pairs if S.ssim(thumbs[a], thumbs[b]) > THRESHOLD
            },
            "all-pairs full size": all_pairs_full(grays, THRESHOLD),
        }
        print(
            f"  references: ground truth {len(truth):,} pairs; all {len(pairs):,} pairs scored "
            f"({time.perf_counter() - t0:.0f} s): SSIM > {THRESHOLD} at 128 px "
            f"{len(brute['all-pairs 128 px']):,}, at full size {len(brute['all-pairs full size']):,}"
        )
        print(
            "  per mode: against the ground truth, precision / recall of the pairs put in one "
            "cluster;\n  against each all-pairs reference: recall of its pairs (in one cluster), "
            "its pairs whose two images\n  both survive (greedy promises none at 128 px), and "
            "the share of drops whose deciding pair it backs"
        )
        for label, opts in (
            ("greedy", DedupeOptions()),
            ("connected", DedupeOptions(cluster="connected")),
            ("greedy --refine auto", DedupeOptions(refine="auto")),
            ("connected --refine auto", DedupeOptions(cluster="connected", refine="auto")),
        ):
            res = find_duplicates(ds, opts, runtime=Runtime(executor=ex)).resolution
            cl, kept = res.cluster, res.kept
            pred = {(a, b) for a, b in pairs if cl[a] == cl[b]}
            drops = [(min(i, j), max(i, j)) for i, j in enumerate(res.link.tolist()) if j >= 0]
            hit = len(pred & truth)
            cells = [f"truth {hit / max(1, len(pred)):.3f} / {hit / len(truth):.3f}"]
            for ref_name, ref in brute.items():
                both = sum(1 for a, b in ref if kept[a] and kept[b])
                backed = sum(p in ref for p in drops) / max(1, len(drops))
                cells.append(
                    f"{ref_name}: recall {len(pred & ref) / max(1, len(ref)):.3f}, "
                    f"both kept {both}, drops backed {backed:.3f}"
                )
            print(f"  {label:24s} " + "; ".join(cells))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def furg_modes(ds: Dataset, ex: Executor) -> None:
    rt = Runtime(executor=ex)
    print("\n== FURG house6 at SSIM 0.85: images kept of", len(ds))
    for label, opts in (
        ("greedy", DedupeOptions()),
        ("connected", DedupeOptions(cluster="connected")),
        ("greedy --roi objects", DedupeOptions(roi="objects")),
        ("connected --roi objects", DedupeOptions(roi="objects", cluster="connected")),
        ("greedy --roi objects --frame-window 30", DedupeOptions(roi="objects", frame_window=30)),
    ):
        t0 = time.perf_counter()
        plan = find_duplicates(ds, opts, runtime=rt)
        print(
            f"  {label:40s} {len(plan.kept_new()):4d}   ({time.perf_counter() - t0:.1f} s, "
            f"{plan.stats['pairs_scored']:,} pairs scored)"
        )
    rows = sweep(ds, DedupeOptions(), [0.85, 0.90, 0.93, 0.95, 0.97], runtime=rt)
    print(
        "  sweep (threshold: greedy / connected): "
        + ", ".join(f"{r.threshold:.2f}: {r.kept_greedy}/{r.kept_connected}" for r in rows)
    )


# -- (b) scaling ---------------------------------------------------------------------------------


def generate(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` tiny JPEG scenes (64x48), every tenth a near-duplicate of an earlier one."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    scenes: list[np.ndarray] = []
    for k in range(n):
        p = folder / f"g{k:06d}.jpg"
        if k % 10 == 9 and scenes:
            src = scenes[int(rng.integers(0, len(scenes)))]
            img = np.clip(src.astype(int) + int(rng.integers(-15, 16)), 0, 255).astype(np.uint8)
            quality = 70
        else:
            img = _scene(rng)
            scenes.append(img)
            if len(scenes) > 1000:
                scenes.pop(0)
            quality = 90
        if not p.exists():
            cv2.imwrite(
                str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
            )
        paths.append(p)
    return paths


def _scene(rng: np.random.Generator, h: int = 48, w: int = 64) -> np.ndarray:
    """A small textured scene: blocky colours, a smooth texture, rectangles, grain."""
    img = cv2.resize(
        rng.uniform(0, 255, (6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST
    )
    tex = cv2.resize(rng.uniform(-60, 60, (h // 4, w // 4)).astype(np.float32), (w, h))
    img += tex[:, :, None]
    for _ in range(int(rng.integers(3, 7))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(
            img,
            (x, y),
            (x + int(rng.integers(4, 24)), y + int(rng.integers(4, 18))),
            rng.uniform(0, 255, 3).tolist(),
            -1,
        )
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _child(*args: str) -> dict:
    """Run this script in a new process with ``args``; the JSON of its last output line."""
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def fresh_child(mode: str, spec: str, workers: int) -> None:
    """Run in a fresh process, as one CLI run is: start a pool, then either the bare reduced
    decode of every image or a dedupe with an empty cache; print the seconds as JSON."""
    ds = load_dataset(spec)
    paths = [str(i.path) for i in ds.images]
    t0 = time.perf_counter()
    with make_executor(workers) as ex, tempfile.TemporaryDirectory() as cache_dir:
        if mode == "bare":
            list(ex.map(_bare, paths))
        else:
            cache = SignatureCache(cache_dir)
            find_duplicates(ds, DedupeOptions(), runtime=Runtime(executor=ex, cache=cache))
            cache.close()
        took = time.perf_counter() - t0
    print(json.dumps({"seconds": took}))


def fresh_processes(spec: str, workers: int, repeat: int = 3) -> None:
    """(a) once more, each run in a new process: pool start and first-run costs included."""
    runs: dict[str, list[tuple[float, float]]] = {"bare": [], "dedupe": []}
    for _ in range(repeat):
        for mode in runs:
            t0 = time.perf_counter()
            out = _child("--fresh-child", mode, spec, str(workers))
            runs[mode].append((out["seconds"], time.perf_counter() - t0))
    (bare, bare_all), (dd, dd_all) = (np.median(np.array(runs[m]), axis=0) for m in runs)
    print(
        f"  in a new process each (like one CLI run; medians of {repeat}): pool start + bare decode "
        f"{bare:.2f} s, pool start + dedupe cold {dd:.2f} s = {dd / bare:.2f}x; whole processes "
        f"with Python start, imports and loading the dataset: {bare_all:.2f} s vs {dd_all:.2f} s "
        f"= {dd_all / bare_all:.2f}x"
    )


#: The methods the scaling part runs: the default, the histogram alone, both (either agrees).
SCALE_METHODS = {
    "ssim": DedupeOptions(),
    "hist": DedupeOptions(ssim=None, hist=0.9),
    "ssim+hist": DedupeOptions(ssim=0.85, hist=0.9, combine="any"),
}


def scale_child(folder: str, n: int, workers: int, method: str) -> None:
    """Run in a fresh process: dedupe the first ``n`` generated images; print JSON."""
    paths = sorted(Path(folder).glob("g*.jpg"))[:n]
    items = [ImageItem(p.name, p, 64, 48) for p in paths]
    ds = Dataset([Category(0, "x")], items)
    with make_executor(workers) as ex, tempfile.TemporaryDirectory() as cache_dir:
        list(ex.map(_bare, [str(p) for p in paths[:64]]))
        t0 = time.perf_counter()
        list(ex.map(_bare, [str(p) for p in paths]))
        bare = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = find_duplicates(
            ds,
            SCALE_METHODS[method],
            runtime=Runtime(executor=ex, cache=SignatureCache(cache_dir)),
        )
        took = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "n": n,
                "seconds": took,
                "bare": bare,
                "dropped": len(plan.dropped()),
                "rss_mb": rss_mb(),
                "stats": {k: v for k, v in plan.stats.items() if not isinstance(v, dict)},
            }
        )
    )


def scaling(sizes: Sequence[int], workers: int, keep: Path | None) -> None:
    folder = keep or Path(tempfile.mkdtemp(prefix="sodkit-bench-"))
    try:
        t0 = time.perf_counter()
        generate(folder, max(sizes))
        print(
            f"\n== scaling on generated 64x48 JPEGs (10 % near-duplicates; generated in {time.perf_counter() - t0:.0f} s)"
        )
        print(
            f"  {'method':>9} {'images':>7} {'s total':>8} {'us/image':>9} {'x bare':>7} {'index':>10} {'cands':>9} {'scored':>8} {'dropped':>8} {'peak RSS MB':>12}"
        )
        for method in SCALE_METHODS:
            base = None
            for n in sizes:
                r = _child("--scale-child", str(folder), str(n), str(workers), method)
                per = r["seconds"] / n * 1e6
                base = base or per
                st = r["stats"]
                print(
                    f"  {method:>9} {n:7d} {r['seconds']:8.1f} {per:9.0f} {r['seconds'] / r['bare']:7.2f} {st['index_method'] + ('+proj' if st.get('projected') else ''):>10} "
                    f"{st['candidates']:9d} {st['pairs_scored']:8d} {r['dropped']:8d} {r['rss_mb']:12.0f}"
                    f"   (per image {per / base:.2f}x that of the first size)"
                )
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--big", action="store_true", help="also scale to 100k generated images")
    ap.add_argument("--no-brute", action="store_true", help="skip the measured all-pairs SSIM")
    ap.add_argument("--keep-generated", type=Path, help="generate into (and keep) this folder")
    ap.add_argument(
        "--only", choices=["real", "scale", "copies"], help="run one part ((e) alone: copies)"
    )
    ap.add_argument("--scale-child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--fresh-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.fresh_child:
        mode, spec, workers = args.fresh_child
        fresh_child(mode, spec, int(workers))
        return
    if args.scale_child:
        folder, n, workers, method = args.scale_child
        scale_child(folder, int(n), int(workers), method)
        return
    rng = np.random.default_rng(0)
    if args.only == "copies":
        with make_executor(args.workers) as ex:
            near_duplicates_section(ex)
        return
    if args.only != "scale":
        # The frame cache of a run that brought none: removed at exit.
        cache_root = Path(tempfile.mkdtemp(prefix="sodkit-bench-cache-"))
        atexit.register(shutil.rmtree, cache_root, True)
        os.environ.setdefault("SODKIT_CACHE_DIR", str(cache_root))
        furg_spec = f"video:{SHARED / 'furg-fire-video'}"
        rf_spec = str(SHARED / "roboflow-fire-smoke")
        furg, rf = load_dataset(furg_spec), load_dataset(rf_spec)
        with make_executor(args.workers) as ex:
            brute = not args.no_brute
            r_furg = real_set("FURG house6 frames", furg_spec, furg, ex, rng, brute)
            r_rf = real_set("Roboflow fire export", rf_spec, rf, ex, rng, brute)
            recall_section("FURG", r_furg, furg)
            recall_section("Roboflow", r_rf, rf)
            agreement_section("FURG", furg, r_furg, ex, rng)
            agreement_section("Roboflow", rf, r_rf, ex, rng)
            furg_modes(furg, ex)
            near_duplicates_section(ex)
    if args.only != "real":
        sizes = [1000, 10000] + ([100000] if args.big else [])
        scaling(sizes, args.workers, args.keep_generated)


if __name__ == "__main__":
    main()
