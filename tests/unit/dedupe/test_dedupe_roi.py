"""Object-mode box matching: one-to-one, class-aware, and the vectorised prefilter agrees."""

from __future__ import annotations

import numpy as np

from curate.core import boxes as B
from curate.dedupe.roi import BoxMatcher, greedy_match, match_boxes


def _random_boxes(rng: np.random.Generator, k: int) -> np.ndarray:
    xy = rng.uniform(0, 0.8, (k, 2))
    wh = rng.uniform(0.01, 0.2, (k, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def test_single_boxes_decide_as_the_general_iou(rng: np.random.Generator) -> None:
    """One box each takes a scalar path; its IoU must be the array IoU, bit for bit."""
    for _ in range(3000):
        a = _random_boxes(rng, 1)
        b = a + rng.normal(0, 0.03, (1, 4)) if rng.random() < 0.7 else _random_boxes(rng, 1)
        if rng.random() < 0.1:
            b[0, [0, 2]] = b[0, [2, 0]]  # an inverted box has area 0
        t = float(rng.uniform(0.1, 0.9))
        want = [(0, 0)] if float(B.iou(a, b)[0, 0]) >= t else []
        assert greedy_match(a, np.array([0]), b, np.array([0]), t) == want
    same = _random_boxes(rng, 1)
    assert greedy_match(same, np.array([0]), same, np.array([1]), 0.1) == []  # other class


def test_matching_is_one_to_one_and_greedy_by_iou() -> None:
    a = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3]])
    b = np.array([[0.11, 0.1, 0.31, 0.3], [0.5, 0.5, 0.6, 0.6]])
    cls = np.array([0, 0])
    # Both boxes of a overlap b[0]; only one may take it, so the match fails as a whole.
    assert greedy_match(a, cls, b, cls, 0.5) in ([(0, 0)], [(1, 0)])
    assert match_boxes(a, cls, b, cls, 0.5) is None
    assert match_boxes(a, cls, a[::-1], cls, 0.5) is not None
    assert match_boxes(a, cls, a[:1], cls[:1], 0.5) is None  # different box counts
    assert match_boxes(np.zeros((0, 4)), cls[:0], np.zeros((0, 4)), cls[:0], 0.5) == []


def test_prefilter_never_rejects_a_pair_that_matches(rng: np.random.Generator) -> None:
    boxes, classes = [], []
    for _ in range(60):
        k = int(rng.integers(0, 4))
        base = _random_boxes(rng, k)
        boxes.append(base)
        classes.append(rng.integers(0, 2, k))
        size = np.tile(base[:, 2:] - base[:, :2], 2)
        boxes.append(base + rng.normal(0, 0.03, base.shape) * size)  # a near copy
        classes.append(classes[-1].copy())
    matcher = BoxMatcher(boxes, classes, 0.5)
    n = len(boxes)
    a, b = np.triu_indices(n, 1)
    pre = matcher(a, b)
    for i, j, ok in zip(a.tolist(), b.tolist(), pre.tolist(), strict=True):
        if match_boxes(boxes[i], classes[i], boxes[j], classes[j], 0.5) is not None:
            assert ok, (i, j)
    assert pre[(a % 2 == 0) & (b == a + 1)].mean() > 0.9  # near copies pass
