"""augment.functional: boxes stay true to the pixels, inputs are untouched, a seed fixes results."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augment import functional as AF

COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0))


def drawn(boxes: np.ndarray, h: int, w: int, colours=COLOURS) -> np.ndarray:
    """A black image with each (integer) box filled in its own pure colour."""
    img = np.zeros((h, w, 3), dtype=np.uint8)
    for (x1, y1, x2, y2), c in zip(boxes.astype(int), colours, strict=False):
        img[y1:y2, x1:x2] = c
    return img


def bounds_of(img: np.ndarray, colour, tol: int = 100) -> np.ndarray | None:
    """Pixel-edge XYXY bounds of the pixels within ``tol`` of ``colour`` (None when absent)."""
    near = (np.abs(img.astype(int) - np.array(colour)) <= tol).all(axis=2)
    ys, xs = np.nonzero(near)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def blue_bounds(img: np.ndarray) -> np.ndarray:
    """Bounds of the pixels whose blue channel is at least half-blended in (MixUp's other image)."""
    ys, xs = np.nonzero(img[..., 2] >= 64)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def assert_true_to_content(img, boxes, labels, colours=COLOURS, atol=1.01):
    for box, lab in zip(boxes, labels, strict=True):
        got = bounds_of(img, colours[int(lab)])
        assert got is not None, f"label {lab}: box {box} but no such pixels"
        np.testing.assert_allclose(box, got, atol=atol)


@pytest.fixture
def sample():
    boxes = np.array([[10, 12, 30, 40], [50, 20, 90, 36], [70, 60, 78, 70]], dtype=float)
    labels = np.array([0, 1, 2])
    return drawn(boxes, 80, 120), boxes, labels


def test_letterbox_maps_boxes_and_back(sample):
    img, boxes, _ = sample
    before = img.copy(), boxes.copy()
    out, ob, params = AF.letterbox(img, boxes, 64)
    assert out.shape == (64, 64, 3)
    assert out.dtype == np.uint8
    # Top-left placement: padding grey below the resized image.
    assert (out[-1] == AF.PAD_VALUE).all()
    assert_true_to_content(out, ob, [0, 1, 2])
    np.testing.assert_allclose(params.unmap(ob), boxes, atol=1e-9)
    np.testing.assert_array_equal(img, before[0])
    np.testing.assert_array_equal(boxes, before[1])


def test_letterbox_centre_and_upscale(sample):
    img, boxes, _ = sample
    out, ob, params = AF.letterbox(img, boxes, (200, 180), center=True)
    assert out.shape == (200, 180, 3)
    assert params.pad_y > 0
    assert params.pad_x == 0
    assert_true_to_content(out, ob, [0, 1, 2])
    np.testing.assert_allclose(params.unmap(ob), boxes, atol=1e-9)


def test_hflip_is_exact(sample):
    img, boxes, labels = sample
    out, ob = AF.hflip(img, boxes)
    assert_true_to_content(out, ob, labels, atol=0)
    back, bb = AF.hflip(out, ob)
    np.testing.assert_array_equal(back, img)
    np.testing.assert_array_equal(bb, boxes)


@pytest.mark.parametrize("seed", range(6))
def test_random_affine_boxes_follow_pixels(sample, seed):
    img, boxes, labels = sample
    out, ob, ol = AF.random_affine(
        img, boxes, labels, np.random.default_rng(seed), scale=(0.6, 1.6), translate=0.2
    )
    assert out.shape == img.shape
    assert len(ob) == len(ol)
    assert (ob[:, [0, 2]] >= 0).all() and (ob[:, [0, 2]] <= img.shape[1]).all()
    assert (ob[:, [1, 3]] >= 0).all() and (ob[:, [1, 3]] <= img.shape[0]).all()
    assert_true_to_content(out, ob, ol)


def test_random_affine_out_size_and_drop():
    boxes = np.array([[0, 0, 10, 10], [100, 100, 140, 140]], dtype=float)
    img = drawn(boxes, 200, 200)
    # Scale 1, no shift: the 200 px image centred in a 100 px frame keeps only its middle.
    out, ob, ol = AF.random_affine(
        img, boxes, [0, 1], np.random.default_rng(0), out_size=(100, 100), scale=(1, 1), translate=0
    )
    assert out.shape == (100, 100, 3)
    np.testing.assert_array_equal(ol, [1])
    np.testing.assert_allclose(ob, [[50, 50, 90, 90]])


@pytest.mark.parametrize("seed", range(5))
def test_mosaic_boxes_follow_pixels(seed):
    rng = np.random.default_rng(100 + seed)
    images, boxes, labels = [], [], []
    for k in range(4):
        h, w = (int(v) for v in rng.integers(40, 90, 2))
        x1, y1 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
        b = np.array([[x1, y1, x1 + 15, y1 + 12]], dtype=float)
        images.append(drawn(b, h, w, colours=(COLOURS[k],)))
        boxes.append(b)
        labels.append(np.array([k]))
    copies = [i.copy() for i in images]
    canvas, ob, ol = AF.mosaic(images, boxes, labels, 64, np.random.default_rng(seed))
    assert canvas.shape == (128, 128, 3)
    assert_true_to_content(canvas, ob, ol)
    # A dropped box leaves few or no pixels of its colour behind.
    for k in set(range(4)) - set(ol.tolist()):
        got = bounds_of(canvas, COLOURS[k])
        assert got is None or (got[2] - got[0]) * (got[3] - got[1]) < 0.25 * 15 * 12 * 4
    for a, b in zip(images, copies, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mosaic_drops_tiny_remnants():
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    # Top-left quadrant image with the centre at (64, 64): it fills [0, 64)², nothing is cut.
    # The bottom-right image is placed at the centre and keeps [64, 128)²; shift the centre
    # so one of its boxes is almost entirely outside the canvas.
    boxes = [np.array([[60, 60, 64, 64]], float)] * 3 + [np.array([[0, 0, 8, 8]], float)]
    labels = [np.array([0])] * 4
    rng = np.random.default_rng(0)
    _, ob, _ = AF.mosaic([img] * 4, boxes, labels, 64, rng, center_range=(1.0, 1.0))
    # Each quadrant image is fully inside the canvas, so all four boxes survive.
    assert len(ob) == 4
    _, ob, _ = AF.mosaic([img] * 4, boxes, labels, 64, rng, center_range=(1.0, 1.0), min_area=17.0)
    assert len(ob) == 1  # 4x4 boxes fall under min_area, the 8x8 one stays


def test_keep_visible_rules():
    moved = np.array([[-10, 0, 10, 10], [-18, 0, 2, 10], [0, 0, 0.5, 10], [0, 0, 4, 4]], float)
    clipped = np.clip(moved, 0, None)
    keep = AF.keep_visible(moved, clipped, min_area=4, min_visible=0.25, min_size=1)
    np.testing.assert_array_equal(keep, [True, False, False, True])


def test_mixup_keeps_both_sets_of_boxes():
    base_boxes = np.array([[5, 5, 25, 25]], float)
    base = drawn(base_boxes, 60, 80, colours=((255, 0, 0),))
    other_boxes = np.array([[30, 10, 50, 40]], float)
    other = drawn(other_boxes, 60, 80, colours=((0, 0, 255),))
    out, ob, ol = AF.mixup(
        base, base_boxes, [0], other, other_boxes, [2], np.random.default_rng(3), flip=0.0
    )
    assert out.shape == base.shape
    np.testing.assert_array_equal(ob[0], base_boxes[0])
    assert ol.tolist() == [0, 2]
    # The blended other box shows as half-intensity blue.
    np.testing.assert_allclose(ob[1], blue_bounds(out), atol=1.01)


@pytest.mark.parametrize("seed", range(4))
def test_mixup_with_jitter_and_flip(seed):
    base = np.zeros((60, 80, 3), np.uint8)
    other_boxes = np.array([[30, 10, 50, 40]], float)
    other = drawn(other_boxes, 70, 50, colours=((0, 0, 255),))
    out, ob, ol = AF.mixup(
        base, np.zeros((0, 4)), [], other, other_boxes, [2], np.random.default_rng(seed)
    )
    assert ol.tolist() == [2]
    np.testing.assert_allclose(ob[0], blue_bounds(out), atol=1.01)


def test_hsv_jitter_identity_and_determinism(sample):
    img, _, _ = sample
    same = AF.hsv_jitter(img, np.random.default_rng(0), hue=0, saturation=0, value=0)
    assert np.abs(same.astype(int) - img.astype(int)).max() <= 2
    a = AF.hsv_jitter(img, np.random.default_rng(5))
    b = AF.hsv_jitter(img, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == img.shape and a.dtype == np.uint8


def test_seed_fixes_every_random_function(sample):
    img, boxes, labels = sample
    before = img.copy(), boxes.copy(), labels.copy()

    def run(seed):
        rng = np.random.default_rng(seed)
        m = AF.mosaic([img] * 4, [boxes] * 4, [labels] * 4, 64, rng)
        a = AF.random_affine(*m, rng, out_size=(64, 64))
        x = AF.mixup(*a, img, boxes, labels, rng)
        return AF.hsv_jitter(x[0], rng), x[1], x[2]

    r1, r2, r3 = run(7), run(7), run(8)
    for u, v in zip(r1, r2, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(r1[0], r3[0])
    for u, v in zip((img, boxes, labels), before, strict=True):
        np.testing.assert_array_equal(u, v)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    h=st.integers(16, 120),
    w=st.integers(16, 120),
    out=st.integers(16, 96),
)
def test_random_affine_boxes_valid(seed, h, w, out):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1, (8, 2)) * [w, h]
    wh = rng.uniform(1, 30, (8, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [w, h])], axis=1)
    img = np.zeros((h, w, 3), np.uint8)
    _, ob, ol = AF.random_affine(img, boxes, np.arange(8), rng, out_size=(out, out))
    assert len(ob) == len(ol)
    assert (ob[:, 2] >= ob[:, 0] + 1).all() and (ob[:, 3] >= ob[:, 1] + 1).all()
    assert (ob >= 0).all() and (ob <= out).all()
