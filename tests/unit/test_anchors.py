"""curate.anchors: metrics, fitting, YAML/Darknet output, stride advice, and a comparison
with a straightforward re-implementation of YOLOv5's ``kmean_anchors``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.vq import kmeans

from curate.anchors import (
    YOLOV5_COCO_ANCHORS,
    AnchorOptions,
    _Fitness,
    anchors_for_dataset,
    evaluate_anchors,
    fcos_level,
    fit_anchors,
    input_box_sizes,
    kmeans_iou,
    ratio_metric,
    stride_shares,
    wh_iou,
)
from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.errors import UsageError


def aerial_cars(n: int, rng: np.random.Generator) -> np.ndarray:
    """Small cars seen from above at 640: 5-30 px long, ~0.45 as wide, random orientation."""
    length = np.exp(rng.normal(np.log(12), 0.4, n))
    width = length * rng.uniform(0.4, 0.55, n)
    turned = rng.random(n) < 0.5
    return np.stack([np.where(turned, length, width), np.where(turned, width, length)], axis=1)


def yolov5_kmean_anchors(
    wh0: np.ndarray, n: int, rng: np.random.Generator, thr: float = 4.0, gen: int = 1000
) -> np.ndarray:
    """YOLOv5's procedure: whitened k-means (30 iterations), then 1000 mutation generations."""
    t = 1 / thr
    wh = wh0[(wh0 >= 2.0).any(1)].astype(np.float32)

    def fitness(k: np.ndarray) -> float:
        r = wh[:, None] / k[None].astype(np.float32)
        best = np.minimum(r, 1 / r).min(2).max(1)
        return float((best * (best > t)).mean())

    s = wh.std(0)
    np.random.seed(int(rng.integers(2**31)))  # scipy's kmeans draws from the legacy global RNG
    k = kmeans(wh / s, n, iter=30)[0] * s
    assert len(k) == n
    f, sh, mp, sigma = fitness(k), k.shape, 0.9, 0.1
    for _ in range(gen):
        v = np.ones(sh)
        while (v == 1).all():
            v = ((rng.random(sh) < mp) * rng.random() * rng.standard_normal(sh) * sigma + 1).clip(
                0.3, 3.0
            )
        kg = (k.copy() * v).clip(min=2.0)
        fg = fitness(kg)
        if fg > f:
            f, k = fg, kg.copy()
    return k[np.argsort(k.prod(1))]


def test_at_least_as_good_as_yolov5_kmean_anchors() -> None:
    """Fitness and anchors above threshold >= YOLOv5's procedure on the same boxes.

    Averaged over seeds; "within noise" allows 0.002 fitness and 0.05 anchors per box,
    well under the spread of YOLOv5's own runs (about 0.003 and 0.15).
    """
    ours_f, ours_a, ref_f, ref_a, default_a = [], [], [], [], []
    for seed in range(3):
        wh = aerial_cars(3000, np.random.default_rng(100 + seed))
        fit_set = wh[(wh >= 2.0).any(1)]
        ref = yolov5_kmean_anchors(wh, 9, np.random.default_rng(seed))
        ours = fit_anchors(wh, AnchorOptions(), np.random.default_rng(seed))
        m_ref = evaluate_anchors(fit_set, ref)
        m_ours = evaluate_anchors(fit_set, ours.anchors)
        ours_f.append(m_ours.fitness)
        ours_a.append(m_ours.anchors_above_thr)
        ref_f.append(m_ref.fitness)
        ref_a.append(m_ref.anchors_above_thr)
        default_a.append(evaluate_anchors(fit_set, YOLOV5_COCO_ANCHORS).anchors_above_thr)
    assert np.mean(ours_f) >= np.mean(ref_f) - 0.002, (ours_f, ref_f)
    assert np.mean(ours_a) >= np.mean(ref_a) - 0.05, (ours_a, ref_a)
    assert np.mean(ours_a) > 2 * np.mean(default_a)


# -- metrics ---------------------------------------------------------------------------


wh_st = st.tuples(st.floats(0.5, 800), st.floats(0.5, 800))


@settings(max_examples=100, deadline=None)
@given(st.lists(wh_st, min_size=1, max_size=20), st.lists(wh_st, min_size=1, max_size=9))
def test_metrics_match_their_definitions(
    boxes: list[tuple[float, float]], anchors: list[tuple[float, float]]
) -> None:
    r = ratio_metric(boxes, anchors)
    iou = wh_iou(boxes, anchors)
    for i, (w, h) in enumerate(boxes):
        for j, (a, b) in enumerate(anchors):
            assert r[i, j] == pytest.approx(min(w / a, a / w, h / b, b / h))
            inter = min(w, a) * min(h, b)
            assert iou[i, j] == pytest.approx(inter / (w * h + a * b - inter))
    fast = _Fitness(np.array(boxes, dtype=np.float64), 4.0)
    f, aat = fast.both(np.array(anchors, dtype=np.float64))
    m = evaluate_anchors(boxes, anchors)
    # float32 may flip a match sitting exactly on the threshold (r = 1/4, e.g. a 1x2 box and
    # a 1x0.5 anchor): such a box adds about 1/4 to one sum and nothing to the other.
    on_threshold = int(np.count_nonzero(np.abs(r.max(axis=1) - 0.25) < 1e-5))
    assert f == pytest.approx(m.fitness, abs=1e-5 + on_threshold * 0.26 / len(boxes))
    pairs_on_threshold = int(np.count_nonzero(np.abs(r - 0.25) < 1e-5))
    assert abs(aat - m.anchors_above_thr) <= pairs_on_threshold / len(boxes) + 1e-9


def test_metrics_on_known_boxes() -> None:
    anchors = np.array([[10.0, 10.0], [40.0, 40.0]])
    boxes = np.array([[10.0, 10.0], [20.0, 20.0], [200.0, 200.0]])
    m = evaluate_anchors(boxes, anchors)
    # best r: 1, 0.5, 0.2 (below 1/4: not counted)
    assert m.fitness == pytest.approx((1 + 0.5) / 3)
    assert m.bpr == pytest.approx(2 / 3)
    # anchors with r > 1/4: box 1 -> both (r 1, 0.25 not > 0.25 -> only 1); box 2 -> 2; box 3 -> 0
    assert m.anchors_above_thr == pytest.approx((1 + 2 + 0) / 3)
    assert m.mean_best_iou == pytest.approx((1 + 0.25 + 0.04) / 3)


# -- fitting ---------------------------------------------------------------------------


def test_deterministic_for_a_seed() -> None:
    wh = aerial_cars(3000, np.random.default_rng(1))
    opts = AnchorOptions(generations=200, polish_generations=100)
    a = fit_anchors(wh, opts, np.random.default_rng(7))
    b = fit_anchors(wh, opts, np.random.default_rng(7))
    np.testing.assert_array_equal(a.anchors, b.anchors)
    assert a.ours == b.ours


def test_does_not_change_its_input() -> None:
    wh = aerial_cars(500, np.random.default_rng(1))
    before = wh.copy()
    fit_anchors(wh, AnchorOptions(generations=50, polish_generations=10), np.random.default_rng(0))
    np.testing.assert_array_equal(wh, before)


def test_kmeans_iou_finds_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 10.0], [40.0, 20.0], [150.0, 150.0]])
    wh = np.concatenate([c * np.exp(rng.normal(0, 0.05, (300, 2))) for c in centres])
    k = kmeans_iou(wh, 3, rng)
    k = k[np.argsort(k.prod(1))]
    np.testing.assert_allclose(k, centres, rtol=0.05)


def test_anchors_sorted_and_grouped_by_level() -> None:
    wh = aerial_cars(2000, np.random.default_rng(2))
    res = fit_anchors(
        wh, AnchorOptions(n=12, levels=4, generations=100, polish_generations=0), None
    )
    areas = res.anchors.prod(1)
    assert (np.diff(areas) >= 0).all()
    assert [s for s, _ in res.levels()] == [4, 8, 16, 32]
    block = yaml.safe_load(res.yaml_block())
    assert len(block["anchors"]) == 4 and all(len(row) == 6 for row in block["anchors"])
    assert "# P2/4" in res.yaml_block()
    flat = [int(v) for v in res.darknet_line().split("=")[1].replace(" ", "").split(",")]
    assert flat == [max(1, round(v)) for v in res.anchors.reshape(-1)]
    assert res.darknet_masks()[0] == "stride 4: mask = 0,1,2"


def test_fit_beats_defaults_on_tiny_boxes() -> None:
    wh = aerial_cars(3000, np.random.default_rng(3))
    res = fit_anchors(wh, AnchorOptions(generations=300), np.random.default_rng(0))
    assert res.ours.fitness > res.default.fitness
    assert res.ours.bpr >= res.default.bpr
    assert res.ours.fitness >= res.kmeans.fitness


@pytest.mark.parametrize("kwargs", [{"n": 8}, {"levels": 5}, {"imgsz": 0}, {"thr": 1.0}, {"n": 0}])
def test_bad_options(kwargs: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        AnchorOptions(**kwargs)  # type: ignore[arg-type]


def test_too_few_boxes() -> None:
    with pytest.raises(UsageError, match="need at least 9 boxes"):
        fit_anchors(np.array([[10.0, 10.0]] * 5), AnchorOptions(), None)
    with pytest.raises(UsageError, match="need at least 9 boxes"):
        fit_anchors(np.full((50, 2), 1.0), AnchorOptions(), None)  # all under 2 px


def test_subsample_for_large_sets() -> None:
    wh = aerial_cars(5000, np.random.default_rng(4))
    res = fit_anchors(
        wh,
        AnchorOptions(max_fit_boxes=1000, generations=100, polish_generations=0),
        np.random.default_rng(0),
    )
    assert res.num_fit_boxes == 1000 and res.num_boxes == 5000


# -- dataset boxes and stride advice -----------------------------------------------------


def test_input_box_sizes_letterbox_and_filters() -> None:
    img = ImageItem(
        "a.jpg",
        Path("a.jpg"),
        1280,
        640,
        [
            Annotation((0, 0, 20, 10), 0),
            Annotation((0, 0, 100, 100), 0, iscrowd=True),
            Annotation((5, 5, 5, 10), 0),
        ],
    )
    unsized = ImageItem("b.jpg", Path("b.jpg"), 0, 0, [Annotation((0, 0, 4, 4), 0)])
    wh = input_box_sizes(Dataset([Category(0, "car")], [img, unsized]), 640)
    np.testing.assert_allclose(wh, [[10.0, 5.0]])


def test_fcos_ranges() -> None:
    wh = np.array([[10, 10], [64, 10], [65, 10], [128, 30], [129, 5], [256, 1], [257, 1], [999, 9]])
    np.testing.assert_array_equal(fcos_level(wh, (4, 8, 16, 32)), [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(fcos_level(wh, (8, 16, 32)), [0, 0, 0, 0, 1, 1, 2, 2])


def test_stride_shares_and_advice() -> None:
    wh = np.array([[3.0, 3.0]] * 60 + [[20.0, 20.0]] * 40)
    shares = {s.stride: s for s in stride_shares(wh)}
    assert shares[4].below_cell == pytest.approx(0.6)
    assert shares[8].below_cell == pytest.approx(0.6)
    assert shares[32].below_cell == pytest.approx(1.0)
    assert shares[8].assigned_p3_p5 == pytest.approx(1.0)
    assert shares[4].assigned_p3_p5 is None
    res = fit_anchors(
        wh * np.exp(np.random.default_rng(0).normal(0, 0.1, wh.shape)),
        AnchorOptions(generations=50, polish_generations=0),
        np.random.default_rng(0),
        native_size=1000.0,
    )
    text = " ".join(res.recommendations)
    assert "60% of boxes are under 8 px at 640" in text
    assert "stride-4" in text and "--imgsz" in text
    assert "beyond the native resolution" in text


def test_advice_for_large_boxes() -> None:
    wh = np.exp(np.random.default_rng(0).normal(math.log(150), 0.4, (500, 2)))
    res = fit_anchors(wh, AnchorOptions(generations=50, polish_generations=0), None)
    assert any("large enough" in r for r in res.recommendations)


def test_anchors_for_dataset_and_json() -> None:
    rng = np.random.default_rng(5)
    images = []
    for i in range(20):
        anns = []
        for w, h in aerial_cars(30, rng) * 3:  # native 1920 -> 640: a third
            x, y = rng.uniform(0, 1800), rng.uniform(0, 1000)
            anns.append(Annotation((x, y, x + w, y + h), 0))
        images.append(ImageItem(f"{i}.jpg", Path(f"{i}.jpg"), 1920, 1080, anns))
    res = anchors_for_dataset(
        Dataset([Category(0, "car")], images),
        AnchorOptions(generations=100, polish_generations=50),
        np.random.default_rng(0),
    )
    assert res.num_boxes == 600
    assert res.native_size == 1920
    d = res.to_dict()
    assert d["yolov5_default"]["fitness"] == res.default.fitness
    assert len(d["anchors"]) == 9 and d["anchors_by_level"].keys() == {"8", "16", "32"}
