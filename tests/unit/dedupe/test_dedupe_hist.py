"""Colour histograms: normalised, intersection in [0, 1], the L1 radius is exact, the index bound safe."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from dedupe_helpers import make_scene

from curate.dedupe.hist import (
    NUM_BINS,
    hsv_histogram,
    index_features,
    index_radius,
    intersection,
    l1_radius,
)


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


def test_index_radius_holds_every_pair_above_the_threshold(rng: np.random.Generator) -> None:
    """Square roots of histograms are within sqrt(L1): no pair above T falls outside the radius,
    and, unlike raw histograms (L2 <= L1 too), unrelated images mostly do."""
    scenes = [make_scene(rng) for _ in range(12)]
    # Near copies (grain) and sparse histograms (few colours) as well as scenes.
    hists = [hsv_histogram(s) for s in scenes]
    hists += [
        hsv_histogram(np.clip(s + rng.normal(0, 2, s.shape), 0, 255).astype(np.uint8))
        for s in scenes
    ]
    hists += [
        hsv_histogram(np.full((20, 30, 3), rng.integers(0, 256, 3), np.uint8)) for _ in range(6)
    ]
    h = np.stack(hists)
    x = index_features(h)
    inside_index = inside_raw = above = 0
    for a in range(len(h)):
        for b in range(a + 1, len(h)):
            t = intersection(h[a], h[b])
            d = float(np.linalg.norm(x[a] - x[b]))
            for threshold in (0.5, 0.8, 0.9, 0.95):
                if t > threshold:
                    assert d <= index_radius(threshold)
            above += t > 0.9
            inside_index += d <= index_radius(0.9)
            inside_raw += float(np.linalg.norm(h[a] - h[b])) <= l1_radius(0.9)
    assert above >= 5
    assert inside_index < inside_raw / 4


def test_near_gray_copies_count_alike_and_colour_stays_colour(rng: np.random.Generator) -> None:
    """JPEG chroma noise puts a few saturated pixels in copies of a gray photo (QA: a quality
    50 and a quarter-size copy counted as colour and outranked their original); they count as
    gray like it. A colour photo, even one with all its colour in dark pixels, stays colour."""
    from curate.dedupe.hist import is_gray

    gray = cv2.cvtColor(make_scene(rng), cv2.COLOR_RGB2GRAY)
    rgb = np.repeat(gray[:, :, None], 3, axis=2).astype(np.int16)
    noisy = rgb.copy()
    spots = rng.random(gray.shape) < 0.002  # a few pixels of chroma noise, bright or dark
    noisy[spots, 0] += 40
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(noisy, cv2.COLOR_RGB2HSV)
    assert (hsv[..., 1] >= 64).mean() > 1e-4  # saturated pixels: colour by the old share
    assert is_gray(hsv_histogram(noisy)) and is_gray(hsv_histogram(rgb.astype(np.uint8)))
    # A gray photo saved darker: chroma noise over small values saturates many dark pixels.
    dark = np.clip(rgb - 36, 0, 255)
    dark = dark + np.where(dark < 50, rng.integers(-6, 7, dark.shape), 0)
    dark = np.clip(dark, 0, 255).astype(np.uint8)
    dark_hsv = cv2.cvtColor(dark, cv2.COLOR_RGB2HSV)
    assert 0.01 < (dark_hsv[..., 1] >= 64).mean() < 0.5
    assert is_gray(hsv_histogram(dark))
    colour = make_scene(rng)
    night = (colour.astype(np.float32) * 0.22).astype(np.uint8)  # every pixel below value 64
    assert not is_gray(hsv_histogram(colour)) and not is_gray(hsv_histogram(night))
