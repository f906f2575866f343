"""Leakage-free, stratified train/val/test splits.

Images are first joined into units that must stay together: their ``group`` (a video
clip, a Roboflow clip, the parent of tiles) and any extra grouping such as the
clusters of a dedupe report. Units are then assigned greedily, largest first (ties
broken by the seed), each to the split whose quota it helps most. The quota is
tracked for images, boxes of every class, small boxes (COCO small: area < 32²) and
negatives, so class presence, the share of small objects and negatives follow the
ratios in every split.

Images tagged ``unlabeled`` (clips with no annotations) are not training-ready: they
are left out and reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0 or values[0] <= 0:
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

    ``extra_groups`` maps an image's ``file_name`` or ``original_path`` to a cluster id.
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
            cid = extra_groups.get(img.file_name) or extra_groups.get(
                str(img.attributes.get("original_path", ""))
            )
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


def _features(unit: list[ImageItem], cat_index: dict[int, int]) -> np.ndarray:
    """[images, negatives, small boxes, boxes of class 0..K-1] of a unit."""
    k = len(cat_index)
    f = np.zeros(3 + k)
    for img in unit:
        f[0] += 1
        if not img.annotations:
            f[1] += 1
        for a in img.annotations:
            if a.box_area < SMALL_AREA:
                f[2] += 1
            f[3 + cat_index[a.category_id]] += 1
    return f


@dataclass
class SplitResult:
    """The split dataset, what was left out, and per-split counts."""

    dataset: Dataset
    dropped: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    units: int = 0


def split_dataset(
    ds: Dataset,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
    extra_groups: Mapping[str, str] | None = None,
) -> SplitResult:
    """Assign every image a split; returns a new :class:`Dataset` sharing the image items' data."""
    rng = np.random.default_rng(seed)
    dropped: list[dict[str, Any]] = []
    usable: list[ImageItem] = []
    for img in ds.images:
        if img.attributes.get("unlabeled"):
            dropped.append(
                {
                    "item": img.file_name,
                    "reason": "unlabeled image (clip without annotations): not a negative; read it with --unlabeled negative to use it as one",
                }
            )
            continue
        usable.append(img)
    if not usable:
        raise UsageError("nothing to split: the dataset has no labelled images")
    cat_index = {c.id: i for i, c in enumerate(sorted(ds.categories, key=lambda c: c.id))}
    groups = units(usable, extra_groups)
    feats = np.stack([_features(u, cat_index) for u in groups])
    totals = feats.sum(axis=0)
    target = np.asarray(ratios)[:, None] * totals[None, :]
    # Weights: every criterion counts in proportion to its rarity, images most.
    weight = np.where(totals > 0, 1.0 / np.maximum(totals, 1e-9), 0.0)
    weight[0] *= 2.0
    current = np.zeros_like(target)
    order = rng.permutation(len(groups))
    order = order[np.argsort(-feats[order, 0], kind="stable")]
    assignment = np.empty(len(groups), dtype=np.int64)
    for gi in order:
        f = feats[gi]
        deficit = (target - current) * weight[None, :]
        # Gain: how much of this unit's content fills remaining quota in each split.
        gain = (np.minimum(f[None, :], np.clip(target - current, 0, None)) * weight[None, :]).sum(
            axis=1
        )
        over = (np.clip(current + f[None, :] - target, 0, None) * weight[None, :]).sum(axis=1)
        score = gain - over + 1e-6 * deficit.sum(axis=1)
        score[np.asarray(ratios) == 0] = -np.inf
        s = int(np.argmax(score))
        assignment[gi] = s
        current[s] += f
    images: list[ImageItem] = []
    for gi, unit in enumerate(groups):
        for img in unit:
            img.split = SPLITS[assignment[gi]]
    order_index = {id(img): i for i, img in enumerate(usable)}
    for img in sorted(
        (img for u in groups for img in u),
        key=lambda im: (SPLITS.index(im.split or "train"), order_index[id(im)]),
    ):
        images.append(img)
    out = ds.subset(images)
    return SplitResult(out, dropped, summarize(out), len(groups))


def summarize(ds: Dataset) -> list[dict[str, Any]]:
    """Per-split rows: images, groups, negatives, boxes, small boxes, boxes per class."""
    names = ds.category_names()
    rows: list[dict[str, Any]] = []
    for split, imgs in ds.splits().items():
        boxes = [a for im in imgs for a in im.annotations]
        per_class = {n: 0 for n in names.values()}
        for a in boxes:
            per_class[names[a.category_id]] += 1
        rows.append(
            {
                "split": split,
                "images": len(imgs),
                "groups": len(images_by_group(imgs)),
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
