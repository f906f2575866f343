"""Scoring candidate pairs: exact copies, SSIM, colour histograms, object regions.

A :class:`Scorer` scores each pair once (memoised) and sends large batches through the
executor in chunks; every chunk carries the few images it needs, so workers keep no
state and a Dask cluster gets the same results as the local pool. Scores are values, not
decisions, so one scoring serves every threshold of a sweep.

SSIM is computed on the working-resolution thumbnails (see :mod:`curate.dedupe.ssim`)
after a cheap upper bound: pairs whose bound is at or below ``ssim_floor`` keep only the
bound (they cannot pass any threshold above it). With ``refine_band > 0``, pairs whose
working-resolution SSIM lies within the band of ``refine_threshold`` are scored again at
full resolution (longer side capped at :data:`REFINE_MAX_SIDE`), and decisions use that.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from curate.core.errors import ItemError
from curate.core.imageio import DEFAULT_MAX_PIXELS, read_image
from curate.core.parallel import Executor
from curate.core.progress import NullProgress, Progress
from curate.dedupe import ssim as S
from curate.dedupe.hist import intersection
from curate.dedupe.roi import match_boxes

REFINE_MAX_SIDE = 2048
_CHUNK = 256
_MIN_CHUNK = 32
_PROGRESS_MIN = 2048
#: Per-image SSIM terms kept in memory (least recently used go): in this process, and in
#: each worker process between chunks. About 400 KB per 128x128 thumbnail.
_LOCAL_TERMS_BYTES = 384 << 20
_WORKER_TERMS_BYTES = 256 << 20


@dataclass(frozen=True, slots=True)
class VerifySpec:
    """Which scores to compute, and the SSIM floor and refinement band."""

    ssim: bool = True
    hist: bool = False
    roi: bool = False
    roi_iou: float = 0.5
    ssim_floor: float | None = None
    roi_floor: float | None = None
    refine_band: float = 0.0
    refine_threshold: float = 0.85
    max_pixels: int | None = DEFAULT_MAX_PIXELS


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
    lowest SSIM over matched regions (None when there are no boxes). ``full_ssim``: the
    full-resolution SSIM of a pair inside the refinement band.
    """

    exact: str | None = None
    ssim: float | None = None
    ssim_bound: float | None = None
    hist: float | None = None
    roi_match: bool | None = None
    roi_ssim: float | None = None
    full_ssim: float | None = None
    error: str | None = None

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
        return out


@dataclass(frozen=True, slots=True)
class PairChunk:
    """A worker's job: pairs of local indices into ``items``."""

    pairs: tuple[tuple[int, int], ...]
    items: tuple[VerifyItem, ...]
    spec: VerifySpec


def _gray_full(path: str, max_pixels: int | None) -> NDArray[np.uint8]:
    rgb = read_image(path, max_pixels=max_pixels)
    gray = S.to_gray(rgb)
    side = max(gray.shape)
    if side > REFINE_MAX_SIDE:
        f = REFINE_MAX_SIDE / side
        size = (max(1, round(gray.shape[1] * f)), max(1, round(gray.shape[0] * f)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


class TermsCache:
    """Per-image SSIM terms by content hash, least recently used dropped past ``budget`` bytes.

    Thread-safe: a Dask worker runs tasks in threads that share its process's cache.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[str, S.SsimTerms] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str, thumb: NDArray[np.uint8]) -> S.SsimTerms:
        with self._lock:
            got = self._items.get(key)
            if got is not None:
                self._items.move_to_end(key)
                return got
        got = S.terms(thumb)
        with self._lock:
            if key not in self._items:
                self._items[key] = got
                self._bytes += got.nbytes
            while self._bytes > self.budget and len(self._items) > 2:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return got


#: The terms a worker process keeps between chunks: neighbouring chunks share most images.
_WORKER_TERMS = TermsCache(_WORKER_TERMS_BYTES)


class _ChunkScorer:
    """Scores pairs, reusing per-image SSIM terms (by content hash) and full-size decodes."""

    def __init__(
        self, items: Sequence[VerifyItem], spec: VerifySpec, terms: TermsCache | None = None
    ) -> None:
        self.items = items
        self.spec = spec
        self._terms = terms if terms is not None else TermsCache(1 << 62)
        self._full: dict[int, NDArray[np.uint8] | str] = {}

    def _cached_terms(self, k: int) -> S.SsimTerms:
        item = self.items[k]
        return self._terms.get(f"{item.content_hash}:{item.thumb.shape}", item.thumb)

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

    def _full_gray(self, k: int) -> NDArray[np.uint8] | str:
        got = self._full.get(k)
        if got is None:
            try:
                got = _gray_full(self.items[k].path, self.spec.max_pixels)
            except ItemError as err:
                got = err.message
            self._full[k] = got
        return got

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
        full: float | None = None
        error: str | None = None
        if spec.ssim:
            ta, tb = self._ssim_terms(a, b)
            if spec.ssim_floor is not None:
                ub = S.ssim_upper_bound(ta, tb)
                if ub <= spec.ssim_floor:
                    bound = ub
            if bound is None:
                value = S.ssim_terms(ta, tb)
                if spec.refine_band > 0 and abs(value - spec.refine_threshold) <= spec.refine_band:
                    ga, gb = self._full_gray(a), self._full_gray(b)
                    if isinstance(ga, str) or isinstance(gb, str):
                        error = ga if isinstance(ga, str) else str(gb)
                    else:
                        full = S.ssim(ga, gb)
        return PairScore(exact, value, bound, hist, roi_match, roi_ssim, full, error)


def score_chunk(chunk: PairChunk) -> list[PairScore]:
    """Worker task: score every pair of a chunk.

    (OpenCV's thread count is left alone: changing it in a forked worker can deadlock on
    the thread pool state inherited from the parent.)
    """
    scorer = _ChunkScorer(chunk.items, chunk.spec, _WORKER_TERMS)
    return [scorer.score(a, b) for a, b in chunk.pairs]


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
        self._local = _ChunkScorer(items, spec, TermsCache(_LOCAL_TERMS_BYTES))

    def __len__(self) -> int:
        return len(self.memo)

    def get(self, a: int, b: int) -> PairScore | None:
        return self.memo.get((a, b) if a < b else (b, a))

    def memo_get(self, a: int, b: int) -> PairScore:
        """The score of a pair already scored (KeyError otherwise)."""
        return self.memo[(a, b) if a < b else (b, a)]

    def score(self, pairs: Sequence[tuple[int, int]], *, description: str = "") -> None:
        """Score every pair not scored yet (order-independent results)."""
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
        pooled = self.executor is not None and len(todo) >= self.parallel_min
        size = _CHUNK
        if pooled:
            # At least two chunks per worker, so a batch keeps every worker busy.
            workers = max(1, int(getattr(self.executor, "workers", 1)))
            size = min(_CHUNK, max(_MIN_CHUNK, -(-len(todo) // (2 * workers))))
        parts = [todo[k : k + size] for k in range(0, len(todo), size)]
        results: Iterable[list[PairScore]]
        if pooled:
            chunks = [self._chunk(part) for part in parts]
            results = self.executor.map(score_chunk, chunks, chunksize=1)
        else:
            local = self._local
            results = ([local.score(a, b) for a, b in part] for part in parts)
        if description or len(todo) >= _PROGRESS_MIN:
            results = self.progress.track(
                results, total=len(parts), description=description or "scoring pairs"
            )
        for part, scores in zip(parts, results, strict=True):
            self.memo.update(zip(part, scores, strict=True))

    def _chunk(self, pairs: Sequence[tuple[int, int]]) -> PairChunk:
        local: dict[int, int] = {}
        for a, b in pairs:
            local.setdefault(a, len(local))
            local.setdefault(b, len(local))
        items = tuple(self.items[g] for g in local)
        return PairChunk(tuple((local[a], local[b]) for a, b in pairs), items, self.spec)
