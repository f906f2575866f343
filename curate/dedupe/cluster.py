"""From scored pairs to kept and dropped images: the duplicate rule and the two cluster modes.

- ``greedy`` (default): images are visited in keep-priority order; an image is dropped
  only when it is a duplicate of an image already *kept*, so similarity never chains
  (A~B and B~C with A kept drops B but keeps C unless A~C). Candidates are scored nearest
  first and an image stops at its first kept duplicate, so a clip of 899 near-identical
  frames costs about 899 scores, not 403,651.
- ``connected``: the connected components of the duplicate graph (union-find), the
  literature's reading; each component keeps its highest-priority image. Pairs already in
  one component are never scored, which gives the same components as scoring every pair.

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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from curate.core.progress import NullProgress, Progress
from curate.dedupe.index import Candidates
from curate.dedupe.neighbours import Search
from curate.dedupe.verify import PairScore, Scorer

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
                scorer.score([(i, k) for k in later])
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
        scorer.score(want)
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
    """Connected components of the duplicate graph over the candidate ``pairs`` (in tiles).

    Within each tile the nearest pairs not yet joined are scored first and pairs already
    in one component are skipped, which gives the same components as scoring them all.
    """
    n = len(priority)
    prog = progress or NullProgress()
    ref = np.zeros(n, bool) if reference is None else reference
    act = np.ones(n, bool) if active is None else active
    res = _new_resolution(n)
    parent = np.arange(n, dtype=np.int64)
    for tile in prog.track(pairs, description="clustering (connected)"):
        if not len(tile):
            continue
        order = tile.order()
        pi, pj = tile.i[order].astype(np.int64), tile.j[order].astype(np.int64)
        live = act[pi] & act[pj] & ~(ref[pi] & ref[pj])
        _join_tile(pi[live], pj[live], parent, scorer, rule, res)
    roots = _roots(parent)
    rank = np.full(n, n, np.int64)
    rank[np.asarray(priority, np.int64)] = np.arange(len(priority))
    _assign_components(roots, rank, ref, act, res)
    return res


def _join_tile(
    pi: NDArray[np.int64],
    pj: NDArray[np.int64],
    parent: NDArray[np.int64],
    scorer: Scorer,
    rule: DuplicateRule,
    res: Resolution,
) -> None:
    """Score the nearest pairs not yet joined, join the duplicates, repeat.

    Batches start at 256 pairs and double while few of them join components.
    """
    pending = np.arange(len(pi))
    batch = 256
    while len(pending):
        roots = _roots(parent)
        pending = pending[roots[pi[pending]] != roots[pj[pending]]]
        if not len(pending):
            return
        take, pending = pending[:batch], pending[batch:]
        pairs = list(zip(pi[take].tolist(), pj[take].tolist(), strict=True))
        scorer.score(pairs)
        wait = {(a, b) for a, b in pairs if _waits(scorer, rule, a, b)}
        joined = _join_duplicates([p for p in pairs if p not in wait], parent, scorer, rule, res)
        # Refine only the pairs that could still join two components.
        waiting = [
            (a, b) for a, b in pairs if (a, b) in wait and _find(parent, a) != _find(parent, b)
        ]
        if waiting:
            scorer.refine(waiting)
        joined += _join_duplicates(waiting, parent, scorer, rule, res)
        batch = 256 if joined * 8 > len(pairs) else min(batch * 2, 65536)


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
) -> None:
    """Keep references and each component's best image; link the rest along positive pairs."""
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
        # Breadth-first from the kept images: each dropped image links to the neighbour
        # that reached it, so the report can show the chain of scored pairs.
        seen = set(keepers)
        frontier = sorted(keepers, key=lambda m: (rank[m], m))
        while frontier:
            nxt: list[int] = []
            for u in frontier:
                for v in sorted(adj.get(u, ()), key=lambda e: (rank[e], e)):
                    if v in seen:
                        continue
                    seen.add(v)
                    res.link[v] = u
                    res.dup_of[v] = head
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
