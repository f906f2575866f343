"""Candidate pairs without comparing everything with everything.

**The feature.** SSIM compares local structure: inside each 11x11 window it multiplies a
luminance term (very tolerant: a +40 brightness shift still scores about 0.95) by a
contrast-structure term, the correlation of the two windows' mean-removed pixels with
the constant ``C2`` added to both variances. :func:`structure_feature` mirrors that: the
grayscale thumbnail is resized to 32x32, every pixel's local deviation from a Gaussian
(sigma 1) local mean is divided by ``sqrt(local variance + C2/2)``, and a second map holds
``sqrt(C2/2) / sqrt(local variance + C2/2)`` (1 where the image is flat, near 0 on texture:
the constant SSIM adds). The two maps, scaled by 1/32, form a vector of norm about 1, so
flat images sit together (their SSIM is near 1) and a brightness or contrast change
barely moves it. A fixed seeded Gaussian projection (Johnson-Lindenstrauss) takes the
2048 values to :data:`FEATURE_DIM` = 128, which keeps Euclidean distances within a few
percent.

**The bound.** Two images with SSIM > t lie within ``RADIUS_SCALE * sqrt(1 - t)`` of each
other in that space. This is empirical: over all 882,382 pairs of the Roboflow fire
export and the FURG clip plus 2,900 edited copies of real photos (JPEG quality 15-75,
brightness -60..+70, gain 0.5-1.6, gamma, noise, blur, downscales to 1/4, shifts, crops,
hue shifts), the largest ratio ``distance / sqrt(1 - SSIM)`` among pairs with SSIM above
any threshold from 0.5 to 0.98 was 1.69; :data:`RADIUS_SCALE` = 2.1 leaves a 25 % margin.
``benchmarks/bench_dedupe.py`` re-measures the recall against all-pairs SSIM.

**The search.** Every pair within the radius is a candidate; nothing else is scored.

- For the greedy walk, :class:`curate.dedupe.neighbours.Search` compares each block of
  images only with the images kept so far, held contiguously as they are kept (tiled
  matrix products: one product of augmented rows per tile gives squared distances, see
  :func:`close_pairs`): no N x N matrix, no list of all pairs; connected components get
  the pairs as a stream of tiles. Where the features spread along few directions (colour
  histograms), tiles are searched in a projection onto those directions first
  (:func:`choose_projection`: exact, since projecting never lengthens a distance).
- Above :data:`EXACT_LIMIT` images, :func:`find_candidates` with ``lsh`` gives the pairs
  by E2LSH (Datar et al. 2004): ``L`` tables, each hashing ``b`` random projections
  ``floor((a.x + o) / w)``; pairs that share a bucket in any table are checked against
  the radius. A pair at distance ``d <= r`` collides in one table with probability at
  least ``p(r)^b``, so it is missed with probability at most ``(1 - p(r)^b)^L``; ``b``,
  ``L`` and ``w`` are chosen so that this is below :data:`LSH_MISS` (1e-4), at the least
  work estimated from a sample of pair distances; when the sample says hashing would not
  prune (near-identical data), the exact search is used instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from curate.core.progress import NullProgress, Progress

FEATURE_SIDE = 32
FEATURE_DIM = 128
FEATURE_SIGMA = 1.0
RADIUS_SCALE = 2.1
EXACT_LIMIT = 16384
LSH_MISS = 1e-4
_C2_HALF = ((0.03 * 255) ** 2) / 2
_PROJECTION_SEED = 0x50D
_ROW_TILE = 1024
_COL_TILE = 4096

IndexMethod = Literal["auto", "exact", "lsh"]


@functools.cache
def _projection(in_dim: int, out_dim: int) -> NDArray[np.float32]:
    """The fixed JL projection (seeded, so features are comparable across runs and caches)."""
    rng = np.random.default_rng(_PROJECTION_SEED)
    proj = rng.standard_normal((in_dim, out_dim)).astype(np.float32) / np.float32(
        math.sqrt(out_dim)
    )
    proj.setflags(write=False)
    return proj


def structure_map(gray: NDArray[np.uint8], side: int = FEATURE_SIDE) -> NDArray[np.float32]:
    """``(2 * side**2,)`` normalised local structure of a grayscale image (norm about 1)."""
    x = cv2.resize(gray.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA)
    mu = cv2.GaussianBlur(x, (0, 0), FEATURE_SIGMA, borderType=cv2.BORDER_REFLECT)
    dev = x - mu
    var = cv2.GaussianBlur(dev * dev, (0, 0), FEATURE_SIGMA, borderType=cv2.BORDER_REFLECT)
    den = np.sqrt(var + np.float32(_C2_HALF))
    flat = np.float32(math.sqrt(_C2_HALF)) / den
    out = np.concatenate([(dev / den).ravel(), flat.ravel()])
    return out / np.float32(side)


def structure_feature(gray: NDArray[np.uint8], side: int = FEATURE_SIDE) -> NDArray[np.float16]:
    """The ``(FEATURE_DIM,)`` index feature of a grayscale image (see the module docstring)."""
    u = structure_map(gray, side)
    return (u @ _projection(u.shape[0], FEATURE_DIM)).astype(np.float16)


def ssim_radius(threshold: float, scale: float = RADIUS_SCALE) -> float:
    """Feature distance within which every pair with SSIM > ``threshold`` lies."""
    return scale * math.sqrt(max(0.0, 1.0 - threshold))


@dataclass(slots=True)
class Candidates:
    """Candidate pairs ``i < j`` with their feature distances (flat arrays, one row per pair)."""

    i: NDArray[np.int32]
    j: NDArray[np.int32]
    dist: NDArray[np.float32]
    method: str = "exact"
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.i)

    @classmethod
    def empty(cls, method: str = "exact") -> Candidates:
        return cls(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32), method)

    def take(self, mask: NDArray[np.bool_]) -> Candidates:
        """The pairs where ``mask`` is True."""
        return Candidates(self.i[mask], self.j[mask], self.dist[mask], self.method, self.stats)

    def union(self, other: Candidates) -> Candidates:
        """Pairs in either (distances from ``self`` where both have a pair)."""
        i = np.concatenate([self.i, other.i])
        j = np.concatenate([self.j, other.j])
        d = np.concatenate([self.dist, other.dist])
        return _unique_pairs(i, j, d, self.method)

    def order(self) -> NDArray[np.intp]:
        """Indices sorting the pairs by distance (ties by ``i``, then ``j``)."""
        return np.lexsort((self.j, self.i, self.dist))


@dataclass(slots=True)
class Adjacency:
    """Symmetric neighbour lists (CSR); :meth:`neighbours` returns a row sorted by distance."""

    indptr: NDArray[np.int64]
    nbr: NDArray[np.int32]
    dist: NDArray[np.float32]

    def neighbours(self, k: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """Neighbours of ``k``, nearest first (ties by index)."""
        a, b = self.indptr[k], self.indptr[k + 1]
        nbr, dist = self.nbr[a:b], self.dist[a:b]
        order = np.lexsort((nbr, dist))
        return nbr[order], dist[order]


def adjacency(cands: Candidates, n: int) -> Adjacency:
    """Both directions of every pair, grouped by image (rows are sorted when read)."""
    src = np.concatenate([cands.i, cands.j])
    dst = np.concatenate([cands.j, cands.i])
    d = np.concatenate([cands.dist, cands.dist])
    order = np.argsort(src, kind="stable")
    counts = np.bincount(src, minlength=n)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Adjacency(indptr, dst[order].astype(np.int32), d[order].astype(np.float32))


def _unique_pairs(
    i: NDArray[np.integer], j: NDArray[np.integer], d: NDArray[np.floating], method: str
) -> Candidates:
    key = i.astype(np.int64) << 32 | j.astype(np.int64)
    _, first = np.unique(key, return_index=True)
    return Candidates(
        i[first].astype(np.int32), j[first].astype(np.int32), d[first].astype(np.float32), method
    )


def find_candidates(
    features: NDArray[np.floating],
    radius: float,
    *,
    method: IndexMethod = "auto",
    skip_mask: NDArray[np.bool_] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> Candidates:
    """All pairs ``i < j`` whose features are within ``radius`` (LSH: with miss rate <= 1e-4).

    ``features``: ``(N, D)``. ``skip_mask``: images whose pairs among themselves are not
    wanted (a clean reference set); their pairs with other images are kept.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    n = len(x)
    prog = progress or NullProgress()
    if n < 2:
        return Candidates.empty()
    skip = np.zeros(n, bool) if skip_mask is None else np.asarray(skip_mask, bool)
    params: _LshParams | None = None
    if method == "lsh" or (method == "auto" and n > EXACT_LIMIT):
        params = _choose_lsh(x, radius, np.random.default_rng(seed), force=method == "lsh")
    if params is None:
        return _exact(x, radius, skip, prog)
    cands = _lsh(x, radius, skip, params, np.random.default_rng(seed + 1), prog)
    cands.stats.update(lsh_tables=params.tables, lsh_bits=params.bits, lsh_width=params.width)
    return cands


def lsh_params(
    features: NDArray[np.floating], radius: float, *, seed: int = 0, force: bool = False
) -> object | None:
    """The LSH parameters :func:`find_candidates` would use, or None when exact search is cheaper."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    if len(x) < 2:
        return None
    return _choose_lsh(x, radius, np.random.default_rng(seed), force=force)


# -- exact ------------------------------------------------------------------------------------


def augmented(x: NDArray[np.floating]) -> NDArray[np.float32]:
    """Rows ``[x, 1, |x|^2]``: the right-hand side of :func:`close_pairs` (float32, contiguous)."""
    x = np.asarray(x, np.float32)
    out = np.empty((len(x), x.shape[1] + 2), np.float32)
    out[:, :-2] = x
    out[:, -2] = 1.0
    out[:, -1] = np.einsum("ij,ij->i", x, x)
    return out


def close_pairs(
    rows: NDArray[np.float32], cols: NDArray[np.float32], radius: float, step: int = _COL_TILE
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
    """Index pairs ``(a, b)`` with ``|rows[a] - cols[b]| <= radius``, and their distances.

    Both arguments are :func:`augmented` rows. One matrix product per tile gives the squared
    distances directly: ``[-2x, |x|^2, 1] . [y, 1, |y|^2] = |x - y|^2`` (no broadcast sums,
    no temporaries). Candidates are rare, so only rows whose minimum is within the radius
    are compared and scanned for their pairs (:func:`sparse_nonzero`): a row-wise minimum
    costs a tenth of the product, ``np.nonzero`` over the tile about as much as the product.
    """
    lhs = np.empty_like(rows)
    np.multiply(rows[:, :-2], -2.0, out=lhs[:, :-2])
    lhs[:, -2] = rows[:, -1]
    lhs[:, -1] = 1.0
    r2 = np.float32(radius * radius)
    out_a, out_b, out_d = [], [], []
    for b in range(0, len(cols), step):
        d2 = lhs @ cols[b : b + step].T
        if not d2.size:
            continue
        hit = np.flatnonzero(d2.min(axis=1) <= r2)
        if 2 * len(hit) < len(d2):
            d2 = d2[hit]
        else:
            hit = np.arange(len(d2))
        ii, jj = sparse_nonzero(d2 <= r2)
        out_a.append(hit[ii])
        out_b.append(jj + b)
        out_d.append(np.sqrt(np.maximum(d2[ii, jj], 0)))
    if not out_a:
        return np.empty(0, np.intp), np.empty(0, np.intp), np.empty(0, np.float32)
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_d)


def sparse_nonzero(mask: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``np.nonzero`` of a 2-D mask that is nearly all False, scanning 8 bytes at a time.

    ``np.nonzero`` visits every element and costs about as much as the matrix product that
    made the mask; here only the 64-bit words holding a True are opened (5-10x faster).
    """
    if not mask.shape[1]:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    flat = np.ascontiguousarray(mask).reshape(-1)
    whole = len(flat) - len(flat) % 8
    words = np.flatnonzero(flat[:whole].view(np.uint64))
    hit = np.flatnonzero(flat[:whole].view(np.uint8).reshape(-1, 8)[words])
    pos = words[hit // 8] * 8 + hit % 8
    if whole < len(flat):
        pos = np.concatenate([pos, whole + np.flatnonzero(flat[whole:])])
    rows, cols = np.divmod(pos, mask.shape[1])
    return rows, cols


#: Costs measured on 2 cores, in units of one feature dimension of a tile product: the
#: comparison and scan of a tile whose rows nearly all have a close pair, and one surviving
#: pair's gathered full distance (times the dimension).
_SCAN_COST = 33.0
_SURVIVOR_COST = 20.0
_PROJECTION_DIMS = (32, 48, 64, 96)


def principal_directions(sample: NDArray[np.float32]) -> NDArray[np.float64]:
    """``sample``'s principal directions, strongest first (rows, orthonormal)."""
    x = sample.astype(np.float64)
    return np.linalg.svd(x - x.mean(0), full_matrices=False)[2]


def choose_projection(
    sample: NDArray[np.float32],
    radius: float,
    rng: np.random.Generator,
    directions: NDArray[np.float64] | None = None,
) -> NDArray[np.float32] | None:
    """An orthonormal basis ``(D, k)`` of ``sample``'s principal directions to search in
    first, or None when that would not pay.

    Projecting onto orthonormal directions never lengthens a difference, so every pair
    within ``radius`` is within it in the projection too: a search there followed by the
    full distance of the pairs found is exact. It pays when ``k`` is well below ``D`` and
    few pairs survive; both are estimated from ``sample`` (colour histograms of generated
    scenes: 0.07 % of pairs survive at ``k`` = 64 of 256 dimensions; SSIM features: 0.5 %
    at 64 of 128, which does not pay). ``directions``: :func:`principal_directions` of
    ``sample`` when the caller has them (they do not depend on the radius).
    """
    n, dim = sample.shape
    if n < 64:
        return None
    vt = principal_directions(sample) if directions is None else directions
    x = sample.astype(np.float64)
    a, b = rng.integers(0, n, 20000), rng.integers(0, n, 20000)
    diff = x[a[a != b]] - x[b[a != b]]
    best, best_cost = None, 0.6 * (dim + 2)
    for k in _PROJECTION_DIMS:
        if 2 * k > dim or k > len(vt):
            break
        survive = float(np.mean(np.linalg.norm(diff @ vt[:k].T, axis=1) <= radius))
        cost = k + 2 + _SCAN_COST + survive * _SURVIVOR_COST * dim
        if cost < best_cost:
            best, best_cost = vt[:k].T, cost
    return None if best is None else np.ascontiguousarray(best, np.float32)


def _exact(
    x: NDArray[np.float32], radius: float, skip: NDArray[np.bool_], prog: Progress
) -> Candidates:
    n = len(x)
    aug = augmented(x)
    out_i: list[NDArray[np.int32]] = []
    out_j: list[NDArray[np.int32]] = []
    out_d: list[NDArray[np.float32]] = []
    starts = range(0, n, _ROW_TILE)
    for a in prog.track(starts, total=len(starts), description="candidate pairs"):
        a_end = min(n, a + _ROW_TILE)
        lo = a
        if skip[a:a_end].all():  # a reference block: only its pairs with later new images
            later = np.flatnonzero(~skip[a:])
            if not len(later):
                continue
            lo = a + int(later[0])
        ii, jj, d = close_pairs(aug[a:a_end], aug[lo:], radius)
        ii = ii + a
        jj = jj + lo
        keep = (ii < jj) & ~(skip[ii] & skip[jj])
        out_i.append(ii[keep].astype(np.int32))
        out_j.append(jj[keep].astype(np.int32))
        out_d.append(d[keep])
    if not out_i:
        return Candidates.empty()
    return Candidates(np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d), "exact")


# -- LSH --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LshParams:
    bits: int
    tables: int
    width: float
    expected_pairs: float


def _collision(dist: NDArray[np.float64] | float, width: float) -> NDArray[np.float64]:
    """Probability that one E2LSH projection puts two points at ``dist`` in one bucket."""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    c = np.maximum(np.asarray(dist, np.float64), 1e-12) / width
    inv = 1.0 / c
    phi_neg = 0.5 * (1.0 + erf(-inv / math.sqrt(2.0)))
    return (
        1.0 - 2.0 * phi_neg - (2.0 * c / math.sqrt(2.0 * math.pi)) * (1.0 - np.exp(-0.5 * inv**2))
    )


def _choose_lsh(
    x: NDArray[np.float32], radius: float, rng: np.random.Generator, *, force: bool = False
) -> _LshParams | None:
    """Cheapest (bits, tables, width) with miss rate <= LSH_MISS; None when exact is cheaper.

    Work is counted in multiply-adds: hashing costs ``n * tables * bits * dim`` (matrix
    products), each bucket pair a gathered distance, about ``10 * dim``; the exact search
    costs ``dim`` per pair of all ``n (n - 1) / 2``.
    """
    n, dim = x.shape
    m = min(20000, n * (n - 1) // 2)
    a = rng.integers(0, n, m)
    b = rng.integers(0, n, m)
    ok = a != b
    d = np.linalg.norm(x[a[ok]] - x[b[ok]], axis=1).astype(np.float64)
    if len(d) == 0:
        return None
    all_pairs = n * (n - 1) / 2
    exact_cost = all_pairs * dim
    best: _LshParams | None = None
    best_cost = math.inf
    for wmul in (2.0, 4.0, 8.0):
        width = wmul * radius
        p1 = float(_collision(radius, width))
        pd = _collision(d, width)
        for bits in range(1, 41):
            q = p1**bits
            if q < 1e-9:
                break
            tables = math.ceil(math.log(LSH_MISS) / math.log1p(-q)) if q < 1 else 1
            if tables > 400:
                continue
            per_table = float(np.mean(pd**bits))
            collide = float(np.mean(1.0 - (1.0 - pd**bits) ** tables))
            cost = n * tables * bits * dim + tables * per_table * all_pairs * 10 * dim
            if cost < best_cost:
                best_cost = cost
                best = _LshParams(bits, tables, width, collide * all_pairs)
    if best is None or (best_cost >= exact_cost and not force):
        return None
    return best


def _bucket_pairs(keys: NDArray[np.int64]) -> Iterator[tuple[NDArray[np.int64], NDArray[np.int64]]]:
    """Index pairs of items that share a key, in chunks of at most 256k (vectorised)."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    bounds = np.flatnonzero(np.diff(sk)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(sk)]])
    bucket_of = np.repeat(np.arange(len(starts)), ends - starts)
    member_end = ends[bucket_of]
    # Pair each member with every later member of its bucket.
    member_pos = np.arange(len(sk))
    later = member_end - member_pos - 1
    has = later > 0
    member_pos, later = member_pos[has], later[has]
    cum = np.cumsum(later)
    limit = 1 << 18
    lo = 0
    while lo < len(member_pos):
        base = cum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cum, base + limit, side="right")), lo + 1)
        pos, cnt = member_pos[lo:hi], later[lo:hi]
        total = int(cnt.sum())
        left = np.repeat(pos, cnt)
        offs = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        yield order[left], order[left + 1 + offs]
        lo = hi


def _lsh(
    x: NDArray[np.float32],
    radius: float,
    skip: NDArray[np.bool_],
    params: _LshParams,
    rng: np.random.Generator,
    prog: Progress,
) -> Candidates:
    dim = x.shape[1]
    r2 = radius * radius
    found_i: list[NDArray[np.int32]] = []
    found_j: list[NDArray[np.int32]] = []
    found_d: list[NDArray[np.float32]] = []
    checked = 0
    for _ in prog.track(range(params.tables), total=params.tables, description="LSH tables"):
        proj = rng.standard_normal((dim, params.bits)).astype(np.float32)
        offs = rng.uniform(0, params.width, params.bits).astype(np.float32)
        cells = np.floor((x @ proj + offs) / np.float32(params.width)).astype(np.int64)
        # Random odd 64-bit weights: distinct cell vectors share a key only by chance.
        mult = rng.integers(1, 1 << 62, params.bits, dtype=np.int64) * 2 + 1
        keys = (cells * mult).sum(axis=1)
        for left, right in _bucket_pairs(keys):
            a = np.minimum(left, right)
            b = np.maximum(left, right)
            keep = ~(skip[a] & skip[b])
            a, b = a[keep], b[keep]
            checked += len(a)
            diff = x[a] - x[b]
            d2 = np.einsum("ij,ij->i", diff, diff)
            close = d2 <= r2
            found_i.append(a[close].astype(np.int32))
            found_j.append(b[close].astype(np.int32))
            found_d.append(np.sqrt(d2[close]).astype(np.float32))
    if not found_i:
        out = Candidates.empty("lsh")
    else:
        out = _unique_pairs(
            np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d), "lsh"
        )
    out.stats["pairs_checked"] = float(checked)
    return out
