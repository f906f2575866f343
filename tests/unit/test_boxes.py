"""Geometry: conversions round-trip, IoU properties, inputs never changed."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from curate.core import boxes as B

coord = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def xyxy(draw, n=st.integers(0, 12)):
    k = draw(n)
    a = draw(arrays(np.float64, (k, 4), elements=coord))
    x1, x2 = np.minimum(a[:, 0], a[:, 2]), np.maximum(a[:, 0], a[:, 2])
    y1, y2 = np.minimum(a[:, 1], a[:, 3]), np.maximum(a[:, 1], a[:, 3])
    return np.stack([x1, y1, x2, y2], axis=1)


@given(xyxy())
def test_conversions_round_trip(b):
    np.testing.assert_allclose(B.xywh_to_xyxy(B.xyxy_to_xywh(b)), b, atol=1e-6)
    np.testing.assert_allclose(B.cxcywh_to_xyxy(B.xyxy_to_cxcywh(b)), b, atol=1e-6)
    np.testing.assert_allclose(
        B.denormalize(B.normalize(b, 640, 480), 640, 480), b, rtol=1e-9, atol=1e-6
    )


@given(xyxy(), xyxy())
def test_iou_properties(a, b):
    m = B.iou(a, b)
    assert m.shape == (len(a), len(b))
    assert np.all((m >= 0) & (m <= 1 + 1e-9))
    np.testing.assert_allclose(m, B.iou(b, a).T)
    assert np.all(B.ios(a, b) >= m - 1e-9)  # IoS >= IoU


@given(xyxy(st.integers(1, 10)))
def test_iou_with_itself_is_one_for_non_degenerate(a):
    keep = B.area(a) > 1e-3
    d = np.diag(B.iou(a, a))
    np.testing.assert_allclose(d[keep], 1.0)
    np.testing.assert_allclose(B.paired_iou(a, a)[keep], 1.0)


@given(xyxy(), st.floats(1, 5000), st.floats(1, 5000))
@settings(max_examples=50)
def test_clip_stays_inside_and_inputs_unchanged(a, w, h):
    before = a.copy()
    c = B.clip(a, w, h)
    np.testing.assert_array_equal(a, before)
    assert not B.out_of_bounds(c, w, h).any()
    assert np.all(B.area(c) <= B.area(a) + 1e-6)


def test_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(B.iou(a, b), [[25 / 175, 0, 1]])
    np.testing.assert_allclose(B.ios(a, b), [[0.25, 0, 1]])
    np.testing.assert_allclose(B.ioa(np.array([[0, 0, 10, 20]]), a), [[0.5]])
    assert B.is_degenerate([[0, 0, 0, 5], [0, 0, 1, 1], [0, 0, np.nan, 1]]).tolist() == [
        True,
        False,
        True,
    ]
    np.testing.assert_allclose(B.union_box(b), [0, 0, 30, 30])


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        B.as_boxes([[1, 2, 3]])
    assert B.as_boxes([]).shape == (0, 4)
