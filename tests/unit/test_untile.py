"""Untile: NMS / greedy NMM / NMM merging, and tile predictions mapped back to parents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.core import boxes as B
from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.errors import ErrorPolicy, MalformedFileError, OnError, UsageError
from curate.merge_preds import (
    MergeConfig,
    TileRecord,
    greedy_nmm,
    merge_order,
    merge_predictions,
    nmm,
    nms,
    tile_index,
    untile_predictions,
)
from curate.tiling import TileConfig, plan_tiles

# A chain: A matches B, B matches C, A does not match C (IoU 0.6 / 0.6 / 0.25).
CHAIN = np.array([[0, 0, 10, 10], [2.5, 0, 12.5, 10], [5, 0, 15, 10]], float)
CHAIN_SCORES = np.array([0.9, 0.8, 0.7])


def test_merge_order_breaks_score_ties_by_area() -> None:
    boxes = [[0, 0, 5, 5], [0, 0, 10, 10], [0, 0, 1, 1]]
    assert merge_order(boxes, [1.0, 1.0, 0.5]).tolist() == [1, 0, 2]


def test_nms_keeps_a_and_c() -> None:
    assert nms(CHAIN, CHAIN_SCORES, metric="iou", threshold=0.5).tolist() == [0, 2]


def test_greedy_nmm_merges_direct_matches_only() -> None:
    assert greedy_nmm(CHAIN, CHAIN_SCORES, metric="iou", threshold=0.5).tolist() == [0, 0, 2]
    m = merge_predictions(CHAIN, CHAIN_SCORES, [1, 1, 1], MergeConfig("greedy_nmm", "iou", 0.5))
    np.testing.assert_array_equal(m.boxes, [[0, 0, 12.5, 10], [5, 0, 15, 10]])
    assert m.scores.tolist() == [0.9, 0.7] and m.members.tolist() == [0, 0, 1]


def test_nmm_grows_clusters_through_chains() -> None:
    assert nmm(CHAIN, CHAIN_SCORES, metric="iou", threshold=0.5).tolist() == [0, 0, 0]
    m = merge_predictions(CHAIN, CHAIN_SCORES, [1, 1, 1], MergeConfig("nmm", "iou", 0.5))
    np.testing.assert_array_equal(m.boxes, [[0, 0, 15, 10]])
    assert m.scores.tolist() == [0.9]


def test_ios_matches_a_piece_inside_a_box() -> None:
    boxes = [[0, 0, 100, 100], [0, 0, 20, 100]]  # IoU 0.2, IoS 1
    assert nms(boxes, [0.5, 0.9], metric="iou", threshold=0.5).tolist() == [1, 0]
    assert nms(boxes, [0.5, 0.9], metric="ios", threshold=0.5).tolist() == [1]


def test_merging_is_class_aware_by_default() -> None:
    cats = [1, 2, 1]
    aware = merge_predictions(CHAIN, CHAIN_SCORES, cats, MergeConfig("nms", "iou", 0.5))
    assert len(aware) == 3
    agnostic = merge_predictions(
        CHAIN, CHAIN_SCORES, cats, MergeConfig("nms", "iou", 0.5, class_agnostic=True)
    )
    assert agnostic.category_ids.tolist() == [1, 1]


def test_merge_never_changes_inputs_and_handles_empty() -> None:
    b, s, c = CHAIN.copy(), CHAIN_SCORES.copy(), np.array([1, 1, 1])
    merge_predictions(b, s, c, MergeConfig("nmm"))
    np.testing.assert_array_equal(b, CHAIN)
    np.testing.assert_array_equal(s, CHAIN_SCORES)
    assert len(merge_predictions(np.empty((0, 4)), [], [])) == 0


@pytest.mark.parametrize("bad", [{"method": "wbf"}, {"metric": "giou"}, {"threshold": 0.0}])
def test_bad_merge_config_is_a_usage_error(bad: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        MergeConfig(**bad)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**31),
    method=st.sampled_from(["nms", "greedy_nmm", "nmm"]),
    metric=st.sampled_from(["iou", "ios"]),
)
def test_merged_boxes_cover_their_members(n: int, seed: int, method: str, metric: str) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 60, (n, 2))], axis=1)
    scores = rng.uniform(0, 1, n)
    m = merge_predictions(boxes, scores, np.zeros(n, int), MergeConfig(method, metric, 0.5))  # type: ignore[arg-type]
    for i, row in enumerate(m.members):
        if row < 0:
            assert method == "nms"
            continue
        assert (m.boxes[row, :2] <= boxes[i, :2]).all() and (m.boxes[row, 2:] >= boxes[i, 2:]).all()
        assert m.scores[row] >= scores[i]
    assert (np.diff(m.scores) <= 0).all()


# -- untile --------------------------------------------------------------------------


def _tile_gt_as_predictions(tiles: Dataset) -> list[dict[str, object]]:
    tiles.assign_ids()
    return [
        {
            "image_id": t.id,
            "category_id": a.category_id,
            "bbox": B.xyxy_to_xywh([a.bbox])[0].tolist(),
            "score": 1.0,
        }
        for t in tiles.images
        for a in t.annotations
    ]


@st.composite
def separated_boxes(draw: st.DrawFn) -> tuple[int, int, list[tuple[float, float, float, float]]]:
    """Boxes on a coarse grid (never overlapping), each at most 100 px: whole in some 640 tile."""
    w, h = draw(st.integers(200, 2600)), draw(st.integers(200, 2600))
    cells = [(x, y) for x in range(0, w - 110, 110) for y in range(0, h - 110, 110)]
    picked = draw(st.lists(st.sampled_from(cells), unique=True, max_size=40)) if cells else []
    boxes = []
    for x, y in picked:
        bw, bh = draw(st.floats(2, 100)), draw(st.floats(2, 100))
        ox, oy = draw(st.floats(0, 100 - bw)), draw(st.floats(0, 100 - bh))
        boxes.append((x + ox, y + oy, x + ox + bw, y + oy + bh))
    return w, h, boxes


@settings(max_examples=60, deadline=None)
@given(data=separated_boxes(), method=st.sampled_from(["nms", "greedy_nmm", "nmm"]))
def test_untile_of_sliced_ground_truth_gives_back_the_originals(
    data: tuple[int, int, list[tuple[float, float, float, float]]], method: str
) -> None:
    w, h, boxes = data
    img = ImageItem("p.jpg", Path("p.jpg"), w, h, [Annotation(b, 3) for b in boxes], id=7)
    plan = plan_tiles(
        Dataset([Category(3, "car")], [img]),
        TileConfig(sizes=(640,), overlap=0.2, min_visibility=0.1, min_area=1),
    )
    tiles = plan.dataset()
    preds = _tile_gt_as_predictions(tiles)
    res = untile_predictions(preds, tile_index(tiles), config=MergeConfig(method, "ios", 0.5))  # type: ignore[arg-type]
    assert len(res.results) == len(boxes)
    got = B.xywh_to_xyxy([r["bbox"] for r in res.results]) if res.results else np.empty((0, 4))
    if boxes:
        best = B.iou(boxes, got).max(axis=1)
        assert (best > 0.99).all()
    assert all(r["image_id"] == 7 and r["category_id"] == 3 for r in res.results)


def _index() -> dict[object, TileRecord]:
    tiles = Dataset(
        [Category(1, "car")],
        [
            ImageItem(
                "t1.jpg",
                Path("t1.jpg"),
                100,
                100,
                id=11,
                attributes={
                    "parent_id": 1,
                    "tile_x": 0,
                    "tile_y": 0,
                    "parent_width": 180,
                    "parent_height": 100,
                },
            ),
            ImageItem(
                "t2.jpg",
                Path("t2.jpg"),
                100,
                100,
                id=12,
                attributes={
                    "parent_id": 1,
                    "tile_x": 80,
                    "tile_y": 0,
                    "parent_width": 180,
                    "parent_height": 100,
                },
            ),
        ],
    )
    return tile_index(tiles)


def test_untile_shifts_clips_and_merges_across_tiles() -> None:
    preds = [
        {
            "image_id": 11,
            "category_id": 1,
            "bbox": [85, 10, 15, 20],
            "score": 0.9,
        },  # cut at t1's right edge
        {
            "image_id": "t2.jpg",
            "category_id": 1,
            "bbox": [0, 10, 30, 20],
            "score": 0.8,
        },  # the whole object in t2
        {
            "image_id": 12,
            "category_id": 1,
            "bbox": [90, 50, 20, 10],
            "score": 0.5,
        },  # reaches past the parent
    ]
    res = untile_predictions(preds, _index(), config=MergeConfig("greedy_nmm", "ios", 0.5))
    assert [r["bbox"] for r in res.results] == [[80.0, 10.0, 30.0, 20.0], [170.0, 50.0, 10.0, 10.0]]
    assert res.results[0]["score"] == 0.9 and res.counts["merged_predictions"] == 2


def test_untile_adds_a_full_image_pass() -> None:
    preds = [{"image_id": 11, "category_id": 1, "bbox": [10, 10, 10, 10], "score": 0.4}]
    full = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 11, 11], "score": 0.7},
        {"image_id": 1, "category_id": 1, "bbox": [150, 60, 20, 20], "score": 0.6},
    ]
    res = untile_predictions(
        preds, _index(), full_results=full, config=MergeConfig("nms", "iou", 0.5)
    )
    assert [r["score"] for r in res.results] == [0.7, 0.6]
    assert res.counts["full_image_predictions"] == 2


def test_untile_unknown_image_fails_or_is_skipped() -> None:
    preds = [
        {"image_id": 99, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.4},
        {"image_id": 11, "category_id": 1, "bbox": [0, 0, 5, 5]},
    ]
    with pytest.raises(MalformedFileError, match="image_id 99"):
        untile_predictions(preds, _index())
    policy = ErrorPolicy(OnError.skip)
    res = untile_predictions(preds, _index(), policy=policy)
    assert len(res.results) == 1 and len(policy.skipped) == 1
    with pytest.raises(MalformedFileError, match="not a parent"):
        untile_predictions(
            [],
            _index(),
            full_results=[{"image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}],
        )
    with pytest.raises(MalformedFileError, match="needs image_id"):
        untile_predictions([{"image_id": 11, "bbox": [0, 0, 1, 1]}], _index())


def test_tile_index_needs_parent_records() -> None:
    ds = Dataset([], [ImageItem("x.jpg", Path("x.jpg"), 10, 10)])
    with pytest.raises(UsageError, match="curate tile"):
        tile_index(ds)
