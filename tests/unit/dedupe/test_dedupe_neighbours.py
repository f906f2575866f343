"""The block search (greedy) and the tile stream (connected) find what a full pair list holds."""

from __future__ import annotations

import numpy as np
import pytest
from dedupe_helpers import low_rank

from curate.dedupe import cluster as C
from curate.dedupe.index import find_candidates
from curate.dedupe.neighbours import Search, Space
from curate.dedupe.verify import PairScore, VerifySpec


class DistanceScorer:
    """'SSIM' = 1 - feature distance, so decisions follow the features."""

    refines = False  # no refinement band
    spec = VerifySpec(ssim=False)  # no thumbnails: nothing for a ceiling to use
    items = ()

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.memo: dict[tuple[int, int], PairScore] = {}

    def __len__(self) -> int:
        return len(self.memo)

    def get(self, a: int, b: int) -> PairScore | None:
        return self.memo.get((min(a, b), max(a, b)))

    def memo_get(self, a: int, b: int) -> PairScore:
        return self.memo[(min(a, b), max(a, b))]

    def score(self, pairs, *, description: str = "", bar: bool = True) -> None:
        for a, b in pairs:
            d = float(np.linalg.norm(self.x[a] - self.x[b]))
            self.memo[(min(a, b), max(a, b))] = PairScore(ssim=1.0 - d)


@pytest.fixture
def feats(rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(0, 1, (120, 8))
    sizes = rng.integers(1, 6, len(centres))
    pts = [c + rng.normal(0, 0.06, (k, 8)) for c, k in zip(centres, sizes, strict=True)]
    x = np.concatenate(pts).astype(np.float32)
    return x[rng.permutation(len(x))]


def _both(x: np.ndarray, radius: float, skip: np.ndarray | None = None) -> tuple[Search, Search]:
    n = len(x)
    active = np.ones(n, bool)
    skip = np.zeros(n, bool) if skip is None else skip
    blocks = Search([Space(x, radius)], active, skip)
    listed = Search(
        [], active, skip, listed=find_candidates(x, radius, method="exact", skip_mask=skip)
    )
    return blocks, listed


@pytest.mark.parametrize("mode", ["greedy", "connected"])
def test_block_search_equals_pair_list(feats: np.ndarray, mode: str) -> None:
    rule = C.DuplicateRule(ssim=0.85)
    prio = list(range(len(feats)))
    out = []
    for search in _both(feats, 0.3):
        scorer = DistanceScorer(feats)
        if mode == "greedy":
            res = C.greedy(prio, search, scorer, rule)  # type: ignore[arg-type]
        else:
            res = C.connected(prio, search.stream(), scorer, rule)  # type: ignore[arg-type]
        out.append(res)
    assert np.array_equal(out[0].status, out[1].status)
    assert np.array_equal(out[0].dup_of, out[1].dup_of)
    assert out[0].kept.sum() < len(feats)


def test_stream_yields_every_pair_once(feats: np.ndarray) -> None:
    blocks, listed = _both(feats, 0.3)
    got = {(int(a), int(b)) for t in blocks.stream() for a, b in zip(t.i, t.j, strict=True)}
    want = {(int(a), int(b)) for a, b in zip(listed.listed.i, listed.listed.j, strict=True)}  # type: ignore[union-attr]
    assert got == want
    assert blocks.found == len(want)


def test_extra_pairs_and_filters(feats: np.ndarray) -> None:
    n = len(feats)
    far = (0, int(np.argmax(np.linalg.norm(feats - feats[0], axis=1))))
    skip = np.zeros(n, bool)
    skip[:10] = True
    s = Search([Space(feats, 0.3)], np.ones(n, bool), skip, extra=[far])
    kept = np.zeros(n, bool)
    kept[0] = True
    before = s.before([far[1]], kept)
    assert before[far[1]] == [0]  # an exact copy is a candidate at any distance
    pairs = {(int(a), int(b)) for t in s.stream() for a, b in zip(t.i, t.j, strict=True)}
    assert far in pairs
    assert not any(a < 10 and b < 10 for a, b in pairs)  # reference pairs are left out


def test_before_follows_the_kept_set_as_it_grows(rng: np.random.Generator) -> None:
    """Kept images are held between blocks (past the first capacity); the answer is exact."""
    x = rng.normal(0, 0.25, (2600, 6)).astype(np.float32)
    n, radius = len(x), 0.3
    s = Search([Space(x, radius)], np.ones(n, bool), np.zeros(n, bool))
    kept = np.zeros(n, bool)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    for start in range(0, n, 200):
        block = list(range(start, min(n, start + 200)))
        if start == 1400:
            kept[:50] = False  # a caller may drop a kept image: it is not answered any more
        got = s.before(block, kept)
        for i in block:
            cand = np.flatnonzero(kept & (d[i] <= radius))
            want = sorted(cand.tolist(), key=lambda j: (round(float(d[i, j]), 5), j))
            assert sorted(got[i]) == sorted(want)
        kept[block[::2]] = True
    assert kept.sum() > 1024


@pytest.mark.parametrize("mode", ["greedy", "connected"])
def test_projected_search_finds_the_same_pairs(rng: np.random.Generator, mode: str) -> None:
    """Tiles searched in a pruning projection, then full distances: the plain search's answer."""
    x = low_rank(rng, 3000)
    n = len(x)
    out = []
    for project in (False, True):
        search = Search([Space(x, 1.5)], np.ones(n, bool), np.zeros(n, bool), project=project)
        assert search.project is project  # a projection was found and is used
        scorer = DistanceScorer(x)
        rule = C.DuplicateRule(ssim=1.0 - 1.5)
        if mode == "greedy":
            res = C.greedy(list(range(n)), search, scorer, rule)  # type: ignore[arg-type]
        else:
            res = C.connected(list(range(n)), search.stream(), scorer, rule)  # type: ignore[arg-type]
        out.append((res, search.found))
    (plain, found), (projected, found_p) = out
    assert found_p == found > 100
    assert np.array_equal(plain.status, projected.status)
    assert np.array_equal(plain.dup_of, projected.dup_of)
