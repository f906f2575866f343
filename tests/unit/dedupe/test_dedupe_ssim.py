"""SSIM agrees with scikit-image, its bound is an upper bound, shapes are handled."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from dedupe_helpers import make_scene
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity

from curate.dedupe import ssim as S


def _skimage(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
    )


def _variants(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for h, w in [(72, 128), (128, 128), (96, 128), (40, 33)]:
        a = S.to_gray(make_scene(rng, h, w))
        noisy = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
        bright = np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8)
        blur = cv2.GaussianBlur(a, (0, 0), 1.5)
        other = S.to_gray(make_scene(rng, h, w))
        flat = np.full_like(a, 90)
        out += [(a, a), (a, noisy), (a, bright), (a, blur), (a, other), (flat, flat + 3), (a, flat)]
    return out


def test_matches_skimage_within_001(rng: np.random.Generator) -> None:
    for a, b in _variants(rng):
        assert S.ssim(a, b) == pytest.approx(_skimage(a, b), abs=0.01)
        # In fact much closer: the same filter, float32 instead of float64.
        assert abs(S.ssim(a, b) - _skimage(a, b)) < 1e-4


def test_identical_images_score_one(rng: np.random.Generator) -> None:
    a = S.to_gray(make_scene(rng))
    assert S.ssim(a, a) == pytest.approx(1.0, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), noise=st.floats(0, 80), shift=st.integers(-80, 80))
def test_upper_bound_is_an_upper_bound(seed: int, noise: float, shift: int) -> None:
    rng = np.random.default_rng(seed)
    a = S.to_gray(make_scene(rng, 48, 64))
    b = np.clip(a + rng.normal(shift, noise + 1e-3, a.shape), 0, 255).astype(np.uint8)
    ta, tb = S.terms(a), S.terms(b)
    assert S.ssim_upper_bound(ta, tb) >= S.ssim_terms(ta, tb)


def test_ssim_above_gives_what_the_bound_and_the_exact_value_give(
    rng: np.random.Generator,
) -> None:
    """The scorer's one-call path: the same bound and SSIM, bit for bit, and no SSIM where
    the bound is at or below the floor."""
    for a, b in _variants(rng):
        ta, tb = S.terms(a), S.terms(b)
        exact, bound = S.ssim_terms(ta, tb), S.ssim_upper_bound(ta, tb)
        assert S.ssim_above(ta, tb, -1.0) == (exact, bound)
        assert S.ssim_above(ta, tb, bound) == (None, bound)
        assert S.ssim_above(ta, tb, bound - 1e-9) == (exact, bound)
    with pytest.raises(ValueError, match="equal shapes"):
        S.ssim_above(ta, S.terms(np.zeros((40, 40), np.uint8)), 0.5)


def test_different_shapes_use_common_size(rng: np.random.Generator) -> None:
    a = S.to_gray(make_scene(rng, 96, 128))
    small = cv2.resize(a, (64, 47), interpolation=cv2.INTER_AREA)
    assert S.common_shape(a.shape, small.shape) == (47, 64)
    expected = _skimage(S.resize_gray(a, (47, 64)), small)
    assert S.ssim(a, small) == pytest.approx(expected, abs=1e-4)
    assert S.ssim(a, small) > 0.9


def test_tiny_images_are_enlarged_to_min_side() -> None:
    a = np.arange(80, dtype=np.uint8).reshape(8, 10)
    assert min(S.common_shape(a.shape, a.shape)) == S.MIN_SIDE
    assert S.ssim(a, a) == pytest.approx(1.0, abs=1e-6)


def test_inputs_are_not_changed(rng: np.random.Generator) -> None:
    a = S.to_gray(make_scene(rng))
    b = S.to_gray(make_scene(rng))
    a0, b0 = a.copy(), b.copy()
    S.ssim(a, b)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_terms_need_equal_shapes(rng: np.random.Generator) -> None:
    a = S.terms(S.to_gray(make_scene(rng, 40, 40)))
    b = S.terms(S.to_gray(make_scene(rng, 40, 41)))
    with pytest.raises(ValueError, match="equal shapes"):
        S.ssim_terms(a, b)
