"""Candidate search: exact tiles equal brute force, LSH finds the close pairs, features behave."""

from __future__ import annotations

import numpy as np
import pytest
from dedupe_helpers import low_rank, make_scene

from curate.dedupe import index as I
from curate.dedupe.ssim import to_gray


def _brute(x: np.ndarray, r: float, skip: np.ndarray | None = None) -> set[tuple[int, int]]:
    out = set()
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if skip is not None and skip[i] and skip[j]:
                continue
            if np.linalg.norm(x[i] - x[j]) <= r:
                out.add((i, j))
    return out


def _pairs(c: I.Candidates) -> set[tuple[int, int]]:
    return set(zip(c.i.tolist(), c.j.tolist(), strict=True))


def _clustered(rng: np.random.Generator, n_clusters: int, per: int, dim: int = 16) -> np.ndarray:
    centres = rng.normal(0, 1, (n_clusters, dim))
    pts = centres[:, None, :] + rng.normal(0, 0.05, (n_clusters, per, dim))
    return pts.reshape(-1, dim).astype(np.float32)


def test_exact_equals_brute_force(rng: np.random.Generator) -> None:
    x = _clustered(rng, 30, 4)
    c = I.find_candidates(x, 0.4, method="exact")
    assert _pairs(c) == _brute(x, 0.4)
    assert np.all(c.i < c.j)
    assert np.allclose(c.dist, np.linalg.norm(x[c.i] - x[c.j], axis=1), atol=1e-4)


def test_skip_mask_leaves_out_pairs_inside_the_reference(rng: np.random.Generator) -> None:
    x = _clustered(rng, 10, 4)
    skip = np.zeros(len(x), bool)
    skip[::2] = True
    c = I.find_candidates(x, 0.4, method="exact", skip_mask=skip)
    assert _pairs(c) == _brute(x, 0.4, skip)


def test_reference_first_tiles_search_only_later_new_images(rng: np.random.Generator) -> None:
    """A row tile made only of reference images is searched against the new images after it."""
    x = _clustered(rng, 300, 5, dim=8)  # 1500 points: the first row tile is all reference
    x[1100:1200] = x[:100] + rng.normal(0, 0.05, (100, 8)).astype(np.float32)
    skip = np.zeros(len(x), bool)
    skip[:1100] = True
    c = I.find_candidates(x, 0.3, method="exact", skip_mask=skip)
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    ii, jj = np.nonzero(np.triu(d <= 0.3, 1))
    want = {
        (a, b) for a, b in zip(ii.tolist(), jj.tolist(), strict=True) if not (skip[a] and skip[b])
    }
    assert _pairs(c) == want
    assert any(a < 1024 <= 1100 <= b for a, b in want)  # the tile's pairs with new images exist


@pytest.mark.parametrize("radius", [0.8, 2.0])  # few rows with a pair in a tile; most rows
def test_close_pairs_is_one_product_of_augmented_rows(
    rng: np.random.Generator, radius: float
) -> None:
    a = rng.normal(0, 1, (70, 5)).astype(np.float32)
    b = rng.normal(0, 1, (130, 5)).astype(np.float32)
    i, j, dist = I.close_pairs(I.augmented(a), I.augmented(b), radius, step=32)
    d = np.linalg.norm(a[:, None] - b[None], axis=2)
    want = set(zip(*np.nonzero(d <= radius), strict=True))
    assert want
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == {(int(p), int(q)) for p, q in want}
    assert np.allclose(dist, d[i, j], atol=1e-4)


def test_lsh_finds_all_close_pairs(rng: np.random.Generator) -> None:
    x = _clustered(rng, 400, 3)
    truth = _brute(x, 0.4)
    c = I.find_candidates(x, 0.4, method="lsh", seed=3)
    assert c.method == "lsh"
    assert _pairs(c) == truth
    # It pruned: far fewer bucket pairs checked than all pairs.
    assert c.stats["pairs_checked"] < 0.2 * len(x) * (len(x) - 1) / 2


def test_lsh_is_deterministic_for_a_seed(rng: np.random.Generator) -> None:
    x = _clustered(rng, 100, 3)
    a = I.find_candidates(x, 0.4, method="lsh", seed=5)
    b = I.find_candidates(x, 0.4, method="lsh", seed=5)
    assert _pairs(a) == _pairs(b)


def test_auto_uses_exact_for_small_sets(rng: np.random.Generator) -> None:
    x = _clustered(rng, 20, 3)
    assert I.find_candidates(x, 0.4).method == "exact"


def test_adjacency_rows_are_sorted_and_symmetric(rng: np.random.Generator) -> None:
    x = _clustered(rng, 5, 6)
    c = I.find_candidates(x, 0.5, method="exact")
    adj = I.adjacency(c, len(x))
    for k in range(len(x)):
        nb, d = adj.neighbours(k)
        assert np.all(np.diff(d) >= 0)
        for j in nb:
            assert k in adj.neighbours(int(j))[0]


def test_feature_is_stable_under_brightness_and_far_for_other_scenes(
    rng: np.random.Generator,
) -> None:
    a = to_gray(make_scene(rng, 96, 128))
    bright = np.clip(a.astype(int) + 35, 0, 255).astype(np.uint8)
    other = to_gray(make_scene(rng, 96, 128))
    fa, fb, fo = (I.structure_feature(g).astype(np.float32) for g in (a, bright, other))
    assert fa.shape == (I.FEATURE_DIM,)
    assert np.linalg.norm(fa - fb) < 0.3 < np.linalg.norm(fa - fo)


def test_flat_images_are_close_together() -> None:
    # Two flat images have SSIM near 1; their features must be neighbours too.
    fa = I.structure_feature(np.full((64, 64), 30, np.uint8)).astype(np.float32)
    fb = I.structure_feature(np.full((64, 64), 200, np.uint8)).astype(np.float32)
    assert np.linalg.norm(fa - fb) < 0.05


def test_radius_grows_as_threshold_falls() -> None:
    assert I.ssim_radius(0.95) < I.ssim_radius(0.85) < I.ssim_radius(0.5)
    assert I.ssim_radius(0.85) == pytest.approx(I.RADIUS_SCALE * np.sqrt(0.15))


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (3, 7), (37, 101), (256, 512)])
@pytest.mark.parametrize("share", [0.0, 1e-3, 0.3, 1.0])
def test_sparse_nonzero_is_nonzero(rng: np.random.Generator, shape: tuple, share: float) -> None:
    mask = rng.random(shape) < share
    got, want = I.sparse_nonzero(mask), np.nonzero(mask)
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_projection_never_lengthens_a_distance_and_is_chosen_only_where_it_prunes(
    rng: np.random.Generator,
) -> None:
    x = low_rank(rng, 1500)
    basis = I.choose_projection(x, 1.5, np.random.default_rng(0))
    assert basis is not None and basis.shape[0] == 256 and basis.shape[1] <= 64

    def dists(f: np.ndarray) -> np.ndarray:
        f = f.astype(np.float64)
        sq = (f * f).sum(1)
        return np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * f @ f.T, 0))

    assert (dists(x @ basis) <= dists(x) + 1e-4).all()
    # Isotropic features (no direction dominates) and few dimensions: nothing to gain.
    iso = rng.normal(0, 1, (1500, 256)).astype(np.float32)
    assert I.choose_projection(iso, 20.0, np.random.default_rng(0)) is None
    assert I.choose_projection(x[:, :40], 1.5, np.random.default_rng(0)) is None
