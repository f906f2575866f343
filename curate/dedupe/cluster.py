"""From scored pairs to kept and dropped images: the duplicate rule and the two cluster modes.

- ``greedy`` (default): images are visited in keep-priority order; an image is dropped
  only when it is a duplicate of an image already *kept*, so similarity never chains
  (A~B and B~C with A kept drops B but keeps C unless A~C). Candidates are scored nearest
  first and an image stops at its first kept duplicate, so a clip of 899 near-identical
  frames costs about 899 scores, not 403,651.
- ``connected``: the connected components of the duplicate graph (union-find), the
  literature's reading; each component keeps its highest-priority image. Pairs already in
  one component are never scored, nor pairs whose :class:`SsimCeiling` (an exact upper
  bound of their SSIM from a few numbers per image) is below the threshold, which gives
  the same components as scoring every pair. Candidates go nearest first over the whole
  set, in rounds that re-check components before scoring; while clusters form, a round
  scores a spanning forest only, so a duplicate is not scored between images its round
  joins anyway. Low-texture images are many candidates apart (flat images sit together in
  the index) yet rarely duplicates: on 3,000 terrain crops 94 % of the pairs scored
  before were non-duplicates between different components, most of which the ceiling
  rules out.

With a refinement band, a pair whose working-resolution SSIM is inside the band is
re-scored at full resolution only when a decision waits for it: in greedy mode when it
comes before the image's first certain duplicate in nearest-first order, in connected
mode when its two images are not joined yet. The kept set and the clusters are those of
refining every such pair (in greedy mode each dropped image's duplicate too; in connected
mode the chain of links shown in the report may take another path).

Exact copies (the search's ``extra`` pairs) link each copy to one member of its group, not
to every member; exactness is transitive, so both modes close the groups: connected mode
joins a group through any of its pairs, and greedy mode drops a copy of a kept image at that
image (before looking further) whichever member of the group was kept, and a copy of a
dropped image at the image that one was dropped at, so exact copies share one cluster.

Reference images (``--against``) are kept first and never dropped; a new image that is a
duplicate of a reference image is dropped. Both modes are deterministic: the work done in
each round depends only on the data, never on the executor.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from curate.core.progress import NullProgress, Progress
from curate.dedupe import ssim as S
from curate.dedupe.index import Candidates
from curate.dedupe.neighbours import Search
from curate.dedupe.verify import PairScore, Scorer, VerifyItem

ClusterMode = Literal["greedy", "connected"]
Combine = Literal["all", "any"]

KEPT, DROPPED, UNDECIDED = 0, 1, -1
_ROUND_LIMITS = (1, 4, 16, 64, 1 << 30)
_BLOCK = 256


@dataclass(frozen=True, slots=True)
class DuplicateRule:
    """When a scored pair counts as a duplicate, and why.

    Exact copies always do. Otherwise the enabled whole-image tests (SSIM > ``ssim``,
    histogram intersection > ``hist``) must all pass (``combine="all"``) or one must
    (``"any"``); with ``roi``, the boxes must also match one-to-one and every matched
    region must have SSIM > ``roi_ssim``.
    """

    ssim: float | None = 0.85
    hist: float | None = None
    combine: Combine = "all"
    roi: bool = False
    roi_ssim: float = 0.85
    exact_only: bool = False

    def decide(self, s: PairScore) -> str | None:
        """The reason (``exact-file``, ``ssim``, ``ssim+hist+roi``, ...) or None."""
        if s.exact:
            return f"exact-{s.exact}"
        if self.exact_only:
            return None
        if self.roi and s.roi_match is False:
            return None
        passed: list[str] = []
        tests = 0
        if self.ssim is not None:
            tests += 1
            v = s.best_ssim
            if v is not None and v > self.ssim:
                passed.append("ssim")
        if self.hist is not None:
            tests += 1
            if s.hist is not None and s.hist > self.hist:
                passed.append("hist")
        if not passed or (self.combine == "all" and len(passed) < tests):
            return None
        if self.roi:
            if s.roi_match is None or (s.roi_ssim is not None and not s.roi_ssim > self.roi_ssim):
                return None
            passed.append("roi")
        return "+".join(passed)

    def needs_full(self, s: PairScore) -> bool:
        """Whether the decision on ``s`` (its reason included) waits for a full-resolution SSIM."""
        if not s.unsettled or self.ssim is None:
            return False
        return self.decide(replace(s, full_ssim=1.0)) != self.decide(replace(s, full_ssim=0.0))


@dataclass(slots=True)
class Resolution:
    """Kept/dropped per image, and for each dropped image the kept image it duplicates.

    ``link[i]``: the image through which ``i`` was found (its duplicate in greedy mode; in
    connected mode the neighbour whose positive pair joined it), ``link_reason[i]`` the
    rule's reason for that pair. ``cluster[i]``: index of the kept image of its cluster
    (itself when kept).
    """

    status: NDArray[np.int8]
    dup_of: NDArray[np.int64]
    link: NDArray[np.int64]
    link_reason: list[str | None]
    cluster: NDArray[np.int64]
    edges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def kept(self) -> NDArray[np.bool_]:
        return self.status == KEPT

    def members(self) -> dict[int, list[int]]:
        """Clusters with more than one image: kept image -> all members (kept first)."""
        out: dict[int, list[int]] = {}
        for i in np.flatnonzero(self.status == DROPPED):
            out.setdefault(int(self.cluster[i]), []).append(int(i))
        return {k: [k, *v] for k, v in sorted(out.items())}


def _new_resolution(n: int) -> Resolution:
    return Resolution(
        status=np.full(n, UNDECIDED, np.int8),
        dup_of=np.full(n, -1, np.int64),
        link=np.full(n, -1, np.int64),
        link_reason=[None] * n,
        cluster=np.arange(n, dtype=np.int64),
    )


def greedy(
    priority: Sequence[int],
    search: Search,
    scorer: Scorer,
    rule: DuplicateRule,
    *,
    reference: NDArray[np.bool_] | None = None,
    active: NDArray[np.bool_] | None = None,
    progress: Progress | None = None,
) -> Resolution:
    """Greedy clustering in ``priority`` order (see the module docstring).

    Images go in blocks. For each block the search finds neighbours among the images kept
    so far, which are scored in growing rounds (nearest 1, 4, 16, 64, then all) in batches
    the executor can spread; then the block is walked in order, scoring pairs with images
    kept earlier in the block as they arise. An image is dropped at its nearest kept
    duplicate, a kept exact copy first. ``active``: images taking part (others stay
    UNDECIDED).
    """
    n = search.n
    prog = progress or NullProgress()
    ref = np.zeros(n, bool) if reference is None else reference
    act = np.ones(n, bool) if active is None else active
    res = _new_resolution(n)
    rank = np.full(n, n, np.int64)
    rank[np.asarray(priority, np.int64)] = np.arange(len(priority))
    res.status[ref & act] = KEPT
    group = exact_groups(search.extra)
    kept_copy: dict[int, int] = {}  # exact group -> its first kept member
    dropped_at: dict[int, int] = {}  # exact group -> the kept image its first drop went to
    for i in sorted((i for i in group if ref[i] and act[i]), key=lambda i: rank[i]):
        kept_copy.setdefault(group[i], i)
    order = [int(i) for i in priority if act[i] and not ref[i]]
    blocks = [order[k : k + _BLOCK] for k in range(0, len(order), _BLOCK)]
    for block in prog.track(blocks, total=len(blocks), description="clustering (greedy)"):
        before = search.before(block, res.status == KEPT)
        _score_before(block, before, scorer, rule)
        found = {i: _first_duplicate(i, before[i], scorer, rule) for i in block}
        within = search.within([i for i in block if found[i][0] < 0], block, rank)
        for i in block:
            j, reason = _kept_copy(i, group, kept_copy, scorer, rule)
            if j < 0:
                j, reason = _copy_dropped_at(i, group, dropped_at, scorer, rule)
            if j < 0:
                j, reason = found[i]
            if j < 0:
                later = [k for k in within[i] if res.status[k] == KEPT]
                scorer.score([(i, k) for k in later], bar=False)
                _settle(scorer, rule, [(i, later)])
                j, reason = _first_duplicate(i, later, scorer, rule)
            if j < 0:
                res.status[i] = KEPT
                if i in group:
                    kept_copy.setdefault(group[i], i)
                continue
            res.status[i] = DROPPED
            if i in group:
                dropped_at.setdefault(group[i], j)
            res.dup_of[i] = res.link[i] = res.cluster[i] = j
            res.link_reason[i] = reason
            res.edges.append((i, j))
    return res


def exact_groups(pairs: Sequence[tuple[int, int]]) -> dict[int, int]:
    """Group of every image in an exact pair (the smallest index of its group)."""
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(int(a)), find(int(b))
        parent[max(ra, rb)] = min(ra, rb)
    return {a: find(a) for a in parent}


def _kept_copy(
    i: int, group: dict[int, int], kept_copy: dict[int, int], scorer: Scorer, rule: DuplicateRule
) -> tuple[int, str | None]:
    """The kept exact copy of ``i`` and the rule's reason, or (-1, None).

    The pair ``(i, kept copy)`` need not be a candidate: each copy is paired with one member
    of its group, and when that member was dropped the copy would be kept beside another.
    """
    g = group.get(i)
    j = kept_copy.get(g, -1) if g is not None else -1
    if j < 0:
        return -1, None
    scorer.score([(i, j)])
    s = scorer.memo_get(i, j)
    return (j, rule.decide(s)) if s.exact else (-1, None)


def _copy_dropped_at(
    i: int, group: dict[int, int], dropped_at: dict[int, int], scorer: Scorer, rule: DuplicateRule
) -> tuple[int, str | None]:
    """The kept image an earlier exact copy of ``i`` was dropped at, when ``i`` is a
    duplicate of it too, and the rule's reason; else (-1, None).

    Same pixels score the same against it, so a copy joins its group's cluster instead
    of the nearest image kept since (which would split exact copies over two clusters,
    and ``split --groups`` could then put them in two splits). The kept set is the same
    either way: the copy is a duplicate of a kept image.
    """
    g = group.get(i)
    j = dropped_at.get(g, -1) if g is not None else -1
    if j < 0:
        return -1, None
    scorer.score([(i, j)])
    _settle(scorer, rule, [(i, [j])])
    reason = rule.decide(scorer.memo_get(i, j))
    return (j, reason) if reason is not None else (-1, None)


def _score_before(
    block: Sequence[int], before: dict[int, list[int]], scorer: Scorer, rule: DuplicateRule
) -> None:
    """Score each image against images kept before its block, nearest first, in rounds."""
    open_ = list(block)
    done = dict.fromkeys(block, 0)
    for limit in _ROUND_LIMITS:
        want: list[tuple[int, int]] = []
        for i in open_:
            want.extend((i, j) for j in before[i][done[i] : done[i] + limit])
        if not want:
            return
        scorer.score(want, bar=False)  # the clustering's bar covers it (one, not one a round)
        # Earlier rounds hold no duplicate of an open image, so its walk starts here.
        seen = {i: before[i][done[i] : done[i] + limit] for i in open_}
        _settle(scorer, rule, list(seen.items()))
        still = []
        for i in open_:
            done[i] += limit
            found = any(rule.decide(scorer.memo_get(i, j)) is not None for j in seen[i])
            if not found and done[i] < len(before[i]):
                still.append(i)
        open_ = still


def _settle(
    scorer: Scorer, rule: DuplicateRule, walks: Sequence[tuple[int, Sequence[int]]]
) -> None:
    """Refine what the first duplicate of each walk ``(i, candidates)`` waits for.

    A walk goes through its scored pairs in order and ends at its first certain duplicate
    (or at the first unscored pair, as :func:`_first_duplicate` does); the pair it stops
    at for want of a full-resolution SSIM is refined, with those of every other walk in one
    batch, until no walk waits.
    """
    if not scorer.refines:
        return
    pos = [0] * len(walks)
    while True:
        need: list[tuple[int, int]] = []
        for w, (i, cands) in enumerate(walks):
            k = pos[w]
            while k < len(cands):
                s = scorer.get(i, cands[k])
                if s is not None and rule.needs_full(s):
                    need.append((i, cands[k]))
                    break
                k = len(cands) if s is None or rule.decide(s) is not None else k + 1
            pos[w] = k
        if not need:
            return
        scorer.refine(need)


def _first_duplicate(
    i: int, cands: Sequence[int], scorer: Scorer, rule: DuplicateRule
) -> tuple[int, str | None]:
    """The nearest candidate that is a scored duplicate of ``i`` (stops at the first unscored)."""
    for j in cands:
        s = scorer.get(i, j)
        if s is None:
            break
        reason = rule.decide(s)
        if reason is not None:
            return j, reason
    return -1, None


class SsimCeiling:
    """Exact upper bounds of working-resolution SSIM for many pairs at once, from a few
    numbers per image: which pairs no duplicate rule can pass, so need no score.

    Each image's SSIM terms (over the interior: local means ``m``, deviations ``s``) are
    cut into a square grid of blocks; a block keeps the mean, the least and the greatest
    of each. Per window, SSIM is at most ``l * c``, with ``l = (2 m_a m_b + C1) / (m_a^2 +
    m_b^2 + C1)`` and ``c`` the same of ``s`` with ``C2`` (Cauchy-Schwarz, as
    :func:`~curate.dedupe.ssim.ssim_upper_bound`). Over a block, ``l`` is at most its value
    at the closest ends of the two ranges of ``m`` (1 where they meet), ``c`` likewise; and
    since ``1 - l >= (m_a - m_b)^2 / (M_a^2 + M_b^2 + C1)`` with ``M`` the block's greatest
    ``m``, the block's mean of ``1 - l`` is at least that of its means (Jensen), ``dl``;
    ``dc`` likewise. A block's mean SSIM is therefore at most the least of ``l_max *
    c_max``, ``c_max * (1 - dl)`` and ``l_max * (1 - dc)``; the ceiling is their mean over
    the blocks, weighted by size.

    A 4x4 grid goes first, then :data:`CEILING_GRID` (16x16) for the pairs it leaves. On
    3,000 low-texture terrain crops the two rule out 93 % of the candidate pairs the
    per-pair bound does, at about a tenth of its cost; 7 KB per image.

    Only pairs of equal thumbnail shape (compared without resizing) get a ceiling; others,
    and exact copies (same bytes or same pixel hash, as the scorer finds them), get none.
    """

    def __init__(self, items: Sequence[VerifyItem], limit: float) -> None:
        self.items = items
        self.limit = limit
        n = len(items)
        self._shape = np.array([it.thumb.shape[:2] for it in items], np.int64).reshape(n, 2)
        self._file = _codes([it.content_hash for it in items])
        self._pixels = _codes([it.pixel_hash for it in items])
        # Pages are touched as images are prepared.
        self._grids = [np.zeros((n, 7, g * g), np.float32) for g in (4, CEILING_GRID)]
        self._ready = np.zeros(n, bool)

    @classmethod
    def for_rule(cls, scorer: Scorer, rule: DuplicateRule) -> SsimCeiling | None:
        """The ceiling that rules out pairs ``rule`` cannot pass, or None when SSIM alone
        cannot rule a pair out (no SSIM test, or a histogram test that may pass alone).

        With a refinement band a pair is re-scored at full resolution when its working SSIM
        is inside it, so only a ceiling below the band rules the pair out.
        """
        spec = scorer.spec
        if rule.exact_only:
            return cls(scorer.items, math.inf)
        if rule.ssim is None or not spec.ssim or (rule.hist is not None and rule.combine == "any"):
            return None
        limit = rule.ssim
        if spec.refines:
            limit = min(limit, spec.refine_threshold - spec.refine_below)
        return cls(scorer.items, limit)

    def rules_out(self, a: NDArray[np.integer], b: NDArray[np.integer]) -> NDArray[np.bool_]:
        """Which pairs ``(a[k], b[k])`` cannot be duplicates (ceiling below the limit; with
        ``exact_only``, every pair but exact copies)."""
        a, b = _int64(a), _int64(b)
        exact = (self._file[a] == self._file[b]) | (
            (self._pixels[a] >= 0) & (self._pixels[a] == self._pixels[b])
        )
        if math.isinf(self.limit):
            return ~exact
        same = (self._shape[a] == self._shape[b]).all(axis=1) & (
            self._shape[a].min(axis=1) >= S.MIN_SIDE
        )
        out = np.zeros(len(a), bool)
        idx = np.flatnonzero(same & ~exact)
        self._prepare(np.union1d(a[idx], b[idx]))
        for grid in self._grids:
            out[idx] = _ceiling(grid, a[idx], b[idx]) < self.limit
            idx = idx[~out[idx]]
        return out

    def ceiling(self, a: NDArray[np.integer], b: NDArray[np.integer]) -> NDArray[np.float64]:
        """Upper bounds of the SSIM of pairs of images of equal thumbnail shape."""
        a, b = _int64(a), _int64(b)
        self._prepare(np.union1d(a, b))
        return np.minimum(*[_ceiling(grid, a, b) for grid in self._grids])

    def _prepare(self, idx: NDArray[np.int64]) -> None:
        for k in idx[~self._ready[idx]].tolist():
            thumb = self.items[k].thumb
            if min(thumb.shape[:2]) >= S.MIN_SIDE:
                t = S.terms(thumb)
                for grid in self._grids:
                    grid[k] = _block_stats(t, math.isqrt(grid.shape[2]))
            self._ready[k] = True


CEILING_GRID = 16
_CEILING_SLACK = 1e-3
_CEILING_CHUNK = 1024


def _ceiling(
    stats: NDArray[np.float32], a: NDArray[np.int64], b: NDArray[np.int64]
) -> NDArray[np.float64]:
    """The ceiling of pairs ``(a[k], b[k])`` from one grid's :func:`_block_stats`."""
    out = np.empty(len(a), np.float64)
    for lo in range(0, len(a), _CEILING_CHUNK):
        sa, sb = stats[a[lo : lo + _CEILING_CHUNK]], stats[b[lo : lo + _CEILING_CHUNK]]
        lmax = _closest_ends(sa[:, 1], sa[:, 2], sb[:, 1], sb[:, 2], S.C1)
        cmax = _closest_ends(sa[:, 4], sa[:, 5], sb[:, 4], sb[:, 5], S.C2)
        dl = np.square(sa[:, 0] - sb[:, 0])
        dl /= np.square(sa[:, 2]) + np.square(sb[:, 2]) + np.float32(S.C1)
        dc = np.square(sa[:, 3] - sb[:, 3])
        dc /= np.square(sa[:, 5]) + np.square(sb[:, 5]) + np.float32(S.C2)
        block = np.minimum(lmax * cmax, np.minimum(cmax * (1 - dl), lmax * (1 - dc)))
        out[lo : lo + _CEILING_CHUNK] = np.einsum("ij,ij->i", block, sa[:, 6], dtype=np.float64)
    # Float32 terms and sums: keep the ceiling above the SSIM the scorer computes.
    return out + _CEILING_SLACK


def _int64(a: NDArray[np.integer]) -> NDArray[np.int64]:
    return np.asarray(a, np.int64)


def _codes(values: Sequence[str | None]) -> NDArray[np.int64]:
    """Equal values get equal codes; None gets -1."""
    seen: dict[str, int] = {}
    return np.array([-1 if v is None else seen.setdefault(v, len(seen)) for v in values], np.int64)


def _block_stats(t: S.SsimTerms, grid: int) -> NDArray[np.float32]:
    """``(7, grid**2)``: per block the mean, least and greatest local mean, the same of the
    local deviation, and the block's share of the windows (blocks past a small image: 0)."""
    m = t.m2.astype(np.float64) / math.sqrt(2.0)
    s = t.s2.astype(np.float64) / math.sqrt(2.0)
    h, w = m.shape
    gh, gw = min(grid, h), min(grid, w)
    ys = np.linspace(0, h, gh + 1).round().astype(np.intp)[:-1]
    xs = np.linspace(0, w, gw + 1).round().astype(np.intp)[:-1]
    count = np.outer(np.diff([*ys, h]), np.diff([*xs, w])).astype(np.float64)
    out = np.zeros((7, grid, grid), np.float64)
    for row, v in ((0, m), (3, s)):
        out[row, :gh, :gw] = np.add.reduceat(np.add.reduceat(v, ys, 0), xs, 1) / count
        out[row + 1, :gh, :gw] = np.minimum.reduceat(np.minimum.reduceat(v, ys, 0), xs, 1)
        out[row + 2, :gh, :gw] = np.maximum.reduceat(np.maximum.reduceat(v, ys, 0), xs, 1)
    out[6, :gh, :gw] = count / count.sum()
    return out.reshape(7, -1).astype(np.float32)


def _closest_ends(
    lo_a: NDArray[np.float32],
    hi_a: NDArray[np.float32],
    lo_b: NDArray[np.float32],
    hi_b: NDArray[np.float32],
    c: float,
) -> NDArray[np.float32]:
    """The greatest ``(2xy + c) / (x^2 + y^2 + c)`` over ``x`` in ``[lo_a, hi_a]``, ``y`` in
    ``[lo_b, hi_b]`` (``x, y >= 0``): it grows as ``x`` and ``y`` get closer, so it is
    taken at the closest points of the two ranges (1 where they meet)."""
    x = np.clip(lo_b, lo_a, hi_a)
    y = np.clip(x, lo_b, hi_b)
    gap = x - y
    den = x * x
    den += y * y
    den += np.float32(c)
    gap *= gap
    gap /= den
    return np.subtract(np.float32(1.0), gap, out=gap)


def connected(
    priority: Sequence[int],
    pairs: Iterable[Candidates],
    scorer: Scorer,
    rule: DuplicateRule,
    *,
    reference: NDArray[np.bool_] | None = None,
    active: NDArray[np.bool_] | None = None,
    progress: Progress | None = None,
) -> Resolution:
    """Connected components of the duplicate graph over the candidate ``pairs``.

    The pairs (from tiles) are taken nearest first over all of them, in rounds; each round
    first drops the pairs already inside one component (see :func:`_join`), and a pair
    whose :class:`SsimCeiling` rules it out is never scored.
    """
    n = len(priority)
    prog = progress or NullProgress()
    ref = np.zeros(n, bool) if reference is None else reference
    act = np.ones(n, bool) if active is None else active
    res = _new_resolution(n)
    parent = np.arange(n, dtype=np.int64)
    pi, pj = _nearest_first(pairs, act, ref, prog)
    _join(pi, pj, parent, scorer, rule, res, SsimCeiling.for_rule(scorer, rule), prog)
    roots = _roots(parent)
    rank = np.full(n, n, np.int64)
    rank[np.asarray(priority, np.int64)] = np.arange(len(priority))

    def exact(a: int, b: int) -> bool:
        s = scorer.get(a, b)
        return s is not None and bool(s.exact)

    _assign_components(roots, rank, ref, act, res, exact)
    return res


def _nearest_first(
    pairs: Iterable[Candidates], act: NDArray[np.bool_], ref: NDArray[np.bool_], prog: Progress
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """The live pairs of every tile (both images active, not both references), nearest
    first over all tiles (ties by ``i``, then ``j``)."""
    kept_i: list[NDArray[np.int32]] = []
    kept_j: list[NDArray[np.int32]] = []
    kept_d: list[NDArray[np.float32]] = []
    for tile in prog.track(pairs, description="candidate pairs (connected)"):
        live = act[tile.i] & act[tile.j] & ~(ref[tile.i] & ref[tile.j])
        kept_i.append(tile.i[live].astype(np.int32))
        kept_j.append(tile.j[live].astype(np.int32))
        kept_d.append(tile.dist[live].astype(np.float32))
    if not kept_i:
        return np.empty(0, np.int32), np.empty(0, np.int32)
    c = Candidates(np.concatenate(kept_i), np.concatenate(kept_j), np.concatenate(kept_d))
    del kept_i, kept_j, kept_d
    order = c.order()
    return c.i[order], c.j[order]


#: Rounds of :func:`_join`: a spanning forest takes at most this many pairs; otherwise
#: batches start at the first and double up to the second.
_FOREST_MAX = 65536
_BATCH_MIN, _BATCH_MAX = 256, 65536
#: Pairs checked against the ceiling at a time.
_CHECK_CHUNK = 4096


def _join(
    pi: NDArray[np.int32],
    pj: NDArray[np.int32],
    parent: NDArray[np.int64],
    scorer: Scorer,
    rule: DuplicateRule,
    res: Resolution,
    ceiling: SsimCeiling | None,
    progress: Progress | None = None,
) -> None:
    """Score the pairs (nearest first) in rounds until each is scored, ruled out by
    ``ceiling`` or inside one component, joining the duplicates.

    Each round starts from the pending pairs whose images are in different components. The
    first takes the nearest :data:`_BATCH_MIN`. After a round in which most pairs joined
    components (clusters forming), the next takes a spanning forest of them in order
    (Kruskal): a pair whose components the round's earlier pairs would connect waits for
    the next round, so no duplicate scored joins images already joined in its round. After
    one in which few joined (pairs between components that stay apart), the next takes the
    next pairs in order, batches doubling. A pair meets the ceiling just before it is
    taken.
    """
    pending = np.arange(len(pi))
    done = np.zeros(len(pi), bool)  # scored, or ruled out by the ceiling
    checked = np.zeros(len(pi), bool)

    def admit(idx: NDArray[np.intp]) -> NDArray[np.intp]:
        new = idx[~checked[idx]]
        if ceiling is not None and len(new):
            out = ceiling.rules_out(pi[new], pj[new])
            done[new[out]] = True
        checked[new] = True
        return idx[~done[idx]]

    forest, batch = False, _BATCH_MIN  # the first round measures how often pairs join
    rounds = (progress or NullProgress()).track(
        itertools.count(), description="clustering (connected): rounds"
    )
    for _ in rounds:
        roots = _roots(parent)
        pending = pending[~done[pending]]
        pending = pending[roots[pi[pending]] != roots[pj[pending]]]
        if not len(pending):
            return
        take = _forest(pending, roots, pi, pj, admit) if forest else _first(pending, batch, admit)
        if not len(take):
            continue  # every pair walked was ruled out
        done[take] = True
        pairs = list(zip(pi[take].tolist(), pj[take].tolist(), strict=True))
        joined = _score_and_join(pairs, parent, scorer, rule, res)
        if joined * 8 > len(pairs):
            forest, batch = True, _BATCH_MIN
        elif forest:
            forest = False
        else:
            batch = min(batch * 2, _BATCH_MAX)


def _forest(
    pending: NDArray[np.intp],
    roots: NDArray[np.int64],
    pi: NDArray[np.int32],
    pj: NDArray[np.int32],
    admit: Callable[[NDArray[np.intp]], NDArray[np.intp]],
) -> NDArray[np.intp]:
    """The pending pairs, in order, that join components not yet joined by the pairs
    taken before them (at most :data:`_FOREST_MAX`; a walk of at most four times that)."""
    up: dict[int, int] = {}

    def find(a: int) -> int:
        while (b := up.get(a, a)) != a:
            up[a] = up.get(b, b)
            a = b
        return a

    taken: list[int] = []
    for lo in range(0, min(len(pending), 4 * _FOREST_MAX), _CHECK_CHUNK):
        chunk = pending[lo : lo + _CHECK_CHUNK]
        # Only pairs the forest may still take meet the ceiling (it costs more than this).
        ra, rb = roots[pi[chunk]].tolist(), roots[pj[chunk]].tolist()
        apart = np.array([find(a) != find(b) for a, b in zip(ra, rb, strict=True)], bool)
        chunk = admit(chunk[apart])
        ra, rb = roots[pi[chunk]].tolist(), roots[pj[chunk]].tolist()
        for k, a, b in zip(chunk.tolist(), ra, rb, strict=True):
            a, b = find(a), find(b)
            if a != b:
                up[max(a, b)] = min(a, b)
                taken.append(k)
        if len(taken) >= _FOREST_MAX:
            break
    return np.array(taken[:_FOREST_MAX], np.intp)


def _first(
    pending: NDArray[np.intp], batch: int, admit: Callable[[NDArray[np.intp]], NDArray[np.intp]]
) -> NDArray[np.intp]:
    """The first ``batch`` pending pairs the ceiling does not rule out."""
    out: list[NDArray[np.intp]] = []
    have = 0
    for lo in range(0, len(pending), _CHECK_CHUNK):
        got = admit(pending[lo : lo + _CHECK_CHUNK])[: batch - have]
        out.append(got)
        have += len(got)
        if have >= batch:
            break
    return np.concatenate(out) if out else np.empty(0, np.intp)


def _score_and_join(
    pairs: Sequence[tuple[int, int]],
    parent: NDArray[np.int64],
    scorer: Scorer,
    rule: DuplicateRule,
    res: Resolution,
) -> int:
    """Score ``pairs`` and join the duplicates; how many joined two components.

    A pair whose decision waits for a full-resolution SSIM is refined only when its
    images are still apart once the certain duplicates are joined.
    """
    scorer.score(pairs, bar=False)  # the clustering's bar covers it (one, not one a round)
    wait = {(a, b) for a, b in pairs if _waits(scorer, rule, a, b)}
    joined = _join_duplicates([p for p in pairs if p not in wait], parent, scorer, rule, res)
    waiting = [(a, b) for a, b in pairs if (a, b) in wait and _find(parent, a) != _find(parent, b)]
    if waiting:
        scorer.refine(waiting)
    return joined + _join_duplicates(waiting, parent, scorer, rule, res)


def _waits(scorer: Scorer, rule: DuplicateRule, a: int, b: int) -> bool:
    s = scorer.get(a, b)
    return s is not None and rule.needs_full(s)


def _join_duplicates(
    pairs: Sequence[tuple[int, int]],
    parent: NDArray[np.int64],
    scorer: Scorer,
    rule: DuplicateRule,
    res: Resolution,
) -> int:
    """Join the pairs that are duplicates (recorded as edges); how many joined two sets."""
    joined = 0
    for a, b in pairs:
        s = scorer.get(a, b)
        if s is not None and rule.decide(s) is not None:
            res.edges.append((a, b))
            joined += _union(parent, a, b)
    return joined


def _roots(parent: NDArray[np.int64]) -> NDArray[np.int64]:
    """Root of every node (pointer jumping, vectorised); also compresses ``parent``."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent[:] = grand


def _find(parent: NDArray[np.int64], a: int) -> int:
    while parent[a] != a:
        a = int(parent[a])
    return a


def _union(parent: NDArray[np.int64], a: int, b: int) -> int:
    """Join the sets of ``a`` and ``b``; 1 when they were apart."""
    ra, rb = _find(parent, a), _find(parent, b)
    if ra == rb:
        return 0
    parent[max(ra, rb)] = min(ra, rb)
    return 1


def _assign_components(
    roots: NDArray[np.int64],
    rank: NDArray[np.int64],
    ref: NDArray[np.bool_],
    act: NDArray[np.bool_],
    res: Resolution,
    exact: Callable[[int, int], bool] = lambda a, b: False,
) -> None:
    """Keep references and each component's best image; link the rest along positive pairs.

    Each dropped image is linked to the neighbour that reached it first, breadth-first from
    the kept images, and duplicates the kept image its chain starts from: with several
    reference images in one component, the one it is nearest in the graph, not whichever
    leads the component. At each step exact copies (``exact``) are followed first, so an
    exact copy of a reference image is its copy, not a near duplicate of another reference
    image that reached it too (QA round 8: exact copies were reported as SSIM duplicates
    of a brightness-edited reference image).
    """
    adj: dict[int, list[int]] = {}
    for a, b in res.edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    comps: dict[int, list[int]] = {}
    for i in np.flatnonzero(act):
        comps.setdefault(int(roots[i]), []).append(int(i))
    for members in comps.values():
        refs = [m for m in members if ref[m]]
        keepers = refs or [min(members, key=lambda m: (rank[m], m))]
        head = min(keepers, key=lambda m: (rank[m], m))
        for m in members:
            res.status[m] = KEPT if m in keepers else DROPPED
            res.cluster[m] = head
        origin = {k: k for k in keepers}
        frontier = sorted(keepers, key=lambda m: (rank[m], m))
        while frontier:
            nxt: list[int] = []
            for copies_only in (True, False):
                for u in frontier:
                    for v in sorted(adj.get(u, ()), key=lambda e: (rank[e], e)):
                        if v in origin or (copies_only and not exact(u, v)):
                            continue
                        origin[v] = origin[u]
                        res.link[v] = u
                        res.dup_of[v] = origin[u]
                        nxt.append(v)
            frontier = nxt


def priority_order(keys: Sequence[tuple[float, ...]]) -> list[int]:
    """Indices sorted by key (smaller first); ties by index."""
    return sorted(range(len(keys)), key=lambda i: (*keys[i], i))


def link_reasons(res: Resolution, scorer: Scorer, rule: DuplicateRule) -> None:
    """Fill ``link_reason`` of connected-mode links from their scores."""
    for i in np.flatnonzero(res.status == DROPPED):
        j = int(res.link[i])
        if j < 0:
            continue
        s = scorer.get(int(i), j)
        res.link_reason[int(i)] = rule.decide(s) if s is not None else None
