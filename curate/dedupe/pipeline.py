"""Dedupe end to end: signatures, candidates, scores, clusters; plans, sweeps and leaks.

:func:`find_duplicates` returns a :class:`DedupePlan` (what would be kept and dropped,
and why) without writing anything; :func:`write_deduped` writes the kept images, the
manifest and the cluster report atomically. :func:`sweep` counts kept images over a
range of thresholds for both cluster modes, and :func:`find_leaks` finds near-duplicates
that sit in different splits. All of them take the executor, progress and error policy
from the caller (:class:`Runtime`).
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, overload

import cv2
import numpy as np
from numpy.typing import NDArray

from curate.core.dataset import Dataset, ImageItem
from curate.core.errors import ErrorPolicy, ItemFailure, UsageError
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.output import Manifest, atomic_output
from curate.core.parallel import Executor
from curate.core.progress import LabelledProgress, NullProgress, Progress
from curate.dedupe import cluster as C
from curate.dedupe.hist import NUM_BINS, index_features, index_radius, is_gray
from curate.dedupe.index import (
    EXACT_LIMIT,
    FEATURE_DIM,
    RADIUS_SCALE,
    Candidates,
    IndexMethod,
    find_candidates,
    lsh_params,
    ssim_radius,
)
from curate.dedupe.labels import Placement, placement
from curate.dedupe.neighbours import PairFilter, Search, Space, in_radii
from curate.dedupe.roi import DEFAULT_ROI_SIZE, BoxMatcher, normalized_boxes, roi_task
from curate.dedupe.signatures import (
    Signature,
    SignatureCache,
    SignatureParams,
    StoreBatches,
    compute_pixel_hashes,
    compute_sharpness,
    crops_key,
    extract_signatures,
    quality_step,
)
from curate.dedupe.ssim import common_shape, resize_gray
from curate.dedupe.verify import Scorer, VerifyItem, VerifySpec
from curate.formats.base import WriteOptions
from curate.io import get_format, write_dataset

KeepPolicy = Literal["most-annotations", "largest", "sharpest", "first"]
RoiMode = Literal["none", "objects"]
RefineMode = Literal["none", "auto"]
#: ``--refine auto``: working-resolution SSIM in [T - 0.15, T + 0.07] is re-scored at full
#: resolution. Measured on the Roboflow fire export and the FURG clip (benchmarks/
#: bench_dedupe.py): 128 px SSIM minus full-resolution SSIM ran from -0.23 to +0.17
#: (1st-99th percentile -0.20 to +0.07); this band makes >= 98 % of decisions on pairs
#: within 0.05 of the threshold agree with full resolution.
REFINE_AUTO = (0.15, 0.07)
KEEP_POLICIES: tuple[str, ...] = ("most-annotations", "largest", "sharpest", "first")
DEFAULT_SSIM = 0.85
#: A JPEG and a PNG of the same pixels decode to different thumbnails (DCT scaling vs box
#: resize): SSIM 0.91-1.0 at 128 px, feature distance at most 0.25 on real photos. The
#: search for such pairs uses the radius of SSIM 0.9 (0.66).
EXACT_SEARCH_SSIM = 0.9
#: Mean absolute thumbnail difference below which a JPEG and a non-JPEG of the same size
#: may hold the same pixels (measured up to 7 on real photos).
PIXEL_CHECK_MAD = 12.0
SWEEP_THRESHOLDS = (0.80, 0.82, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96, 0.98)


@dataclass(frozen=True)
class DedupeOptions:
    """What counts as a duplicate and what to keep. ``resolved()`` fills the defaults."""

    ssim: float | None = None
    hist: float | None = None
    exact_only: bool = False
    combine: C.Combine = "all"
    cluster: C.ClusterMode = "greedy"
    keep: KeepPolicy = "most-annotations"
    roi: RoiMode = "none"
    roi_iou: float = 0.5
    roi_ssim: float | None = None
    roi_size: int = DEFAULT_ROI_SIZE
    frame_window: int | None = None
    merge_labels: bool = False
    size: int = 128
    refine: RefineMode = "none"
    refine_band: float = 0.0
    index: IndexMethod = "auto"
    radius_scale: float = RADIUS_SCALE
    seed: int = 0
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    #: Class names to compare as one (``--class-map``): pairs (normalised name, class),
    #: applied after :func:`curate.merge.normalize_name`. Only comparisons use it: the
    #: output keeps the dataset's own classes.
    class_map: tuple[tuple[str, str], ...] = ()

    def resolved(self) -> DedupeOptions:
        """SSIM 0.85 when no method is named; no similarity test with ``exact_only``."""
        self.check()
        if self.exact_only:
            return replace(self, ssim=None, hist=None, roi="none")
        if self.ssim is None and self.hist is None:
            return replace(self, ssim=DEFAULT_SSIM)
        return self

    def check(self) -> None:
        """Raise :class:`UsageError` for values that cannot work."""
        for name in ("ssim", "hist", "roi_ssim"):
            v = getattr(self, name)
            if v is not None and not 0.0 < v < 1.0:
                raise UsageError(
                    f"--{name.replace('_', '-')} {v}: must be between 0 and 1 (exclusive)"
                )
        if not 0.0 < self.roi_iou <= 1.0:
            raise UsageError(f"--roi-iou {self.roi_iou}: must be in (0, 1]")
        if self.keep not in KEEP_POLICIES:
            raise UsageError(f"--keep {self.keep}: choose one of {', '.join(KEEP_POLICIES)}")
        if self.size < 32:
            raise UsageError(f"--size {self.size}: the working resolution must be at least 32 px")
        if self.refine_band < 0 or self.refine_band >= 1:
            raise UsageError(f"--refine-band {self.refine_band}: must be in [0, 1)")
        if self.refine not in ("none", "auto"):
            raise UsageError(f"--refine {self.refine}: choose none or auto")
        if self.refine == "auto" and self.refine_band > 0:
            raise UsageError("--refine auto sets its own band; leave out --refine-band")
        if self.frame_window is not None and self.frame_window < 1:
            raise UsageError(f"--frame-window {self.frame_window}: must be at least 1 frame")
        if self.exact_only and (self.ssim is not None or self.hist is not None):
            raise UsageError(
                "--exact keeps exact copies only; leave out --ssim/--hist or drop --exact"
            )

    @property
    def refines(self) -> bool:
        """Whether some pairs are re-scored at full resolution (--refine or --refine-band)."""
        return self.refine == "auto" or self.refine_band > 0

    @property
    def refine_offsets(self) -> tuple[float, float]:
        """How far below and above the threshold working-resolution SSIM is re-scored."""
        if self.refine == "auto":
            return REFINE_AUTO
        return (self.refine_band, self.refine_band)

    @overload
    def working_threshold(self, threshold: float) -> float: ...
    @overload
    def working_threshold(self, threshold: None) -> None: ...
    def working_threshold(self, threshold: float | None) -> float | None:
        """The lowest working-resolution SSIM that can still be a duplicate at ``threshold``
        (lower by the refinement band: such pairs are re-scored at full resolution)."""
        if threshold is None:
            return None
        return max(0.01, threshold - self.refine_offsets[0])

    def rule(self, threshold: float | None = None) -> C.DuplicateRule:
        """The duplicate rule, with the swept method's threshold replaced by ``threshold``."""
        o = self.resolved()
        ssim, hist = o.ssim, o.hist
        if threshold is not None:
            if ssim is not None:
                ssim = threshold
            else:
                hist = threshold
        roi_t = (
            o.roi_ssim if o.roi_ssim is not None else (ssim if ssim is not None else DEFAULT_SSIM)
        )
        return C.DuplicateRule(
            ssim=ssim,
            hist=hist,
            combine=o.combine,
            roi=o.roi == "objects",
            roi_ssim=roi_t,
            exact_only=o.exact_only,
        )


@dataclass
class Runtime:
    """What the caller decides: executor, progress, error policy and signature cache."""

    executor: Executor | None = None
    progress: Progress = field(default_factory=NullProgress)
    policy: ErrorPolicy = field(default_factory=ErrorPolicy)
    cache: SignatureCache | None = None


@dataclass
class _Prepared:
    images: list[ImageItem]
    is_ref: NDArray[np.bool_]
    sigs: list[Signature | None]
    active: NDArray[np.bool_]
    features: NDArray[np.float32]
    hist_features: NDArray[np.float32] | None
    exact_pairs: list[tuple[int, int]]
    keep_pair: PairFilter | None
    scorer: Scorer
    priority: list[int]
    names: list[list[str]]
    stats: dict[str, Any]
    sharpness: list[float | None] | None
    listed: Candidates | None = None
    #: Each image's sort key of the keep policy (see :func:`_priority_keys`).
    keys: list[tuple[float, ...]] = field(default_factory=list)
    #: The feature spaces, built once (see :func:`_spaces`).
    spaces: list[Space] = field(default_factory=list)
    #: Thumbnails at CENTRAL_SIDE, by image, as :func:`_thumb_vectors` made them.
    small: dict[int, NDArray[np.uint8]] = field(default_factory=dict)


#: What each position of a policy's sort key (:func:`_priority_keys`) stands for, as the
#: report's ``kept_reason`` names the one that broke a tie.
KEY_NAMES: dict[str, tuple[str, ...]] = {
    "most-annotations": ("reference", "annotations", "size", "colour over gray", "JPEG quality"),
    "largest": ("reference", "size", "annotations", "colour over gray", "JPEG quality"),
}


def _priority_keys(
    images: Sequence[ImageItem],
    sigs: Sequence[Signature | None],
    is_ref: NDArray[np.bool_],
    keep: str,
    sharpness: Sequence[float | None] | None = None,
) -> list[tuple[float, ...]]:
    """Sort keys per image, the most deserving of being kept lowest (:func:`priority_order
    <curate.dedupe.cluster.priority_order>` adds dataset order): reference images, then the
    keep policy, then colour over gray (:func:`curate.dedupe.hist.is_gray`: a gray copy of a
    colour photo has lost the main cue for fire), then the less compressed copy
    (:func:`quality_step`); among images still tied, the one most central to its cluster
    goes first (:func:`_resolve_central`), then dataset order. ``sharpest`` ranks heavily compressed copies
    below the others first (JPEG blocking raises the Laplacian variance), then gray copies,
    then by ``sharpness`` (from :func:`_sharpness`; an image without a value ranks last;
    within :data:`SHARP_TIE` a tie, see :func:`_ties`), then by pixels. ``first`` is dataset
    order alone."""
    keys: list[tuple[float, ...]] = []
    for k, (img, sig, ref) in enumerate(zip(images, sigs, is_ref, strict=True)):
        w, h = (sig.width, sig.height) if sig is not None else (img.width, img.height)
        pixels = float(w * h)
        n_ann = float(len(img.annotations))
        quality = float(quality_step(sig.quality)) if sig is not None else 0.0
        gray = 1.0 if sig is not None and is_gray(sig.hist) else 0.0
        value = sharpness[k] if sharpness is not None else None
        sharp = value if value is not None else -np.inf
        first = 0.0 if ref else 1.0
        if keep == "most-annotations":
            keys.append((first, -n_ann, -pixels, gray, -quality))
        elif keep == "largest":
            keys.append((first, -pixels, -n_ann, gray, -quality))
        elif keep == "sharpest":
            keys.append((first, -quality, gray, -sharp, -pixels))
        else:
            keys.append((first,))
    return keys


def _prepare(
    images: list[ImageItem],
    is_ref: NDArray[np.bool_],
    options: DedupeOptions,
    names: list[list[str]],
    runtime: Runtime,
    thresholds: Sequence[float],
) -> _Prepared:
    """Signatures, exact copies, features and a scorer for ``images`` (reference images first)."""
    o = options.resolved()
    prog = runtime.progress
    stats: dict[str, Any] = {}
    t0 = time.perf_counter()
    params = SignatureParams(size=o.size, max_pixels=o.max_pixels)
    ext = extract_signatures(
        [img.path for img in images],
        params,
        executor=runtime.executor,
        progress=prog,
        cache=runtime.cache,
        sizes=[
            (img.width, img.height) if img.width > 0 and img.height > 0 else None for img in images
        ],
    )
    for i in sorted(ext.failures):
        # An image that cannot be decoded is not compared and not written.
        ref = {"against": True} if is_ref[i] else {}
        runtime.policy.handle(
            ext.failures[i],
            left_out=images[i].path,
            left_out_annotations=len(images[i].annotations),
            **ref,
        )
    sigs = ext.signatures
    active = np.array([s is not None for s in sigs], bool)
    stats["signatures_s"] = time.perf_counter() - t0
    stats["cache_hits"] = ext.cache_hits

    t1 = time.perf_counter()
    n = len(images)
    features = np.zeros((n, FEATURE_DIM), np.float32)
    for i, sig in enumerate(sigs):
        if sig is not None:
            features[i] = sig.feature
    hist_features = None
    if o.hist is not None:
        hists = np.zeros((n, NUM_BINS), np.float32)
        for i, sig in enumerate(sigs):
            if sig is not None:
                hists[i] = sig.hist
        hist_features = index_features(hists)
    exact_pairs, pixel = _exact_copies(images, sigs, features, active, runtime, o)
    stats["exact_pairs"] = len(exact_pairs)
    boxes = [
        normalized_boxes(img.boxes(), img.width, img.height)
        if sigs[i] is not None and img.annotations
        else np.zeros((0, 4))
        for i, img in enumerate(images)
    ]
    number: dict[str, int] = {}
    key = class_key(o)
    classes = [
        np.array([number.setdefault(key(c), len(number)) for c in nm], np.int64) for nm in names
    ]
    keep_pair = _pair_filter(images, boxes, classes, exact_pairs, o)
    lowest = min(thresholds) if thresholds else None
    items = _verify_items(images, sigs, pixel, boxes, classes, o, runtime, active)
    spec = VerifySpec(
        ssim=o.ssim is not None,
        hist=o.hist is not None,
        roi=o.roi == "objects",
        roi_iou=o.roi_iou,
        ssim_floor=o.working_threshold(lowest) if o.ssim is not None else None,
        roi_floor=_roi_floor(o, lowest),
        refine_below=o.refine_offsets[0],
        refine_above=o.refine_offsets[1],
        refine_threshold=o.ssim if o.ssim is not None else DEFAULT_SSIM,
        max_pixels=o.max_pixels,
    )
    scorer = Scorer(items, spec, executor=runtime.executor, progress=prog)
    sharpness = None
    if o.keep == "sharpest":
        # Only this policy pays for a second decode; other runs stay at signature cost.
        t2 = time.perf_counter()
        sharpness = _sharpness(images, sigs, active, runtime, o)
        stats["sharpness_s"] = time.perf_counter() - t2
    keys = _priority_keys(images, sigs, is_ref, o.keep, sharpness)
    priority = C.priority_order(keys)
    prep = _Prepared(
        images,
        is_ref,
        sigs,
        active,
        features,
        hist_features,
        exact_pairs,
        keep_pair,
        scorer,
        priority,
        names,
        stats,
        sharpness,
    )
    prep.keys = keys
    prep.listed = _listed(prep, o, lowest, prog)
    stats["index_method"] = "lsh" if prep.listed is not None else "exact"
    stats["prepare_s"] = time.perf_counter() - t1
    return prep


def _roi_floor(o: DedupeOptions, lowest: float | None) -> float | None:
    """The lowest region threshold any decision will use (None: region SSIM not needed)."""
    if o.roi != "objects":
        return None
    if o.roi_ssim is not None:
        return o.roi_ssim
    return lowest if o.ssim is not None else DEFAULT_SSIM


def _radii(o: DedupeOptions, threshold: float | None) -> list[float]:
    """Radius of each feature space (SSIM first, then histogram) for a threshold."""
    out = []
    if o.ssim is not None:
        out.append(ssim_radius(o.working_threshold(threshold or o.ssim), o.radius_scale))
    if o.hist is not None:
        # Exact: intersection > T means L1 < 2 (1 - T), within sqrt of that in the index.
        out.append(index_radius(threshold if o.ssim is None and threshold else o.hist))
    return out


def _listed(
    prep: _Prepared, o: DedupeOptions, lowest: float | None, prog: Progress
) -> Candidates | None:
    """LSH candidates above EXACT_LIMIT images (None: search exactly).

    One feature space is hashed as it is. With two (``--ssim`` and ``--hist``) and
    ``--combine all``, a pair must lie within both radii, so hashing one space finds every
    candidate (the SSIM space when hashing prunes it, else the histogram space) and the
    other radius is checked on the pairs found; with ``any`` each space is hashed and the
    lists are joined. When hashing would not prune the spaces it needs, the search is exact.
    """
    spaces = _spaces(prep, o, lowest)
    idx = np.flatnonzero(prep.active)
    if not spaces or o.index == "exact" or (o.index == "auto" and len(idx) <= EXACT_LIMIT):
        return None
    force = o.index == "lsh"
    xs = [s.x[idx] for s in spaces]
    prunes = [
        lsh_params(x, s.radius, seed=o.seed, force=force) is not None
        for x, s in zip(xs, spaces, strict=True)
    ]
    if o.combine == "any" and len(spaces) > 1:
        hashed = list(range(len(spaces))) if all(prunes) else []
    else:
        hashed = [prunes.index(True)] if any(prunes) else []
    if not hashed:
        return None
    skip = prep.is_ref[idx]
    found = [
        find_candidates(
            xs[k], spaces[k].radius, method="lsh", skip_mask=skip, seed=o.seed, progress=prog
        )
        for k in hashed
    ]
    c = found[0]
    for more in found[1:]:
        c = c.union(more)
    i, j = idx[c.i], idx[c.j]
    # Distances are those of the first space (the order in which neighbours are tried).
    dist = c.dist if hashed == [0] else spaces[0].dist(i, j)
    listed = Candidates(i.astype(np.int32), j.astype(np.int32), dist, "lsh", found[0].stats)
    if len(spaces) > 1:
        listed = listed.take(in_radii(spaces, o.combine, listed))
    return listed


def _spaces(prep: _Prepared, o: DedupeOptions, threshold: float | None) -> list[Space]:
    """The feature spaces with their radii at ``threshold``: every search (each threshold of
    a sweep, each cluster mode) shares their augmented rows and principal directions."""
    if not prep.spaces:
        xs = ([prep.features] if o.ssim is not None else []) + (
            [prep.hist_features] if prep.hist_features is not None else []
        )
        prep.spaces = [Space(x, 0.0) for x in xs]
    return [s.with_radius(r) for s, r in zip(prep.spaces, _radii(o, threshold), strict=True)]


def _search(prep: _Prepared, o: DedupeOptions, threshold: float | None, prog: Progress) -> Search:
    """The candidate search at ``threshold`` (an LSH list is cut to the threshold's radius)."""
    spaces = _spaces(prep, o, threshold)
    listed = prep.listed
    if listed is not None and threshold is not None:
        listed = listed.take(in_radii(spaces, o.combine, listed))
    return Search(
        spaces,
        prep.active,
        prep.is_ref,
        extra=prep.exact_pairs,
        combine=o.combine,
        keep_pair=prep.keep_pair,
        listed=listed,
        progress=prog,
    )


def _pair_filter(
    images: Sequence[ImageItem],
    boxes: Sequence[NDArray[np.float64]],
    classes: Sequence[NDArray[np.int64]],
    exact_pairs: Sequence[tuple[int, int]],
    o: DedupeOptions,
) -> PairFilter | None:
    """Extra tests a pair must pass to be scored (exact copies always pass), or None.

    Object mode: the boxes can match. ``--frame-window N``: two frames of one clip are at
    most N frames apart (frames of different clips, and other images, are compared as usual).
    """
    tests: list[PairFilter] = []
    if o.roi == "objects":
        tests.append(BoxMatcher(boxes, classes, o.roi_iou))
    if o.frame_window is not None:
        tests.append(_frame_window(images, o.frame_window))
    if not tests:
        return None
    n = len(boxes)
    exact = np.unique(np.array([min(p) * n + max(p) for p in exact_pairs], np.int64))

    def keep(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.bool_]:
        ok = np.ones(len(a), bool)
        for test in tests:
            live = np.flatnonzero(ok)
            if not len(live):
                break
            ok[live] = test(a[live], b[live])
        if len(exact):
            ok |= np.isin(np.minimum(a, b) * n + np.maximum(a, b), exact)
        return ok

    return keep


def _frame_window(images: Sequence[ImageItem], window: int) -> PairFilter:
    """Pairs of frames of one clip (``clip``/``frame`` attributes) at most ``window`` apart."""
    clip_ids: dict[str, int] = {}
    clip = np.full(len(images), -1, np.int64)
    frame = np.zeros(len(images), np.int64)
    for i, img in enumerate(images):
        name, number = img.attributes.get("clip"), img.attributes.get("frame")
        if name is not None and isinstance(number, int):
            clip[i] = clip_ids.setdefault(str(name), len(clip_ids))
            frame[i] = number

    def keep(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.bool_]:
        same = (clip[a] >= 0) & (clip[a] == clip[b])
        return ~same | (np.abs(frame[a] - frame[b]) <= window)

    return keep


def _exact_copies(
    images: Sequence[ImageItem],
    sigs: Sequence[Signature | None],
    features: NDArray[np.float32],
    active: NDArray[np.bool_],
    runtime: Runtime,
    o: DedupeOptions,
) -> tuple[list[tuple[int, int]], dict[int, str]]:
    """Pairs of exact copies (each copy paired with the first of its group) and pixel hashes.

    A star per group rather than every pair, since a group can be large (blank frames): the
    cluster modes close each group themselves (see :mod:`curate.dedupe.cluster`).

    Same bytes: same content hash. Same pixels: only images of the same size can be; two
    JPEGs (or two non-JPEGs) with the same pixels decode to the same thumbnail, a JPEG and
    a non-JPEG to one within :data:`PIXEL_CHECK_MAD` (pairs found by a feature search at
    the radius of SSIM :data:`EXACT_SEARCH_SSIM`). Those get a full-decode pixel hash.
    """
    by_content: dict[str, list[int]] = {}
    by_feature: dict[tuple[int, int, bool, bytes], list[int]] = {}
    for i, sig in enumerate(sigs):
        if sig is None:
            continue
        by_content.setdefault(sig.content_hash, []).append(i)
        # Equal thumbnails have equal features: group by the (small) feature first.
        key = (sig.width, sig.height, sig.jpeg, sig.feature.tobytes())
        by_feature.setdefault(key, []).append(i)
    pairs = [(g[0], k) for g in by_content.values() for k in g[1:]]
    need: set[int] = set()
    for candidates in by_feature.values():
        if len({sigs[k].content_hash for k in candidates}) < 2:  # type: ignore[union-attr]
            continue
        by_thumb: dict[bytes, list[int]] = {}
        for k in candidates:
            thumb = sigs[k].thumb  # type: ignore[union-attr]
            by_thumb.setdefault(thumb.tobytes() + str(thumb.shape).encode(), []).append(k)
        for group in by_thumb.values():
            if len({sigs[k].content_hash for k in group}) > 1:  # type: ignore[union-attr]
                need.update(group)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, sig in enumerate(sigs):
        if sig is not None:
            by_size.setdefault((sig.width, sig.height), []).append(i)
    r_exact = ssim_radius(EXACT_SEARCH_SSIM, o.radius_scale)
    for group in by_size.values():
        jp = np.array([k for k in group if sigs[k].jpeg], np.int64)  # type: ignore[union-attr]
        other = np.array([k for k in group if not sigs[k].jpeg], np.int64)  # type: ignore[union-attr]
        if not len(jp) or not len(other):
            continue
        a, b, _ = Space(features, r_exact).within(jp, other)
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            sa, sb = sigs[x], sigs[y]
            shape = common_shape(sa.thumb.shape, sb.thumb.shape)  # type: ignore[union-attr, arg-type]
            ta = resize_gray(sa.thumb, shape).astype(np.int16)  # type: ignore[union-attr]
            tb = resize_gray(sb.thumb, shape).astype(np.int16)  # type: ignore[union-attr]
            if float(np.abs(ta - tb).mean()) <= PIXEL_CHECK_MAD:
                need.update((x, y))
    pixel = _pixel_hashes(images, sigs, sorted(need), active, runtime, o)
    by_pixels: dict[str, list[int]] = {}
    for i, h in sorted(pixel.items()):
        by_pixels.setdefault(h, []).append(i)
    seen = {(min(p), max(p)) for p in pairs}
    for group in by_pixels.values():
        for k in group[1:]:
            if sigs[k].content_hash != sigs[group[0]].content_hash:  # type: ignore[union-attr]
                pair = (min(group[0], k), max(group[0], k))
                if pair not in seen:
                    seen.add(pair)
                    pairs.append((group[0], k))
    return pairs, pixel


def _pixel_hashes(
    images: Sequence[ImageItem],
    sigs: Sequence[Signature | None],
    order: Sequence[int],
    active: NDArray[np.bool_],
    runtime: Runtime,
    o: DedupeOptions,
) -> dict[int, str]:
    """Full-decode pixel hashes of ``order`` (cached by content hash)."""
    if not order:
        return {}
    got = compute_pixel_hashes(
        [(str(images[i].path), sigs[i].content_hash) for i in order],  # type: ignore[union-attr]
        executor=runtime.executor,
        progress=runtime.progress,
        cache=runtime.cache,
        max_pixels=o.max_pixels,
    )
    out: dict[int, str] = {}
    for i in order:
        res = got[sigs[i].content_hash]  # type: ignore[union-attr]
        if isinstance(res, ItemFailure):
            runtime.policy.handle(res.error())
            active[i] = False
            continue
        out[i] = res
    return out


def _sharpness(
    images: Sequence[ImageItem],
    sigs: Sequence[Signature | None],
    active: NDArray[np.bool_],
    runtime: Runtime,
    o: DedupeOptions,
) -> list[float | None]:
    """:func:`~curate.dedupe.signatures.sharpness` of each active image (cached by content
    hash). None for the others, and where the measure failed: that error goes through the
    policy (``fail`` stops the run; under ``skip`` it is recorded and the image stays,
    ranked last)."""
    order = [int(i) for i in np.flatnonzero(active)]
    got = compute_sharpness(
        [(str(images[i].path), sigs[i].content_hash) for i in order],  # type: ignore[union-attr]
        executor=runtime.executor,
        progress=runtime.progress,
        cache=runtime.cache,
        max_pixels=o.max_pixels,
    )
    out: list[float | None] = [None] * len(images)
    for i in order:
        res = got[sigs[i].content_hash]  # type: ignore[union-attr]
        if isinstance(res, ItemFailure):
            runtime.policy.handle(res.error())
            continue
        out[i] = res
    return out


def _verify_items(
    images: Sequence[ImageItem],
    sigs: Sequence[Signature | None],
    pixel: dict[int, str],
    boxes: Sequence[NDArray[np.float64]],
    classes: Sequence[NDArray[np.int64]],
    o: DedupeOptions,
    runtime: Runtime,
    active: NDArray[np.bool_],
) -> list[VerifyItem]:
    crops: dict[int, Any] = {}
    if o.roi == "objects":
        todo = [i for i in range(len(images)) if active[i] and len(boxes[i])]
        keys = {i: crops_key(sigs[i].content_hash, boxes[i], o.roi_size) for i in todo}  # type: ignore[union-attr]
        cache = runtime.cache
        cached = cache.get_crops(sorted(set(keys.values()))) if cache is not None else {}
        for i in todo:
            if keys[i] in cached:
                crops[i] = cached[keys[i]]
        todo = [i for i in todo if i not in crops]
        jobs = [(str(images[i].path), boxes[i], o.roi_size, o.max_pixels) for i in todo]
        ex = runtime.executor
        results = ex.map(roi_task, jobs) if ex is not None else map(roi_task, jobs)
        # Cached as they come, so an interrupted run keeps what it cut.
        with StoreBatches(cache.put_crops if cache is not None else None) as fresh:
            for i, res in zip(
                todo,
                runtime.progress.track(results, total=len(jobs), description="object regions"),
                strict=True,
            ):
                if isinstance(res, ItemFailure):
                    runtime.policy.handle(
                        res.error(),
                        left_out=images[i].path,
                        left_out_annotations=len(images[i].annotations),
                    )
                    active[i] = False
                else:
                    crops[i] = res
                    fresh.add(keys[i], res)
    items: list[VerifyItem] = []
    empty_thumb = np.zeros((1, 1), np.uint8)
    empty_hist = np.zeros(1, np.float32)
    for i, img in enumerate(images):
        sig = sigs[i]
        if sig is None:
            items.append(VerifyItem(empty_thumb, empty_hist, f"missing-{i}"))
            continue
        items.append(
            VerifyItem(
                thumb=sig.thumb,
                hist=sig.hist,
                content_hash=sig.content_hash,
                pixel_hash=pixel.get(i),
                boxes=boxes[i],
                classes=classes[i],
                crops=crops.get(i),
                path=str(img.path),
            )
        )
    return items


def _resolve(
    prep: _Prepared,
    o: DedupeOptions,
    rule: C.DuplicateRule,
    mode: str,
    runtime: Runtime,
    threshold: float | None = None,
) -> tuple[C.Resolution, int]:
    """Cluster with ``rule``; also return how many candidate pairs the search produced."""
    search = _search(prep, o, threshold, runtime.progress)
    prep.stats["projected"] = bool(search.project)
    if mode == "connected":
        res = C.connected(
            prep.priority,
            search.stream(),
            prep.scorer,
            rule,
            reference=prep.is_ref,
            active=prep.active,
            progress=runtime.progress,
        )
        C.link_reasons(res, prep.scorer, rule)
        return res, search.found
    res = C.greedy(
        prep.priority,
        search,
        prep.scorer,
        rule,
        reference=prep.is_ref,
        active=prep.active,
        progress=runtime.progress,
    )
    return res, search.found


def _resolve_central(
    prep: _Prepared,
    o: DedupeOptions,
    rule: C.DuplicateRule,
    mode: str,
    runtime: Runtime,
    threshold: float | None = None,
) -> tuple[C.Resolution, int, dict[int, dict[int, float]]]:
    """:func:`_resolve`, then again while some cluster's member nearest the others is not
    its survivor though tied with it (:func:`_nearness`; scores are memoised), at most
    :data:`CENTRAL_PASSES` runs in all; and, per final cluster whose tied members were
    compared, each one's nearness. ``prep.priority`` is left as the last run used.

    One re-run is not always enough: the first run's clusters are cut by whichever tied
    copy comes first in dataset order, so the member nearest the others in a first cluster
    may be an edit whose cluster in the next run holds the original and its exact copies
    (QA round 8: a Roboflow frame kept its brightness -30 and gain 1.2 copies, dropping the
    original). Each run moves the member nearest the others in each cluster before every
    image it ties with, later runs' picks first; a run that moves nobody ends it.
    """
    res, found = _resolve(prep, o, rule, mode, runtime, threshold)
    picked: dict[int, int] = {}  # image -> the run after which it was found nearest
    # A member moved takes its survivor's key (with --keep sharpest its sharpness may be
    # up to SHARP_TIE lower), then goes before the images of that key.
    key_of: dict[int, tuple[float, ...]] = {}
    near = _nearness(prep, res, o)
    for run in range(1, CENTRAL_PASSES):
        moves = [n for n in near.values() if n.best != n.head]
        if not moves:
            break
        for n in moves:
            picked[n.best] = run
            key_of[n.best] = key_of.get(n.head, prep.keys[n.head])
        prep.priority = C.priority_order(
            [(*key_of.get(i, key), -float(picked.get(i, 0))) for i, key in enumerate(prep.keys)]
        )
        again = replace(runtime, progress=LabelledProgress(runtime.progress, "tied copies: "))
        res, found = _resolve(prep, o, rule, mode, again, threshold)
        near = _nearness(prep, res, o)
    return res, found, {h: n.mean for h, n in near.items()}


# -- plans -------------------------------------------------------------------------------------


@dataclass
class DedupePlan:
    """What dedupe decided: per image kept or dropped, why, and the scores behind it.

    ``images`` are the reference images (if any) followed by the dataset's images;
    ``is_reference`` tells them apart. Images whose signature failed are ``active`` False
    (listed in ``skipped``) and left out of the output. ``sharpness``: per image, with
    ``--keep sharpest`` only (see :func:`curate.dedupe.signatures.sharpness`; None where
    it could not be measured).
    """

    options: DedupeOptions
    dataset: Dataset
    images: list[ImageItem]
    is_reference: NDArray[np.bool_]
    active: NDArray[np.bool_]
    signatures: list[Signature | None]
    resolution: C.Resolution
    rule: C.DuplicateRule
    scorer: Scorer
    priority: list[int]
    class_names: list[list[str]]
    skipped: list[dict[str, Any]]
    stats: dict[str, Any]
    sharpness: list[float | None] | None = None
    #: Per survivor whose cluster holds members tied with it on every key: each tied
    #: member's (the survivor's too) mean thumbnail difference to the other members, in
    #: gray levels (see :func:`_nearness`).
    central: dict[int, dict[int, float]] = field(default_factory=dict)
    #: Each image's sort key of the keep policy (see :func:`_priority_keys`).
    keys: list[tuple[float, ...]] = field(default_factory=list)
    #: Pairs of exact copies (same bytes or same decoded pixels), each group linked.
    exact_pairs: list[tuple[int, int]] = field(default_factory=list)
    _placements: dict[tuple[int, int], Placement] = field(default_factory=dict, repr=False)

    def dropped(self) -> list[int]:
        """Indices of dropped images (never reference images)."""
        return [int(i) for i in np.flatnonzero(self.active & (self.resolution.status == C.DROPPED))]

    def kept_new(self) -> list[int]:
        """Indices of the dataset's (non-reference) images that are kept, in dataset order."""
        keep = self.active & (self.resolution.status == C.KEPT) & ~self.is_reference
        return [int(i) for i in np.flatnonzero(keep)]

    def label(self, i: int) -> str:
        """How reports name image ``i`` (reference images are prefixed)."""
        name = self.images[i].file_name
        return f"reference:{name}" if self.is_reference[i] else name

    def placement(self, d: int, k: int) -> Placement:
        """Where dropped image ``d`` lies in ``k``, for comparing their boxes
        (:func:`curate.dedupe.labels.placement`; computed once per pair)."""
        got = self._placements.get((d, k))
        if got is None:
            sd, sk = self.signatures[d], self.signatures[k]

            def thumbs() -> tuple[NDArray[np.uint8], NDArray[np.uint8]] | None:
                return (sd.thumb, sk.thumb) if sd is not None and sk is not None else None

            got = self._placements[(d, k)] = placement(
                self.images[d],
                self.class_names[d],
                self.images[k],
                self.class_names[k],
                thumbs,
                self.class_key,
            )
        return got

    @functools.cached_property
    def class_key(self) -> Callable[[str], str]:
        """:func:`class_key` of the options, made once (a class map each time otherwise)."""
        return class_key(self.options)

    def output_dataset(self) -> tuple[Dataset, list[dict[str, Any]]]:
        """The kept images of the dataset (labels merged in with ``merge_labels``) and changes."""
        from curate.dedupe.labels import LEFT_CLASS, LEFT_OUTSIDE, LEFT_OVERLAP, merge_into

        kept = self.kept_new()
        changes: list[dict[str, Any]] = []
        if not self.options.merge_labels:
            return self.dataset.subset(self.images[i] for i in kept), changes
        own = self.dataset.category_names()
        key = self.class_key
        copies = {i: _copy_item(self.images[i]) for i in kept}
        for d in self.dropped():
            k = int(self.resolution.dup_of[d])
            if k not in copies:
                continue
            before = len(copies[k].annotations)
            notes = merge_into(
                copies[k],
                _names_of(copies[k], own),
                self.images[d],
                self.class_names[d],
                key,
                self.placement(d, k),
            )
            added = len(copies[k].annotations) - before
            if added or notes:
                changes.append(
                    {
                        "item": copies[k].file_name,
                        "change": "merged labels",
                        "from": self.images[d].file_name,
                        "added_annotations": added,
                        "left_annotations": sum(LEFT_OVERLAP in n for n in notes),
                        "left_outside": sum(LEFT_OUTSIDE in n for n in notes),
                        "left_class": sum(LEFT_CLASS in n for n in notes),
                        **({"notes": notes} if notes else {}),
                    }
                )
        return self.dataset.subset(copies[i] for i in kept), changes


def class_key(o: DedupeOptions) -> Callable[[str], str]:
    """How dedupe compares class names: as ``--class-map`` resolves them (a
    :class:`curate.merge.ClassMap` with those synonyms; without one, case, spaces and
    hyphens ignored). It has no ``drop``, so every name resolves."""
    from curate.merge import ClassMap

    cmap = ClassMap([], dict(o.class_map), strict=False)
    return lambda name: cmap.resolve(name) or name


def class_differences(
    dataset: Dataset, reference: Dataset, o: DedupeOptions
) -> tuple[list[str], list[str]]:
    """Classes annotated in ``reference`` that ``dataset`` does not have, and the other way
    round, as :func:`class_key` compares them (names as each dataset spells them)."""
    key = class_key(o)

    def used(ds: Dataset) -> dict[str, str]:
        names = ds.category_names()
        ids = {a.category_id for img in ds.images for a in img.annotations}
        return {key(names.get(c, str(c))): names.get(c, str(c)) for c in sorted(ids)}

    ref, own = used(reference), used(dataset)
    return (
        sorted(v for k, v in ref.items() if k not in own),
        sorted(v for k, v in own.items() if k not in ref),
    )


def same_files(dataset: Dataset, reference: Dataset) -> int:
    """How many of ``dataset``'s images are the very files of ``reference`` images (the
    same path once links are resolved): such an image is dropped as a copy of itself."""
    ref = {os.path.realpath(img.path) for img in reference.images}
    return sum(os.path.realpath(img.path) in ref for img in dataset.images)


def against_counts(plan: DedupePlan) -> dict[str, int]:
    """With a reference: new images dropped as copies of reference images (``exact`` of
    them by bytes or pixels) and as duplicates of other new images."""
    dup_of = plan.resolution.dup_of
    exact = {"exact-file", "exact-pixels"}
    out = {"of_reference": 0, "of_reference_exact": 0, "of_new": 0}
    for d in plan.dropped():
        k = int(dup_of[d])
        if k >= 0 and plan.is_reference[k]:
            out["of_reference"] += 1
            out["of_reference_exact"] += plan.resolution.link_reason[d] in exact
        else:
            out["of_new"] += 1
    return out


def merge_counts(changes: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Boxes ``--merge-labels`` carries to survivors, the survivors that get some, and the
    boxes it leaves (``left``: each overlaps a box of its class on the survivor;
    ``left_outside``: outside the survivor's view; ``left_class``: the survivor labels
    the same box with another class), from the changes of
    :meth:`DedupePlan.output_dataset`."""
    merged = [c for c in changes if c.get("change") == "merged labels"]
    return {
        "carried": sum(int(c.get("added_annotations", 0)) for c in merged),
        "survivors": len({c["item"] for c in merged if c.get("added_annotations")}),
        "left": sum(int(c.get("left_annotations", 0)) for c in merged),
        "left_outside": sum(int(c.get("left_outside", 0)) for c in merged),
        "left_class": sum(int(c.get("left_class", 0)) for c in merged),
    }


def _names_of(img: ImageItem, names: dict[int, str]) -> list[str]:
    return [names.get(a.category_id, str(a.category_id)) for a in img.annotations]


def _copy_item(img: ImageItem) -> ImageItem:
    import copy

    return copy.deepcopy(img)


def _class_names(
    images: Sequence[ImageItem],
    is_ref: NDArray[np.bool_],
    dataset: Dataset,
    reference: Dataset | None,
) -> list[list[str]]:
    """Class name of every annotation, per image (reference and dataset ids may differ)."""
    own = dataset.category_names()
    ref = reference.category_names() if reference is not None else {}
    out: list[list[str]] = []
    for img, r in zip(images, is_ref, strict=True):
        names = ref if r else own
        out.append([names.get(a.category_id, str(a.category_id)) for a in img.annotations])
    return out


def _combined(
    dataset: Dataset, reference: Dataset | None
) -> tuple[list[ImageItem], NDArray[np.bool_]]:
    ref_images = list(reference.images) if reference is not None else []
    images = ref_images + list(dataset.images)
    is_ref = np.zeros(len(images), bool)
    is_ref[: len(ref_images)] = True
    return images, is_ref


def find_duplicates(
    dataset: Dataset,
    options: DedupeOptions | None = None,
    *,
    reference: Dataset | None = None,
    runtime: Runtime | None = None,
) -> DedupePlan:
    """Decide which images of ``dataset`` are duplicates (of each other or of ``reference``)."""
    o = (options or DedupeOptions()).resolved()
    rt = runtime or Runtime()
    t0 = time.perf_counter()
    images, is_ref = _combined(dataset, reference)
    names = _class_names(images, is_ref, dataset, reference)
    thresholds = [o.ssim] if o.ssim is not None else ([o.hist] if o.hist is not None else [])
    prep = _prepare(images, is_ref, o, names, rt, thresholds)
    rule = o.rule()
    t1 = time.perf_counter()
    res, found, central = _resolve_central(prep, o, rule, o.cluster, rt)
    prep.stats["candidates"] = found
    prep.stats["cluster_s"] = time.perf_counter() - t1
    prep.stats["pairs_scored"] = len(prep.scorer)
    refined = [v for v in prep.scorer.memo.values() if v.full_ssim is not None]
    prep.stats["pairs_refined"] = len(refined)
    if o.ssim is not None:  # what full resolution changed: pairs now above or below T
        above = [(v.ssim > o.ssim, v.full_ssim > o.ssim) for v in refined if v.ssim is not None]
        prep.stats["refined_passed"] = sum(after and not was for was, after in above)
        prep.stats["refined_failed"] = sum(was and not after for was, after in above)
    prep.stats["total_s"] = time.perf_counter() - t0
    if rt.cache is not None and rt.cache.problem:  # the sharpness and crop steps use it too
        prep.stats["cache_problem"] = rt.cache.problem
    return DedupePlan(
        options=o,
        dataset=dataset,
        images=images,
        is_reference=is_ref,
        active=prep.active,
        signatures=prep.sigs,
        resolution=res,
        rule=rule,
        scorer=prep.scorer,
        priority=prep.priority,
        class_names=prep.names,
        skipped=list(rt.policy.skipped),
        stats=prep.stats,
        sharpness=prep.sharpness,
        central=central,
        keys=prep.keys,
        exact_pairs=list(prep.exact_pairs),
    )


#: Side of the thumbnails whose distances rank tied members by centrality.
CENTRAL_SIDE = 32
#: Clusters with more members than this keep dataset order among tied members (the
#: distances of all members are compared: members squared x CENTRAL_SIDE squared operations).
CENTRAL_MAX_MEMBERS = 2048
#: Clustering runs at most this many times (the first included) while tied survivors give
#: way to members nearer the others (see :func:`_resolve_central`). Edited copies of one
#: photo settle in 3 (QA round 8). Chains of video frames may not settle at all: on the
#: Roboflow export each run moves fewer survivors (57, 22, 11, 10, 5, 8, ...), each run
#: costs more pairs (7,909 scored in the first run; 2,118, 861 and 381 new in the next
#: three) and the kept count barely moves (445, 441, 441, 441, ... 439 after 10 runs).
CENTRAL_PASSES = 3


def _thumb_vectors(prep: _Prepared, members: Sequence[int]) -> NDArray[np.float32]:
    """The members' grayscale thumbnails at CENTRAL_SIDE x CENTRAL_SIDE (area-averaged), as
    rows; each image's made once for all the clustering runs (``prep.small``)."""
    side = (CENTRAL_SIDE, CENTRAL_SIDE)
    for m in members:
        if m not in prep.small:
            thumb = prep.sigs[m].thumb  # type: ignore[union-attr]
            prep.small[m] = cv2.resize(thumb, side, interpolation=cv2.INTER_AREA).reshape(-1)
    return np.stack([prep.small[m] for m in members]).astype(np.float32)


@dataclass(frozen=True, slots=True)
class _Nearness:
    """The members of a cluster tied with its survivor ``head`` on every key, each one's
    mean difference to the other members (gray levels), and ``best``: the nearest (ties by
    priority)."""

    head: int
    mean: dict[int, float]
    best: int


#: With ``--keep sharpest``, copies of equal JPEG rank, colour and size whose sharpness is
#: within this fraction of the sharpest's tie (see :func:`_ties`).
SHARP_TIE = 0.1


def _ties(a: tuple[float, ...], b: tuple[float, ...], o: DedupeOptions) -> bool:
    """Whether two images' keep keys tie. With ``sharpest`` (keys: reference, JPEG rank,
    gray, minus sharpness, minus pixels) sharpness within :data:`SHARP_TIE` ties: edits of
    one photo (brightness +-30, gain 0.8 and 1.2, a re-save at quality 90) measure 0.88-1.29x
    their original, most within 10 % (clipped tones move it most), and the one that measured
    highest was kept (QA round 8: never the original; 12 of 15 with the tie). A wider band
    would tie blur: a 3 px motion blur of a 1920-2048 px photo measures 0.87-0.89x at 512 px
    (QA round 9, with 25 %: the blurred copy was kept)."""
    if o.keep != "sharpest" or a == b:
        return a == b
    if a[:3] != b[:3] or a[4] != b[4]:
        return False
    sa, sb = -a[3], -b[3]
    return math.isfinite(sa) and math.isfinite(sb) and abs(sa - sb) <= SHARP_TIE * max(sa, sb)


def _nearness(prep: _Prepared, res: C.Resolution, o: DedupeOptions) -> dict[int, _Nearness]:
    """Per cluster of ``res`` whose survivor ties with other members on the keep policy's
    key, how near each tied member is to all the members.

    Copies of one photo tie on every key when they differ only by an edit (a brightness
    change, a re-save at JPEG quality 95 of an original at 75), and dataset order would pick
    whichever name sorts first (QA: an edited copy survived in 51 of 54 such clusters). The
    original is the member nearest to all the others, each edit moving away from it in its
    own direction; SSIM barely sees a brightness change, pixel differences do. So among the
    members tied with the survivor (:func:`_ties`; clusters of 3 or more; ``first`` keeps
    dataset order; in a pair neither is nearer), the one whose thumbnail
    (:data:`CENTRAL_SIDE` px, gray) has the smallest root-mean-square difference to the
    other members' on average is ``best``.
    """
    if o.keep == "first":
        return {}
    rank = {img: r for r, img in enumerate(prep.priority)}
    out: dict[int, _Nearness] = {}
    for head, members in res.members().items():
        if prep.is_ref[head] or not 3 <= len(members) <= CENTRAL_MAX_MEMBERS:
            continue
        # Ties are judged against the member with the best key among those the survivor
        # may tie with: with sharpest, each against the sharpest, so ties do not chain (a
        # copy within 10 % of one within 10 % of the sharpest is not tied with it).
        top = min(prep.keys[m] for m in members if _ties(prep.keys[m], prep.keys[head], o))
        tied = [m for m in members if not prep.is_ref[m] and _ties(prep.keys[m], top, o)]
        if head not in tied:
            tied.insert(0, head)
        if len(tied) < 2:
            continue
        # In double precision, each member's distance to itself exactly 0: float32 gave a
        # member 0.06 gray levels from itself, and ties are decided at 3 decimals.
        x = _thumb_vectors(prep, members).astype(np.float64)
        sq = (x * x).sum(1)
        at = {m: k for k, m in enumerate(members)}
        rows = x[[at[t] for t in tied]]
        d2 = np.maximum(sq[[at[t] for t in tied], None] + sq[None, :] - 2 * rows @ x.T, 0)
        d2[np.arange(len(tied)), [at[t] for t in tied]] = 0.0
        rms = np.sqrt(d2 / x.shape[1])
        mean = {t: float(rms[k].sum() / (len(members) - 1)) for k, t in enumerate(tied)}
        best = min(tied, key=lambda t: (round(mean[t], 3), rank[t]))
        out[head] = _Nearness(head, mean, best)
    return out


# -- sweeps ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepRow:
    """Images kept at one threshold by each cluster mode."""

    threshold: float
    kept_greedy: int
    kept_connected: int


def sweep(
    dataset: Dataset,
    options: DedupeOptions | None = None,
    thresholds: Sequence[float] = SWEEP_THRESHOLDS,
    *,
    reference: Dataset | None = None,
    runtime: Runtime | None = None,
) -> list[SweepRow]:
    """Kept counts over ``thresholds`` of the main method (SSIM, else histogram), both modes.

    Scores are computed once and shared by every threshold; the refinement band is off.
    """
    o = replace((options or DedupeOptions()).resolved(), refine="none", refine_band=0.0)
    if o.exact_only:
        raise UsageError("--sweep varies a similarity threshold; it does not apply to --exact")
    rt = runtime or Runtime()
    images, is_ref = _combined(dataset, reference)
    ts = sorted({float(t) for t in thresholds})
    prep = _prepare(images, is_ref, o, _class_names(images, is_ref, dataset, reference), rt, ts)
    rows: list[SweepRow] = []
    base = list(prep.priority)
    for t in ts:
        counts = []
        for mode in ("greedy", "connected"):
            # As find_duplicates starts from (ties: see _resolve_central).
            prep.priority = list(base)
            res, _, _ = _resolve_central(prep, o, o.rule(t), mode, rt, t)
            keep = prep.active & (res.status == C.KEPT) & ~is_ref
            counts.append(int(keep.sum()))
        rows.append(SweepRow(t, counts[0], counts[1]))
    return rows


# -- leaks -------------------------------------------------------------------------------------


def split_of(img: ImageItem) -> str | None:
    """The split an image belongs to (its ``split``, else the source's ``original_split``)."""
    return img.split or img.attributes.get("original_split")


@dataclass
class LeakResult:
    """Connected near-duplicate clusters whose members sit in more than one split."""

    plan: DedupePlan
    leaks: list[list[int]]

    @property
    def images(self) -> int:
        return sum(len(c) for c in self.leaks)


def find_leaks(
    dataset: Dataset, options: DedupeOptions | None = None, *, runtime: Runtime | None = None
) -> LeakResult:
    """Near-duplicate clusters (connected mode) spanning more than one split."""
    o = replace((options or DedupeOptions()).resolved(), cluster="connected", merge_labels=False)
    plan = find_duplicates(dataset, o, runtime=runtime)
    leaks: list[list[int]] = []
    for members in plan.resolution.members().values():
        splits = {split_of(plan.images[m]) for m in members}
        if len(splits) > 1:
            leaks.append(members)
    return LeakResult(plan, leaks)


def options_dict(o: DedupeOptions) -> dict[str, Any]:
    """JSON-ready options (for manifests and reports)."""
    return {k: v for k, v in asdict(o).items()}


def write_deduped(
    plan: DedupePlan,
    out: str | Path,
    *,
    fmt: str,
    overwrite: bool = False,
    link: str = "hardlink",
    inputs: Sequence[Path] = (),
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
    report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the kept images (``fmt``), ``manifest.json`` and the cluster report, atomically
    (``notify``: see :func:`curate.core.output.atomic_output`; ``report``: the plan's
    :func:`~curate.dedupe.report.build_report`, when the caller has built it already)."""
    from curate.dedupe.report import REPORT_CSV, REPORT_JSON, build_report, write_report

    get_format(fmt)
    ds, changes = plan.output_dataset()
    report = report if report is not None else build_report(plan)
    manifest = Manifest(
        command="dedupe",
        inputs=[str(p) for p in inputs],
        options=options_dict(plan.options) | {"format": fmt, "link": link},
    )
    for c in report["clusters"]:
        for m in c["members"]:
            if m["role"] == "dropped":
                manifest.drop(
                    m["file_name"],
                    m["reason"],
                    duplicate_of=m["duplicate_of"],
                    score=m.get("score"),
                    cluster=c["id"],
                    annotations=m["annotations"],
                    path=m["path"],
                    **({"exact_copy_of": m["exact_copy_of"]} if "exact_copy_of" in m else {}),
                )
    manifest.skipped.extend(plan.skipped)
    # What the reader changed or dropped (renames...), less the changes to images dropped
    # here: they are not written, and their drop entries name the files they came from
    # (QA: 20 'renamed to train__x.jpg' entries, every one an image dropped as a copy).
    gone = {str(x) for i in plan.dropped() for x in (plan.images[i].path, plan.images[i].file_name)}
    read = plan.dataset.info
    manifest.record_read(
        {**read, "changed": [c for c in read.get("changed", []) if str(c.get("item")) not in gone]}
    )
    manifest.changed.extend(changes)
    with atomic_output(out, overwrite=overwrite, inputs=inputs, notify=notify) as tmp:
        result = write_dataset(
            ds,
            tmp,
            fmt,
            WriteOptions(link=link, progress=progress or NullProgress()),  # type: ignore[arg-type]
        )
        write_report(report, tmp / REPORT_JSON)
        for d in result.dropped:
            manifest.dropped.append({**d, "stage": "write"})
        manifest.changed.extend({**c, "stage": "write"} for c in result.changed)
        # "dropped" counts images dropped as duplicates; annotations are never counted with them.
        manifest.counts = dict(report["counts"]) | {
            "written_images": result.images,
            "written_annotations": result.annotations,
            "dropped_annotations": manifest.count_dropped("annotation"),
        }
        if plan.options.merge_labels:
            manifest.counts["merge_labels"] = merge_counts(changes)
        manifest.outputs = [*result.files, REPORT_JSON, REPORT_CSV]
        manifest.extra = {
            "report": REPORT_JSON,
            "stats": _round_stats(plan.stats),
            "notes": report["notes"],
        }
        manifest.write(tmp)
    return manifest.counts


def _round_stats(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()}
