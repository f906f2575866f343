"""Leakage-free, stratified train/val/test splits.

Images are first joined into units that must stay together: their ``group`` (a video
clip, a Roboflow clip, the parent of tiles) and any extra grouping such as the
clusters of a dedupe report. Units are then assigned to minimise how far each split's
share of images, of boxes of every class, of small boxes (COCO small: area < 32²), of
negatives and of the images of every class folder lies from the ratios: largest first,
each to the split furthest below its target, then improved by moving single units and
swapping pairs between splits. Image shares count most, so the ratios hold as closely as
the unit sizes allow; when they cannot, :func:`ratio_warning` names the unit that
prevents it.

A class folder is the ``folder`` attribute of an image without annotations (an image
tree read by the ``images`` layout: ``Train/NoFire/a.jpg`` is in folder ``NoFire``): such
images are stratified by folder as boxes are by class, so a small folder is not left in
train alone.

Images tagged ``unlabeled`` (clips with no annotations) are not training-ready: they
are left out and reported.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from curate.core.dataset import SPLITS, Dataset, ImageItem, images_by_group
from curate.core.errors import UsageError

SMALL_AREA = 32.0**2


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``"8:1:1"`` (or ``"0.8,0.1,0.1"``, or two values for no test) → fractions summing to 1."""
    parts = [p for p in text.replace(",", ":").split(":") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError as exc:
        raise UsageError(f"--ratios '{text}' must be numbers like 8:1:1") from exc
    if len(values) == 2:
        values.append(0.0)
    if (
        len(values) != 3
        or not all(math.isfinite(v) and v >= 0 for v in values)  # nan, inf
        or not math.isfinite(sum(values))
        or values[0] <= 0
    ):
        raise UsageError(
            f"--ratios '{text}' must be train:val:test with a positive train share, e.g. 8:1:1"
        )
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def units(
    images: list[ImageItem], extra_groups: Mapping[str, str] | None = None
) -> list[list[ImageItem]]:
    """Images joined into units that must share a split (groups, plus ``extra_groups``).

    ``extra_groups`` maps an image's ``file_name``, ``original_path`` or path to a cluster id.
    """
    uf = _UnionFind()
    by_group = images_by_group(images)
    key_of: dict[int, str] = {}
    for g, members in by_group.items():
        for img in members:
            key_of[id(img)] = g
            uf.find(g)
    if extra_groups:
        cluster_first: dict[str, str] = {}
        for img in images:
            cid = _unit_cluster(img, extra_groups)
            if cid is None:
                continue
            g = key_of[id(img)]
            if cid in cluster_first:
                uf.union(cluster_first[cid], g)
            else:
                cluster_first[cid] = g
    out: dict[str, list[ImageItem]] = {}
    for img in images:
        out.setdefault(uf.find(key_of[id(img)]), []).append(img)
    return list(out.values())


def _unit_cluster(img: ImageItem, extra_groups: Mapping[str, str]) -> str | None:
    """The cluster of ``extra_groups`` an image belongs to (by file name, original path or path)."""
    path = str(img.path)
    keys = (img.file_name, str(img.attributes.get("original_path", "")), path)
    for key in (*keys, os.path.abspath(path)):
        cid = extra_groups.get(key)
        if cid is not None:
            return cid
    return None


@dataclass(frozen=True)
class GroupsMatch:
    """How an ``extra_groups`` map (a dedupe report's clusters) matches the images split."""

    clusters: int
    """Clusters in the map."""
    images_matched: int
    """Images of the dataset found in some cluster."""
    clusters_present: int
    """Clusters with at least one image in the dataset."""
    clusters_joining: int
    """Clusters with two or more images in the dataset: the only ones that constrain a split."""
    matched_by_name_only: int = 0
    """Matched images whose path the map does not hold (a copy of the data, or another
    dataset that uses the same file names)."""


def match_groups(images: list[ImageItem], extra_groups: Mapping[str, str]) -> GroupsMatch:
    """Count how many of ``extra_groups``' clusters and images the dataset holds."""
    present: dict[str, int] = {}
    by_name = 0
    for img in images:
        cid = _unit_cluster(img, extra_groups)
        if cid is not None:
            present[cid] = present.get(cid, 0) + 1
            paths = (str(img.attributes.get("original_path", "")), str(img.path))
            by_name += not any(
                p and (p in extra_groups or os.path.abspath(p) in extra_groups) for p in paths
            )
    return GroupsMatch(
        clusters=len(set(extra_groups.values())),
        images_matched=sum(present.values()),
        clusters_present=len(present),
        clusters_joining=sum(1 for n in present.values() if n >= 2),
        matched_by_name_only=by_name,
    )


def _folder(img: ImageItem) -> str | None:
    """The class folder of an image without annotations (its ``folder`` attribute), if any."""
    folder = img.attributes.get("folder")
    return str(folder) if folder and not img.annotations else None


def _features(
    unit: list[ImageItem], cat_index: dict[int, int], folder_index: dict[str, int]
) -> np.ndarray:
    """[images, negatives, small boxes, boxes of class 0..K-1, images of folder 0..D-1]
    of a unit (folders: see :func:`_folder`)."""
    k = len(cat_index)
    f = np.zeros(3 + k + len(folder_index))
    for img in unit:
        f[0] += 1
        if not img.annotations:
            f[1] += 1
            folder = _folder(img)
            if folder is not None:
                f[3 + k + folder_index[folder]] += 1
        for a in img.annotations:
            if a.box_area < SMALL_AREA:
                f[2] += 1
            f[3 + cat_index[a.category_id]] += 1
    return f


# A swap search looks at every pair of units in two splits; above this many pairs only
# single moves are tried (with that many units, moves alone reach the ratios).
_SWAP_PAIRS = 4_000_000
_IMPROVEMENT = 1e-12


def _weights(totals: NDArray[np.float64], r: NDArray[np.float64]) -> NDArray[np.float64]:
    """Weight of each feature (``totals``: its count, images first) in the assignment cost.

    A feature weighs its count relative to the images' (at most 1), shrunk further when it
    has too few items to put one in every split (below ``1 / min(r)``): a class with three
    boxes (or a folder with three images) cannot pull whole clips around. Images weigh
    twice all other features together.
    """
    w = np.minimum(totals, totals[0]) / totals[0] * totals / (totals + 1.0 / r.min())
    w[0] = max(1.0, 2.0 * float(w[1:].sum()))
    return w


def _assign(feats: NDArray[np.float64], ratios: NDArray[np.float64]) -> NDArray[np.int64]:
    """Split index (into ``ratios``) of every unit.

    ``feats``: (U, F) counts per unit, column 0 the images. Minimises, over every feature
    f, ``w_f * sum_s (x_sf - r_s)**2 / r_s`` (a chi-square distance between the split's
    share x_sf of the feature and the requested ratio r_s, over splits with r_s > 0),
    weighted by :func:`_weights`. Units go largest first (in the given order among equals)
    to the split where they cost least, which is the split furthest below its target;
    then single moves and pairwise swaps between splits are applied, best first, while
    one lowers the cost. Deterministic for a given ``feats`` order.
    """
    active = np.flatnonzero(ratios > 0)
    r = ratios[active]
    totals = feats.sum(axis=0)
    keep = np.flatnonzero(totals > 0)
    p = feats[:, keep] / totals[keep]  # (U, F): each unit's share of each feature
    w = _weights(totals[keep], r)
    pw = p * w
    pp = (p * pw).sum(axis=1)  # sum_f w_f p_uf**2
    n_units, n_splits = len(p), len(r)
    at = np.zeros(n_units, dtype=np.int64)
    x = np.zeros((n_splits, p.shape[1]))
    for u in np.argsort(-feats[:, 0], kind="stable"):
        cost = (pw[u][None, :] * (2.0 * (x - r[:, None]) + p[u][None, :])).sum(axis=1) / r
        at[u] = int(np.argmin(cost))
        x[at[u]] += p[u]
    rows = np.arange(n_units)
    for _ in range(10 * n_units + 100):
        dev = x - r[:, None]
        cross = (pw[:, None, :] * dev[None, :, :]).sum(axis=2)  # (U, S)
        add = (pp[:, None] + 2.0 * cross) / r[None, :]
        remove = (pp - 2.0 * cross[rows, at]) / r[at]
        move = add + remove[:, None]
        move[rows, at] = np.inf
        best = np.unravel_index(int(np.argmin(move)), move.shape)
        if move[best] < -_IMPROVEMENT:
            u, s = int(best[0]), int(best[1])
            x[at[u]] -= p[u]
            x[s] += p[u]
            at[u] = s
            continue
        swap = _best_swap(p, pw, pp, at, dev, r)
        if swap is None:
            break
        u, v = swap
        a, b = at[u], at[v]
        x[a] += p[v] - p[u]
        x[b] += p[u] - p[v]
        at[u], at[v] = b, a
    return active[at]


def _best_swap(
    p: NDArray[np.float64],
    pw: NDArray[np.float64],
    pp: NDArray[np.float64],
    at: NDArray[np.int64],
    dev: NDArray[np.float64],
    r: NDArray[np.float64],
) -> tuple[int, int] | None:
    """The pair of units in two splits whose exchange lowers the cost most, if any does."""
    best: tuple[float, int, int] | None = None
    for a in range(len(r)):
        for b in range(a + 1, len(r)):
            ua, ub = np.flatnonzero(at == a), np.flatnonzero(at == b)
            if not len(ua) or not len(ub) or len(ua) * len(ub) > _SWAP_PAIRS:
                continue
            # Unit u leaves a for b, v leaves b for a: d = p_u - p_v goes from a to b.
            c = dev[b] / r[b] - dev[a] / r[a]
            lin = 2.0 * (pw @ c)
            sq = pp[ua][:, None] + pp[ub][None, :] - 2.0 * np.einsum("uf,vf->uv", pw[ua], p[ub])
            delta = (1.0 / r[a] + 1.0 / r[b]) * sq + lin[ua][:, None] - lin[ub][None, :]
            i, j = np.unravel_index(int(np.argmin(delta)), delta.shape)
            if delta[i, j] < -_IMPROVEMENT and (best is None or delta[i, j] < best[0]):
                best = (float(delta[i, j]), int(ua[i]), int(ub[j]))
    return None if best is None else (best[1], best[2])


# Achieved image shares further than this from the requested ratios (and further than one
# image) are reported.
RATIO_TOLERANCE = 0.02


def _unit_name(unit: list[ImageItem], extra_groups: Mapping[str, str] | None) -> str:
    groups = sorted({img.group for img in unit if img.group is not None})
    clusters = sorted(
        {c for img in unit if extra_groups and (c := _unit_cluster(img, extra_groups))}
    )
    if groups:
        name = f"group {groups[0]}"
        if len(groups) > 1:
            name += f" (joined with {len(groups) - 1} other group(s) by --groups clusters)"
        elif len(unit) > 1 and any(img.group is None for img in unit):
            name += " (with images joined by --groups clusters)"
        return name
    if clusters:
        return f"--groups cluster {clusters[0]}"
    return f"image {unit[0].file_name}"


def _image_shares(
    groups: list[list[ImageItem]], assignment: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Images per unit, and each split's share of all images."""
    sizes = np.array([len(u) for u in groups], dtype=np.float64)
    got = np.array([sizes[assignment == s].sum() for s in range(len(SPLITS))]) / sizes.sum()
    return sizes, got


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %" if abs(100 * v - round(100 * v)) < 0.05 else f"{100 * v:.1f} %"


def ratio_warning(
    groups: list[list[ImageItem]],
    assignment: NDArray[np.int64],
    ratios: tuple[float, float, float],
    extra_groups: Mapping[str, str] | None = None,
) -> str | None:
    """Why the achieved image shares miss ``ratios``, or None when they are close enough.

    Close enough: within :data:`RATIO_TOLERANCE` of every ratio, or within one image.
    """
    sizes, got = _image_shares(groups, assignment)
    n = float(sizes.sum())
    asked = np.asarray(ratios)
    tol = max(RATIO_TOLERANCE, 1.0 / n)
    if np.all(np.abs(got - asked) <= tol + 1e-9):
        return None
    names = "/".join(SPLITS)
    head = (
        f"split ratios missed: asked {names} "
        f"{'/'.join(f'{100 * v:.0f}' for v in asked)} %, got "
        f"{'/'.join(f'{100 * v:.0f}' for v in got)} %"
    )
    share = sizes / n
    causes = []
    for s in np.flatnonzero(got - asked > tol + 1e-9):
        members = np.flatnonzero(assignment == s)
        members = members[np.argsort(-sizes[members], kind="stable")]
        others = [t for t in range(len(SPLITS)) if t != s and asked[t] > 0]
        # Units too large for every other split had to go to this one.
        forced = [u for u in members if all(share[u] > asked[t] + tol for t in others)]
        if forced and share[forced].sum() > asked[s] + tol:
            culprits = forced
        elif share[members[0]] > asked[s] + tol:
            culprits = [members[0]]
        else:
            continue
        if len(culprits) == 1:
            u = culprits[0]
            causes.append(
                f"{_unit_name(groups[u], extra_groups)} has {int(sizes[u])} images = "
                f"{_pct(share[u])} of the data and must stay in one split; "
                f"{SPLITS[s]} can't be {_pct(asked[s])}"
            )
            continue
        listed = ", ".join(
            f"{_unit_name(groups[u], extra_groups)} ({int(sizes[u])} images)" for u in culprits[:3]
        )
        more = f" and {len(culprits) - 3} more" if len(culprits) > 3 else ""
        room = " and ".join(f"{SPLITS[t]} ({_pct(asked[t])})" for t in others)
        causes.append(
            f"{listed}{more} are each too large for {room} and hold "
            f"{_pct(share[culprits].sum())} of the data together; "
            f"{SPLITS[s]} can't be {_pct(asked[s])}"
        )
    if not causes:
        big = int(np.argmax(sizes))
        causes.append(
            f"images that must stay together are too coarse for these ratios: {int(n)} images "
            f"in {len(groups)} units, the largest, {_unit_name(groups[big], extra_groups)}, "
            f"has {int(sizes[big])} images = {_pct(share[big])} of the data"
        )
    return f"{head}: " + "; ".join(causes)


@dataclass
class SplitResult:
    """The split dataset, what was left out, per-split counts and how well the ratios hold."""

    dataset: Dataset
    dropped: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    units: int = 0
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{"requested": {split: share}, "achieved": {split: share}}`` (shares of images)."""
    ratio_warning: str | None = None
    """Why the achieved shares miss the requested ones, when they do by more than a little."""
    groups_match: GroupsMatch | None = None
    """How the ``extra_groups`` clusters matched the images, when some were given."""


def split_dataset(
    ds: Dataset,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
    extra_groups: Mapping[str, str] | None = None,
    keep_unlabeled: bool = False,
) -> SplitResult:
    """Assign every image a split; returns a new :class:`Dataset` sharing the image items' data.

    Images tagged ``unlabeled`` are left out (reported), unless ``keep_unlabeled`` (an image
    tree split for the ``images`` format, where no image has labels).
    """
    rng = np.random.default_rng(seed)
    dropped: list[dict[str, Any]] = []
    usable: list[ImageItem] = []
    for img in ds.images:
        if img.attributes.get("unlabeled") and not keep_unlabeled:
            dropped.append(
                {
                    "item": img.file_name,
                    "reason": "unlabeled image (clip without annotations): not a negative; read it with --unlabeled negative to use it as one",
                }
            )
            continue
        usable.append(img)
    if not usable:
        hint = (
            "; an image tree without labels is split with --format images"
            if ds.images and dropped
            else ""
        )
        raise UsageError(f"nothing to split: the dataset has no labelled images{hint}")
    cat_index = {c.id: i for i, c in enumerate(sorted(ds.categories, key=lambda c: c.id))}
    folders = sorted({f for img in usable if (f := _folder(img)) is not None})
    folder_index = {f: i for i, f in enumerate(folders)}
    found = units(usable, extra_groups)
    # The seed orders the units, which breaks every tie between equal units.
    groups = [found[i] for i in rng.permutation(len(found))]
    feats = np.stack([_features(u, cat_index, folder_index) for u in groups])
    assignment = _assign(feats, np.asarray(ratios, dtype=np.float64))
    for gi, unit in enumerate(groups):
        for img in unit:
            img.split = SPLITS[assignment[gi]]
    order_index = {id(img): i for i, img in enumerate(usable)}
    images = sorted(
        (img for u in groups for img in u),
        key=lambda im: (SPLITS.index(im.split or "train"), order_index[id(im)]),
    )
    out = ds.subset(images)
    _, achieved = _image_shares(groups, assignment)
    return SplitResult(
        out,
        dropped,
        summarize(out, Counter(SPLITS[int(a)] for a in assignment)),
        len(groups),
        ratios={
            "requested": {s: round(float(v), 4) for s, v in zip(SPLITS, ratios, strict=True)},
            "achieved": {s: round(float(v), 4) for s, v in zip(SPLITS, achieved, strict=True)},
        },
        ratio_warning=ratio_warning(groups, assignment, ratios, extra_groups),
        groups_match=match_groups(usable, extra_groups) if extra_groups is not None else None,
    )


def summarize(ds: Dataset, units_per_split: Mapping[str, int]) -> list[dict[str, Any]]:
    """Per-split rows: images, their share of all images, groups, negatives, boxes, small
    boxes, boxes per class.

    ``groups`` is ``units_per_split``: the units each split kept together (see
    :func:`units`: a clip, the tiles of one image, a cluster of a dedupe report, or an
    image in none of them); over all rows they add up to :attr:`SplitResult.units`.
    """
    names = ds.category_names()
    rows: list[dict[str, Any]] = []
    total = max(1, len(ds.images))
    for split, imgs in ds.splits().items():
        boxes = [a for im in imgs for a in im.annotations]
        per_class = {n: 0 for n in names.values()}
        for a in boxes:
            per_class[names[a.category_id]] += 1
        rows.append(
            {
                "split": split,
                "images": len(imgs),
                "share": round(len(imgs) / total, 4),
                "groups": int(units_per_split.get(split, 0)),
                "negatives": sum(1 for im in imgs if not im.annotations),
                "boxes": len(boxes),
                "small": sum(1 for a in boxes if a.box_area < SMALL_AREA),
                **per_class,
            }
        )
    order = {s: i for i, s in enumerate(SPLITS)}
    rows.sort(key=lambda r: order.get(r["split"], 99))
    return rows


def check_no_leaks(ds: Dataset) -> list[str]:
    """Groups found in more than one split (empty when the split is leakage-free)."""
    seen: dict[str, set[str]] = {}
    for img in ds.images:
        if img.group is not None:
            seen.setdefault(img.group, set()).add(img.split or "")
    return sorted(g for g, s in seen.items() if len(s) > 1)
