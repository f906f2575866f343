"""Cluster modes on hand-made scores: greedy never chains, connected does, references stay."""

from __future__ import annotations

import numpy as np
import pytest

from curate.dedupe import cluster as C
from curate.dedupe.index import Candidates
from curate.dedupe.neighbours import Search
from curate.dedupe.verify import PairScore, VerifySpec


class FakeScorer:
    """Scores from a table; counts what was asked for."""

    refines = False  # no refinement band
    spec = VerifySpec(ssim=False)  # no thumbnails: nothing for a ceiling to use
    items = ()

    def __init__(self, table: dict[tuple[int, int], float]) -> None:
        self.table = {(min(a, b), max(a, b)): v for (a, b), v in table.items()}
        self.memo: dict[tuple[int, int], PairScore] = {}

    def __len__(self) -> int:
        return len(self.memo)

    def get(self, a: int, b: int) -> PairScore | None:
        return self.memo.get((min(a, b), max(a, b)))

    def memo_get(self, a: int, b: int) -> PairScore:
        return self.memo[(min(a, b), max(a, b))]

    def score(
        self, pairs: list[tuple[int, int]], *, description: str = "", bar: bool = True
    ) -> None:
        for a, b in pairs:
            key = (min(a, b), max(a, b))
            self.memo[key] = PairScore(ssim=self.table.get(key, 0.1))


def _cands(table: dict[tuple[int, int], float]) -> Candidates:
    keys = sorted((min(a, b), max(a, b)) for a, b in table)
    i = np.array([k[0] for k in keys], np.int32)
    j = np.array([k[1] for k in keys], np.int32)
    d = np.array([1.0 - table.get(k, table.get((k[1], k[0]), 0)) for k in keys], np.float32)
    return Candidates(i, j, d)


CHAIN = {(0, 1): 0.9, (1, 2): 0.9, (0, 2): 0.5, (3, 4): 0.95}


def _run(
    mode: str, table: dict, n: int, priority=None, reference=None
) -> tuple[C.Resolution, FakeScorer]:
    scorer = FakeScorer(table)
    cands = _cands(table)
    prio = list(range(n)) if priority is None else priority
    rule = C.DuplicateRule(ssim=0.85)
    skip = np.zeros(n, bool) if reference is None else reference
    search = Search([], np.ones(n, bool), skip, listed=cands)
    if mode == "greedy":
        res = C.greedy(prio, search, scorer, rule, reference=reference)  # type: ignore[arg-type]
    else:
        res = C.connected(prio, [cands], scorer, rule, reference=reference)  # type: ignore[arg-type]
    return res, scorer


def test_greedy_does_not_chain() -> None:
    res, _ = _run("greedy", CHAIN, 5)
    assert res.kept.tolist() == [True, False, True, True, False]
    assert res.dup_of[1] == 0 and res.dup_of[4] == 3
    assert res.link_reason[1] == "ssim"


def test_connected_chains() -> None:
    res, _ = _run("connected", CHAIN, 5)
    assert res.kept.tolist() == [True, False, False, True, False]
    assert res.dup_of[2] == 0 and res.link[2] == 1


def test_priority_decides_the_survivor() -> None:
    res, _ = _run("greedy", CHAIN, 5, priority=[1, 0, 2, 4, 3])
    # 1 is visited first and kept; 0 and 2 are duplicates of it.
    assert res.kept.tolist() == [False, True, False, False, True]


def test_reference_images_are_never_dropped() -> None:
    ref = np.array([False, True, False, False, False])
    for mode in ("greedy", "connected"):
        res, _ = _run(mode, CHAIN, 5, priority=[1, 0, 2, 3, 4], reference=ref)
        assert res.kept[1]
        assert not res.kept[0] and res.dup_of[0] == 1


def test_connected_skips_pairs_inside_a_component() -> None:
    n = 100
    table = {(a, b): 0.95 for a in range(n) for b in range(a + 1, n)}
    res, scorer = _run("connected", table, n)
    assert res.kept.sum() == 1
    assert len(scorer) < len(table) // 4


def test_greedy_scores_about_one_pair_per_duplicate() -> None:
    n = 60
    table = {(a, b): 0.95 for a in range(n) for b in range(a + 1, n)}
    res, scorer = _run("greedy", table, n)
    assert res.kept.sum() == 1
    assert len(scorer) == n - 1


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (PairScore(exact="file"), "exact-file"),
        (PairScore(ssim=0.9, hist=0.5), None),
        (PairScore(ssim=0.9, hist=0.95), "ssim+hist"),
        (PairScore(ssim=0.8, hist=0.95), None),
    ],
)
def test_rule_all(score: PairScore, expected: str | None) -> None:
    assert C.DuplicateRule(ssim=0.85, hist=0.9, combine="all").decide(score) == expected


def test_rule_any_and_roi() -> None:
    any_rule = C.DuplicateRule(ssim=0.85, hist=0.9, combine="any")
    assert any_rule.decide(PairScore(ssim=0.8, hist=0.95)) == "hist"
    roi = C.DuplicateRule(ssim=0.85, roi=True, roi_ssim=0.85)
    assert roi.decide(PairScore(ssim=0.95, roi_match=False)) is None
    assert roi.decide(PairScore(ssim=0.95, roi_match=True, roi_ssim=0.7)) is None
    assert roi.decide(PairScore(ssim=0.95, roi_match=True, roi_ssim=0.9)) == "ssim+roi"
    assert roi.decide(PairScore(ssim=0.95, roi_match=True)) == "ssim+roi"  # no boxes at all
    # Refined full-resolution SSIM overrides the working one.
    assert C.DuplicateRule(ssim=0.85).decide(PairScore(ssim=0.9, full_ssim=0.8)) is None
    # A bound at or below the threshold is a no.
    assert C.DuplicateRule(ssim=0.85).decide(PairScore(ssim_bound=0.84)) is None
