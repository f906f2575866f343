"""Candidate pairs as the cluster walks need them, with memory that grows linearly.

Two shapes of the same thing (see :mod:`curate.dedupe.index` for the feature and bound):

- :class:`Search` answers the greedy walk block by block: for a block of images, their
  neighbours among the images kept so far (:meth:`Search.before`), then, for those with
  no kept duplicate, among earlier images of the block (:meth:`Search.within`). Only kept
  images are searched, so a clip whose 899 frames are all alike costs about 899
  distances, not 403,651 pairs, and nothing quadratic is ever held.
- :meth:`Search.stream` yields every candidate pair tile by tile (1024 rows at a time),
  for connected components, which must see every pair between different components.

A search combines one or two feature spaces (the SSIM structure feature, the colour
histogram), each with its radius: with ``combine="all"`` a pair must be within both, with
``"any"`` within either. Above :data:`~curate.dedupe.index.EXACT_LIMIT` images, the
candidates come from LSH instead (:func:`~curate.dedupe.index.find_candidates`; with two
spaces, one hashed for ``"all"``, both for ``"any"``, then :func:`in_radii`) and are held as
a list. Exact-copy pairs found by hashing are added to both. Above :data:`PROJECT_MIN`
images, a space whose features spread along few directions is searched in a projection
onto them first, and only the pairs found there get their full distance (:meth:`Space.project`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from curate.core.progress import NullProgress, Progress
from curate.dedupe.index import (
    Adjacency,
    Candidates,
    adjacency,
    augmented,
    choose_projection,
    close_pairs,
    principal_directions,
)

PairFilter = Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.bool_]]

_ROWS = 1024
_COLS = 8192
#: Searches over more images than this look for a projection that prunes (see
#: :func:`~curate.dedupe.index.choose_projection`); below, the search is fast anyway.
PROJECT_MIN = 8192
#: Added to the radius in a projection, for float32 rounding of its squared distances.
_PROJECTED_SLACK = 1e-3


@dataclass(slots=True)
class Space:
    """Features ``(N, D)`` and the radius within which a pair is a candidate.

    The features are held once, as :func:`~curate.dedupe.index.augmented` rows; ``x`` is a
    view of them. With a projection (:meth:`project`), tiles are searched in its ``k``
    dimensions and only the pairs found there get their full distance.
    """

    x: NDArray[np.float32]
    radius: float
    aug: NDArray[np.float32] = field(init=False)
    low: NDArray[np.float32] | None = field(default=None, init=False)
    #: Principal directions by sample (shared by :meth:`with_radius` copies).
    _directions: dict[bytes, NDArray[np.float64]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.aug = augmented(self.x)
        self.x = self.aug[:, :-2]

    def with_radius(self, radius: float) -> Space:
        """The same features (rows and principal directions shared, not recomputed) with
        another radius and no projection yet: one search per threshold and cluster mode."""
        out = copy.copy(self)
        out.radius, out.low = radius, None
        return out

    def project(self, sample: NDArray[np.int64], seed: int = 0) -> bool:
        """Search in a projection when one estimated from rows ``sample`` pays."""
        rows = self.x[sample]
        key = sample.tobytes()
        if key not in self._directions:
            self._directions[key] = principal_directions(rows)
        basis = choose_projection(
            rows, self.radius, np.random.default_rng(seed), self._directions[key]
        )
        self.low = None if basis is None else augmented(self.x @ basis)
        return self.low is not None

    @property
    def searched(self) -> NDArray[np.float32]:
        """The augmented rows the tile products use (the projection's, when there is one)."""
        return self.aug if self.low is None else self.low

    def within(
        self,
        rows: NDArray[np.int64],
        cols: NDArray[np.int64],
        held: NDArray[np.float32] | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """Pairs ``(rows[a], cols[b])`` within the radius (tiled matrix products).

        ``held``: ``searched[cols]`` when the caller keeps it (otherwise gathered tile by
        tile).
        """
        out_r, out_c, out_d = [], [], []
        lhs = self.searched[rows]
        reach = self.radius if self.low is None else self.radius + _PROJECTED_SLACK
        for b in range(0, len(cols), _COLS):
            cb = cols[b : b + _COLS]
            rhs = held[b : b + _COLS] if held is not None else self.searched[cb]
            ii, jj, d = close_pairs(lhs, rhs, reach, step=_COLS)
            a, c = rows[ii], cb[jj]
            if self.low is not None:
                d = self.dist(a, c)
                near = d <= self.radius
                a, c, d = a[near], c[near], d[near]
            out_r.append(a)
            out_c.append(c)
            out_d.append(d)
        if not out_r:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
        return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_d)

    def dist(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.float32]:
        diff = self.x[a] - self.x[b]
        return np.sqrt(np.einsum("ij,ij->i", diff, diff)).astype(np.float32)


def in_radii(
    spaces: Sequence[Space], combine: Literal["all", "any"], pairs: Candidates
) -> NDArray[np.bool_]:
    """Which ``pairs`` lie within the radius of every space (``all``) or of one (``any``).

    ``pairs.dist`` holds the first space's distances; the others are computed.
    """
    i, j = pairs.i.astype(np.int64), pairs.j.astype(np.int64)
    inside = [pairs.dist <= spaces[0].radius]
    inside += [s.dist(i, j) <= s.radius for s in spaces[1:]]
    if combine == "all":
        return np.logical_and.reduce(inside)
    return np.logical_or.reduce(inside)


class _Held:
    """A growing contiguous copy of the kept images' rows in every space.

    The greedy walk searches each block against all images kept so far; gathering them
    again for every block would copy the whole kept set each time. The walk only ever adds
    kept images, so each is appended here once (capacity doubles); :meth:`Search.before`
    still checks answers against the current kept mask.
    """

    def __init__(self, spaces: Sequence[Space], n: int) -> None:
        self.spaces = spaces
        self.member = np.zeros(n, bool)
        self.idx = np.empty(0, np.int64)
        self.rows = [np.empty((0, s.searched.shape[1]), np.float32) for s in spaces]
        self.size = 0

    def update(
        self, want: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], list[NDArray[np.float32]]]:
        """Hold every image in ``want``; return the held indices and rows (views)."""
        new = np.flatnonzero(want & ~self.member)
        if len(new):
            end = self.size + len(new)
            if end > len(self.idx):
                cap = max(end, 2 * len(self.idx), 1024)
                self.idx = np.resize(self.idx, cap)
                self.rows = [_grown(r, cap) for r in self.rows]
            self.idx[self.size : end] = new
            for r, s in zip(self.rows, self.spaces, strict=True):
                r[self.size : end] = s.searched[new]
            self.member[new] = True
            self.size = end
        return self.idx[: self.size], [r[: self.size] for r in self.rows]


def _grown(a: NDArray[np.float32], rows: int) -> NDArray[np.float32]:
    out = np.empty((rows, a.shape[1]), a.dtype)
    out[: len(a)] = a
    return out


@dataclass
class Search:
    """Candidate pairs over ``spaces`` (see the module docstring).

    ``active``: images taking part. ``skip``: images whose pairs among themselves are not
    wanted (a reference set). ``extra``: exact-copy pairs ``(i, j)``, always candidates.
    ``keep_pair``: an extra test on pairs (object mode: boxes that can match).
    ``listed``: when set, candidates come from this list (LSH) instead of the spaces.
    ``project``: search each space in a projection that prunes, where one is found (see
    :meth:`Space.project`); None: when more than :data:`PROJECT_MIN` images take part.
    """

    spaces: Sequence[Space]
    active: NDArray[np.bool_]
    skip: NDArray[np.bool_]
    extra: Sequence[tuple[int, int]] = ()
    combine: Literal["all", "any"] = "all"
    keep_pair: PairFilter | None = None
    listed: Candidates | None = None
    progress: Progress = field(default_factory=NullProgress)
    project: bool | None = None
    found: int = field(default=0, init=False)
    _adj: Adjacency | None = field(default=None, init=False)
    _held: _Held | None = field(default=None, init=False)
    _extra_of: dict[int, list[int]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for a, b in self.extra:
            self._extra_of.setdefault(a, []).append(b)
            self._extra_of.setdefault(b, []).append(a)
        if self.listed is not None:
            self._adj = adjacency(self.listed.union(self._extra_candidates()), len(self.active))
        idx = np.flatnonzero(self.active)
        if self.project is None:
            self.project = self.listed is None and len(idx) > PROJECT_MIN
        if self.project:
            sample = np.random.default_rng(0).permutation(idx)[:4096]
            # Each space decides for itself (a list, so that every space is asked).
            self.project = any([s.project(np.sort(sample)) for s in self.spaces])

    @property
    def n(self) -> int:
        return len(self.active)

    def _extra_candidates(self) -> Candidates:
        if not self.extra:
            return Candidates.empty()
        a = np.array([min(p) for p in self.extra], np.int32)
        b = np.array([max(p) for p in self.extra], np.int32)
        return Candidates(a, b, np.zeros(len(a), np.float32))

    def _pairs(
        self,
        rows: NDArray[np.int64],
        cols: NDArray[np.int64],
        held: Sequence[NDArray[np.float32]] | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """Pairs between ``rows`` and ``cols`` within the spaces' radii (distance of the first).

        ``held``: each space's rows of ``cols``, when held contiguously (:class:`_Held`).
        """
        if not self.spaces:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
        h = list(held) if held is not None else [None] * len(self.spaces)
        first = self.spaces[0]
        a, b, d = first.within(rows, cols, h[0])
        if len(self.spaces) == 1:
            return a, b, d
        second = self.spaces[1]
        if self.combine == "all":
            ok = second.dist(a, b) <= second.radius
            return a[ok], b[ok], d[ok]
        a2, b2, _ = second.within(rows, cols, h[1])
        key = np.concatenate([a, a2]) * self.n + np.concatenate([b, b2])
        _, first_idx = np.unique(key, return_index=True)
        aa = np.concatenate([a, a2])[first_idx]
        bb = np.concatenate([b, b2])[first_idx]
        return aa, bb, first.dist(aa, bb)

    def _filter(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.bool_]:
        ok = (a != b) & self.active[a] & self.active[b] & ~(self.skip[a] & self.skip[b])
        if self.keep_pair is not None and ok.any():
            ok[ok] = self.keep_pair(a[ok], b[ok])
        return ok

    # -- greedy: one block at a time ---------------------------------------------------------

    def before(self, block: Sequence[int], kept: NDArray[np.bool_]) -> dict[int, list[int]]:
        """For each image of ``block``: its neighbours among the ``kept`` images, nearest first."""
        rows = np.asarray(block, np.int64)
        if self._adj is not None:
            return self._listed_rows(rows, lambda nb, i: kept[nb])
        if self._held is None:
            self._held = _Held(self.spaces, self.n)
        cols, held = self._held.update(kept & self.active)
        a, b, d = self._pairs(rows, cols, held)
        still = kept[b]  # held images are those kept so far; a caller may have un-kept one
        a, b, d = a[still], b[still], d[still]
        ex_a, ex_b = self._extra_for(rows)
        keep = kept[ex_b]
        return self._group(rows, a, b, d, ex_a[keep], ex_b[keep])

    def within(
        self, rows_: Sequence[int], block: Sequence[int], rank: NDArray[np.int64]
    ) -> dict[int, list[int]]:
        """For each image of ``rows_``: its neighbours among earlier images of ``block``."""
        rows = np.asarray(rows_, np.int64)
        cols = np.asarray(block, np.int64)
        if self._adj is not None:
            in_block = np.zeros(self.n, bool)
            in_block[cols] = True
            return self._listed_rows(rows, lambda nb, i: in_block[nb] & (rank[nb] < rank[i]))
        a, b, d = self._pairs(rows, cols)
        earlier = rank[b] < rank[a]
        ex_a, ex_b = self._extra_for(rows)
        in_block = np.zeros(self.n, bool)
        in_block[cols] = True
        keep = in_block[ex_b] & (rank[ex_b] < rank[ex_a])
        return self._group(rows, a[earlier], b[earlier], d[earlier], ex_a[keep], ex_b[keep])

    def _group(
        self,
        rows: NDArray[np.int64],
        a: NDArray[np.int64],
        b: NDArray[np.int64],
        d: NDArray[np.float32],
        ex_a: NDArray[np.int64],
        ex_b: NDArray[np.int64],
    ) -> dict[int, list[int]]:
        """Rows' neighbour lists, nearest first (ties by index), exact copies included once."""
        if len(ex_a):
            a = np.concatenate([a, ex_a])
            b = np.concatenate([b, ex_b])
            d = np.concatenate([d, np.zeros(len(ex_a), np.float32)])
        ok = self._filter(a, b)
        a, b, d = a[ok], b[ok], d[ok]
        _, first = np.unique(a * self.n + b, return_index=True)
        a, b, d = a[first], b[first], d[first]
        order = np.lexsort((b, d, a))
        a, b = a[order], b[order]
        self.found += len(a)
        out: dict[int, list[int]] = {int(i): [] for i in rows}
        starts = np.searchsorted(a, rows, side="left")
        ends = np.searchsorted(a, rows, side="right")
        for i, lo, hi in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
            if lo < hi:
                out[i] = b[lo:hi].tolist()
        return out

    def _listed_rows(
        self,
        rows: NDArray[np.int64],
        select: Callable[[NDArray[np.int64], int], NDArray[np.bool_]],
    ) -> dict[int, list[int]]:
        adj = self._adj
        if adj is None:
            raise RuntimeError("no candidate list")
        out: dict[int, list[int]] = {}
        for i in rows.tolist():
            nb, _ = adj.neighbours(i)
            nb = nb.astype(np.int64)
            nb = nb[self._filter(np.full(len(nb), i, np.int64), nb)]
            out[i] = nb[select(nb, i)].tolist()
            self.found += len(out[i])
        return out

    def _extra_for(self, rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        a: list[int] = []
        b: list[int] = []
        for i in rows.tolist():
            for j in self._extra_of.get(i, ()):
                a.append(i)
                b.append(j)
        return np.array(a, np.int64), np.array(b, np.int64)

    # -- connected: every pair, tile by tile --------------------------------------------------

    def stream(self) -> Iterator[Candidates]:
        """Every candidate pair ``i < j``, in tiles (each a :class:`Candidates`)."""
        if self.extra:
            yield self._checked(self._extra_candidates())
        if self.listed is not None:
            step = 1 << 20
            c = self.listed
            for k in range(0, len(c), step):
                part = Candidates(c.i[k : k + step], c.j[k : k + step], c.dist[k : k + step])
                yield self._checked(part)
            return
        idx = np.flatnonzero(self.active).astype(np.int64)
        starts = range(0, len(idx), _ROWS)
        for s in self.progress.track(starts, total=len(starts), description="candidate pairs"):
            rows = idx[s : s + _ROWS]
            cols = idx[s:]
            if self.skip[rows].all() and self.skip[cols].all():
                continue
            a, b, d = self._pairs(rows, cols)
            upper = a < b
            yield self._checked(
                Candidates(a[upper].astype(np.int32), b[upper].astype(np.int32), d[upper])
            )

    def _checked(self, c: Candidates) -> Candidates:
        if len(c):
            c = c.take(self._filter(c.i.astype(np.int64), c.j.astype(np.int64)))
        self.found += len(c)
        return c
