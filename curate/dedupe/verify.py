"""Scoring candidate pairs: exact copies, SSIM, colour histograms, object regions.

A :class:`Scorer` scores each pair once (memoised) and sends large batches through the
executor in chunks; every chunk carries the few images it needs, so workers keep no
state and a Dask cluster gets the same results as the local pool. Scores are values, not
decisions, so one scoring serves every threshold of a sweep.

SSIM is computed on the working-resolution thumbnails (see :mod:`curate.dedupe.ssim`)
after a cheap upper bound: pairs whose bound is at or below ``ssim_floor`` keep only the
bound (they cannot pass any threshold above it). With a refinement band, pairs whose
working-resolution SSIM lies in ``[refine_threshold - refine_below, refine_threshold +
refine_above]`` are marked ``refine``; :meth:`Scorer.refine` scores them again at full
resolution (longer side capped at :data:`REFINE_MAX_SIDE`), and decisions use that. The
clustering asks for it only where a decision waits for it (see ``DuplicateRule.needs_full``),
so a pair no decision depends on (past an image's first duplicate, or between images
already joined) is never re-scored at full size. Refinement goes
to the executor in small chunks (a pair costs milliseconds, not microseconds).
Full-resolution terms and decodes are kept per image (least recently used dropped), so an
image is decoded about once per process however many of its pairs are refined.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from curate.core.errors import ItemError
from curate.core.imageio import DEFAULT_MAX_PIXELS, read_reduced
from curate.core.parallel import Executor
from curate.core.progress import NullProgress, Progress
from curate.dedupe import ssim as S
from curate.dedupe.hist import intersection
from curate.dedupe.roi import match_boxes

V = TypeVar("V")
R = TypeVar("R")

REFINE_MAX_SIDE = 2048
_CHUNK = 256
#: Full-resolution re-scoring: pairs per worker task, and the fewest pairs worth sending
#: to the executor (one pair costs a full-size decode and SSIM: milliseconds).
_REFINE_CHUNK = 8
_REFINE_PARALLEL_MIN = 4
#: Batches this large (half a second of CPU time or more) get a progress bar.
_REFINE_PROGRESS_MIN = 64
#: Per-image SSIM terms kept in memory (least recently used go): in this process, and in
#: each worker process between chunks. About 290 KB per 128x128 thumbnail.
_LOCAL_TERMS_BYTES = 384 << 20
_WORKER_TERMS_BYTES = 256 << 20
#: Full-resolution decodes and terms kept for refinement (in a worker: half of each).
_FULL_GRAY_BYTES = 256 << 20
_FULL_TERMS_BYTES = 512 << 20


@dataclass(frozen=True, slots=True)
class VerifySpec:
    """Which scores to compute, and the SSIM floor and refinement band."""

    ssim: bool = True
    hist: bool = False
    roi: bool = False
    roi_iou: float = 0.5
    ssim_floor: float | None = None
    roi_floor: float | None = None
    refine_below: float = 0.0
    refine_above: float = 0.0
    refine_threshold: float = 0.85
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    @property
    def refines(self) -> bool:
        """Whether there is a refinement band."""
        return self.refine_below > 0 or self.refine_above > 0

    def in_band(self, value: float) -> bool:
        """Whether a working-resolution SSIM must be re-scored at full resolution."""
        t = self.refine_threshold
        return self.refines and t - self.refine_below <= value <= t + self.refine_above


@dataclass(frozen=True, slots=True)
class VerifyItem:
    """What scoring needs of one image. ``boxes``: ``(K, 4)`` normalised XYXY."""

    thumb: NDArray[np.uint8]
    hist: NDArray[np.float32]
    content_hash: str
    pixel_hash: str | None = None
    boxes: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 4)))
    classes: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    crops: tuple[NDArray[np.uint8], ...] | None = None
    path: str = ""


@dataclass(frozen=True, slots=True)
class PairScore:
    """Scores of one pair; ``None`` where not computed.

    ``exact``: ``"file"`` (same bytes) or ``"pixels"`` (same decoded pixels).
    ``ssim``: working-resolution SSIM, or None when only ``ssim_bound`` (an upper bound at
    or below the floor) was needed. ``roi_match``: boxes match one-to-one; ``roi_ssim``:
    lowest SSIM over matched regions (None when there are no boxes). ``refine``: the
    working-resolution SSIM lies inside the refinement band; ``full_ssim`` is then its
    full-resolution SSIM once :meth:`Scorer.refine` has computed it (``error`` says why it
    could not be).
    """

    exact: str | None = None
    ssim: float | None = None
    ssim_bound: float | None = None
    hist: float | None = None
    roi_match: bool | None = None
    roi_ssim: float | None = None
    full_ssim: float | None = None
    error: str | None = None
    refine: bool = False

    @property
    def unsettled(self) -> bool:
        """Inside the refinement band and not re-scored at full resolution (yet)."""
        return self.refine and self.full_ssim is None and self.error is None

    @property
    def best_ssim(self) -> float | None:
        """The SSIM decisions use: full resolution when refined, else the working one."""
        if self.full_ssim is not None:
            return self.full_ssim
        return self.ssim

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name in (
            "exact",
            "ssim",
            "ssim_bound",
            "hist",
            "roi_match",
            "roi_ssim",
            "full_ssim",
            "error",
        ):
            v = getattr(self, name)
            if v is not None:
                out[name] = round(v, 4) if isinstance(v, float) else v
        if self.refine:
            # Inside the band: re-scored at full size, or not (no decision depended on it).
            out["refined"] = self.full_ssim is not None
        return out


@dataclass(frozen=True, slots=True)
class PairChunk:
    """A worker's job: pairs of local indices into ``items``."""

    pairs: tuple[tuple[int, int], ...]
    items: tuple[VerifyItem, ...]
    spec: VerifySpec


def _gray_full(path: str, max_pixels: int | None) -> NDArray[np.uint8]:
    """Full-resolution grayscale, longer side capped at :data:`REFINE_MAX_SIDE`.

    Larger JPEGs are decoded with DCT scaling straight to at least the cap, then area-resized.
    """
    return S.to_gray(read_reduced(path, REFINE_MAX_SIDE, max_pixels=max_pixels))


class ByteLru(Generic[V]):
    """Values by key, least recently used dropped past ``budget`` bytes (at least 2 kept).

    Thread-safe: a Dask worker runs tasks in threads that share its process's caches.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[str, V] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, make: Callable[[], V], nbytes: Callable[[V], int]) -> V:
        """The value of ``key``, made (outside the lock) when absent."""
        with self._lock:
            got = self._items.get(key)
            if got is not None:
                self._items.move_to_end(key)
                return got
        got = make()
        with self._lock:
            if key not in self._items:
                self._items[key] = got
                self._sizes[key] = nbytes(got)
                self._bytes += self._sizes[key]
            while self._bytes > self.budget and len(self._items) > 2:
                old, _ = self._items.popitem(last=False)
                self._bytes -= self._sizes.pop(old)
        return got


class TermsCache:
    """Per-image SSIM terms by key (content hash and shape), within a byte budget."""

    def __init__(self, budget: int) -> None:
        self._lru: ByteLru[S.SsimTerms] = ByteLru(budget)

    def get(self, key: str, gray: NDArray[np.uint8]) -> S.SsimTerms:
        return self._lru.get(key, lambda: S.terms(gray), lambda t: t.nbytes)


class FullResolution:
    """Full-resolution grayscale decodes and their SSIM terms, each an LRU by content hash."""

    def __init__(self, gray_budget: int, terms_budget: int) -> None:
        self._grays: ByteLru[NDArray[np.uint8] | str] = ByteLru(gray_budget)
        self.terms = TermsCache(terms_budget)

    def gray(self, item: VerifyItem, max_pixels: int | None) -> NDArray[np.uint8] | str:
        """The decoded image, or the reason it could not be decoded (remembered too)."""

        def decode() -> NDArray[np.uint8] | str:
            try:
                return _gray_full(item.path, max_pixels)
            except ItemError as err:
                return err.message

        return self._grays.get(
            item.content_hash, decode, lambda g: 0 if isinstance(g, str) else g.nbytes
        )

    def ssim(self, a: VerifyItem, b: VerifyItem, max_pixels: int | None) -> float | str:
        """Full-resolution SSIM of two images, or why it could not be computed."""
        ga, gb = self.gray(a, max_pixels), self.gray(b, max_pixels)
        if isinstance(ga, str):
            return ga
        if isinstance(gb, str):
            return gb
        if ga.shape == gb.shape and min(ga.shape) >= S.MIN_SIDE:
            ta = self.terms.get(f"{a.content_hash}:full", ga)
            tb = self.terms.get(f"{b.content_hash}:full", gb)
            return S.ssim_terms(ta, tb)
        return S.ssim(ga, gb)


#: What a worker process keeps between chunks: neighbouring chunks share most images.
_WORKER_TERMS = TermsCache(_WORKER_TERMS_BYTES)
_WORKER_FULL = FullResolution(_FULL_GRAY_BYTES // 2, _FULL_TERMS_BYTES // 2)


class _ChunkScorer:
    """Scores pairs, reusing per-image SSIM terms (by content hash) and full-size decodes."""

    def __init__(
        self,
        items: Sequence[VerifyItem],
        spec: VerifySpec,
        terms: TermsCache | None = None,
        full: FullResolution | None = None,
    ) -> None:
        self.items = items
        self.spec = spec
        self._terms = terms if terms is not None else TermsCache(_LOCAL_TERMS_BYTES)
        self._full = (
            full if full is not None else FullResolution(_FULL_GRAY_BYTES, _FULL_TERMS_BYTES)
        )
        self._keys: list[str | None] = [None] * len(items)  # terms cache keys, made once

    def _cached_terms(self, k: int) -> S.SsimTerms:
        key = self._keys[k]
        if key is None:
            item = self.items[k]
            key = self._keys[k] = f"{item.content_hash}:{item.thumb.shape}"
        return self._terms.get(key, self.items[k].thumb)

    def _roi_ssim(self, a: int, b: int, pairs: Sequence[tuple[int, int]]) -> float:
        """Lowest SSIM over matched regions (stops once at or below the floor)."""
        ca, cb = self.items[a].crops or (), self.items[b].crops or ()
        low = 1.0
        for p, q in pairs:
            low = min(low, S.ssim(ca[p], cb[q]))
            if self.spec.roi_floor is not None and low <= self.spec.roi_floor:
                break
        return low

    def _ssim_terms(self, a: int, b: int) -> tuple[S.SsimTerms, S.SsimTerms]:
        ta, tb = self.items[a].thumb, self.items[b].thumb
        if ta.shape == tb.shape and min(ta.shape) >= S.MIN_SIDE:
            return self._cached_terms(a), self._cached_terms(b)
        shape = S.common_shape(ta.shape, tb.shape)  # type: ignore[arg-type]
        return S.terms(S.resize_gray(ta, shape)), S.terms(S.resize_gray(tb, shape))

    def score(self, a: int, b: int) -> PairScore:
        ia, ib = self.items[a], self.items[b]
        spec = self.spec
        if ia.content_hash == ib.content_hash:
            return PairScore(exact="file", ssim=1.0)
        exact = "pixels" if ia.pixel_hash and ia.pixel_hash == ib.pixel_hash else None
        roi_match: bool | None = None
        roi_ssim: float | None = None
        if spec.roi:
            pairs = match_boxes(ia.boxes, ia.classes, ib.boxes, ib.classes, spec.roi_iou)
            roi_match = pairs is not None
            if pairs is None and exact is None:
                # Decided: object-aware duplicates need matching boxes.
                return PairScore(roi_match=False)
            if pairs and ia.crops is not None and ib.crops is not None:
                roi_ssim = self._roi_ssim(a, b, pairs)
                floor = spec.roi_floor
                if exact is None and floor is not None and roi_ssim <= floor:
                    # Decided: a region fails every threshold of interest.
                    return PairScore(roi_match=True, roi_ssim=roi_ssim)
        hist = intersection(ia.hist, ib.hist) if spec.hist else None
        value: float | None = None
        bound: float | None = None
        refine = False
        if spec.ssim:
            ta, tb = self._ssim_terms(a, b)
            if spec.ssim_floor is not None:
                value, ub = S.ssim_above(ta, tb, spec.ssim_floor)
                bound = ub if value is None else None
            else:
                value = S.ssim_terms(ta, tb)
            if value is not None:
                refine = exact is None and spec.in_band(value)
        return PairScore(exact, value, bound, hist, roi_match, roi_ssim, refine=refine)

    def full(self, a: int, b: int) -> tuple[float | None, str | None]:
        """Full-resolution SSIM of a pair, or (None, why it could not be computed)."""
        got = self._full.ssim(self.items[a], self.items[b], self.spec.max_pixels)
        return (None, got) if isinstance(got, str) else (got, None)


def score_chunk(chunk: PairChunk) -> list[PairScore]:
    """Worker task: score every pair of a chunk.

    (OpenCV's thread count is left alone: changing it in a forked worker can deadlock on
    the thread pool state inherited from the parent.)
    """
    scorer = _ChunkScorer(chunk.items, chunk.spec, _WORKER_TERMS, _WORKER_FULL)
    return [scorer.score(a, b) for a, b in chunk.pairs]


def refine_chunk(chunk: PairChunk) -> list[tuple[float | None, str | None]]:
    """Worker task: full-resolution SSIM of every pair of a chunk."""
    scorer = _ChunkScorer(chunk.items, chunk.spec, _WORKER_TERMS, _WORKER_FULL)
    return [scorer.full(a, b) for a, b in chunk.pairs]


class Scorer:
    """Memoised pair scores over a fixed list of images; big batches go to the executor."""

    def __init__(
        self,
        items: Sequence[VerifyItem],
        spec: VerifySpec,
        *,
        executor: Executor | None = None,
        progress: Progress | None = None,
        parallel_min: int = 2048,
    ) -> None:
        self.items = items
        self.spec = spec
        self.executor = executor
        self.progress = progress or NullProgress()
        self.parallel_min = parallel_min
        self.memo: dict[tuple[int, int], PairScore] = {}
        self._local = _ChunkScorer(items, spec)

    def __len__(self) -> int:
        return len(self.memo)

    @property
    def refines(self) -> bool:
        """Whether some pairs may need re-scoring at full resolution (a refinement band)."""
        return self.spec.refines

    def get(self, a: int, b: int) -> PairScore | None:
        return self.memo.get((a, b) if a < b else (b, a))

    def memo_get(self, a: int, b: int) -> PairScore:
        """The score of a pair already scored (KeyError otherwise)."""
        return self.memo[(a, b) if a < b else (b, a)]

    def score(
        self, pairs: Sequence[tuple[int, int]], *, description: str = "", bar: bool = True
    ) -> None:
        """Score every pair not scored yet (order-independent results); a large batch
        gets a progress bar unless ``bar`` is False (a caller's own bar covers it)."""
        memo = self.memo
        todo = sorted(
            {
                (a, b) if a < b else (b, a)
                for a, b in pairs
                if (a, b) not in memo and (b, a) not in memo
            }
        )
        if not todo:
            return
        parts = [todo[k : k + _CHUNK] for k in range(0, len(todo), _CHUNK)]
        big = len(todo) >= self.parallel_min
        results = self._run(
            parts,
            score_chunk,
            self._local.score,
            parallel=big,
            bar=(description or ("scoring pairs" if big else "")) if bar else "",
        )
        for part, scores in zip(parts, results, strict=True):
            self.memo.update(zip(part, scores, strict=True))

    def refine(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Re-score at full resolution every pair of ``pairs`` that is still unsettled.

        Pairs are sorted, so the pairs of a chunk tend to share images; four or more go to
        the executor, a few at a time, since each costs milliseconds.
        """
        memo = self.memo
        keys = sorted({(a, b) if a < b else (b, a) for a, b in pairs})
        todo = [k for k in keys if k in memo and memo[k].unsettled]
        if not todo:
            return
        size = max(1, min(_REFINE_CHUNK, len(todo) // 8))
        parts = [todo[k : k + size] for k in range(0, len(todo), size)]
        results = self._run(
            parts,
            refine_chunk,
            self._local.full,
            parallel=len(todo) >= _REFINE_PARALLEL_MIN,
            bar="re-scoring at full resolution" if len(todo) >= _REFINE_PROGRESS_MIN else "",
        )
        for part, got in zip(parts, results, strict=True):
            for key, (full, error) in zip(part, got, strict=True):
                memo[key] = replace(memo[key], full_ssim=full, error=error)

    def _run(
        self,
        parts: Sequence[Sequence[tuple[int, int]]],
        task: Callable[[PairChunk], list[R]],
        here: Callable[[int, int], R],
        *,
        parallel: bool,
        bar: str,
    ) -> Iterable[list[R]]:
        """Results of ``task`` for each part, in order: on the executor when ``parallel``
        (and there is one), else ``here`` pair by pair; with a progress bar when ``bar``."""
        results: Iterable[list[R]]
        if self.executor is not None and parallel:
            chunks = [self._chunk(part) for part in parts]
            results = self.executor.map(task, chunks, chunksize=1)
        else:
            results = ([here(a, b) for a, b in part] for part in parts)
        if bar:
            results = self.progress.track(results, total=len(parts), description=bar)
        return results

    def _chunk(self, pairs: Sequence[tuple[int, int]]) -> PairChunk:
        local: dict[int, int] = {}
        for a, b in pairs:
            local.setdefault(a, len(local))
            local.setdefault(b, len(local))
        items = tuple(self.items[g] for g in local)
        return PairChunk(tuple((local[a], local[b]) for a, b in pairs), items, self.spec)
