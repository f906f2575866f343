"""Colour histograms: normalised, intersection in [0, 1], the L1 radius is exact."""

from __future__ import annotations

import numpy as np
import pytest
from dedupe_helpers import make_scene

from curate.dedupe.hist import NUM_BINS, hsv_histogram, intersection, l1_radius


def test_histogram_is_normalised(rng: np.random.Generator) -> None:
    h = hsv_histogram(make_scene(rng))
    assert h.shape == (NUM_BINS,) and h.dtype == np.float32
    assert float(h.sum()) == pytest.approx(1.0, abs=1e-5)


def test_intersection_range_and_identity(rng: np.random.Generator) -> None:
    a, b = hsv_histogram(make_scene(rng)), hsv_histogram(make_scene(rng))
    assert intersection(a, a) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 <= intersection(a, b) < 1.0


def test_l1_radius_is_the_exact_bound(rng: np.random.Generator) -> None:
    for _ in range(20):
        a, b = hsv_histogram(make_scene(rng)), hsv_histogram(make_scene(rng))
        l1 = float(np.abs(a - b).sum())
        t = intersection(a, b)
        assert l1 == pytest.approx(l1_radius(t), abs=1e-4)


def test_grey_and_colour_differ(rng: np.random.Generator) -> None:
    img = make_scene(rng)
    grey = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert intersection(hsv_histogram(img), hsv_histogram(grey)) < 0.8
