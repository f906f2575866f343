"""SimOTA on toy cases small enough to follow by hand."""

from __future__ import annotations

import torch

from train_bridge.models.assigner import (
    SimOTAAssigner,
    classification_cost,
    dynamic_k_matching,
    geometry_prior,
)

STRIDE = 8.0


def _logits(num: int, classes: int, favoured: int, high: float = 4.0) -> torch.Tensor:
    logits = torch.full((num, classes), -4.0)
    logits[:, favoured] = high
    return logits


def test_one_gt_picks_the_right_anchors() -> None:
    gt = torch.tensor([[16.0, 16.0, 40.0, 40.0]])  # centre (28, 28); centre region ±20 px
    points = torch.tensor(
        [
            [28.0, 28.0],  # 0: in box and centre region, prediction = gt (IoU 1)
            [20.0, 20.0],  # 1: in box and centre region, prediction IoU 0.6
            [60.0, 60.0],  # 2: outside both: never a candidate, even with IoU 1
            [45.0, 28.0],  # 3: in centre region but not in box: candidate with penalty
            [100.0, 100.0],  # 4: outside both
        ]
    )
    shifted = [16.0, 16.0, 40.0, 40.0 * 0.6 + 16.0 * 0.4]  # height 0.6× the gt's: IoU 0.6
    preds = torch.tensor(
        [gt[0].tolist(), shifted, gt[0].tolist(), gt[0].tolist(), [90, 90, 110, 110]]
    )
    strides = torch.full((5,), STRIDE)
    result = SimOTAAssigner()(
        preds, _logits(5, 2, 0), torch.full((5,), 2.0), points, strides, gt, torch.tensor([0])
    )
    # dynamic k = ⌊1 + 1 + 0.6⌋ = 2 over the candidates {0, 1, 3}; 3 carries the prior penalty.
    assert result.fg_mask.tolist() == [True, True, False, False, False]
    assert result.matched_gt.tolist() == [0, 0]
    torch.testing.assert_close(result.matched_iou, torch.tensor([1.0, 0.6]))
    assert result.num_fg == 2


def test_two_gts_competing_for_one_anchor_lower_cost_wins() -> None:
    points = torch.tensor([[30.0, 30.0]])
    strides = torch.tensor([STRIDE])
    pred = torch.tensor([[20.0, 20.0, 40.0, 40.0]])
    exact = [20.0, 20.0, 40.0, 40.0]  # IoU 1 with the prediction
    offset = [22.0, 22.0, 42.0, 42.0]  # IoU < 1 with the prediction
    cls = _logits(1, 2, favoured=0)
    obj = torch.tensor([2.0])
    assigner = SimOTAAssigner()
    for gts, labels, winner in [
        ([exact, offset], [0, 0], 0),  # same class: the better box is cheaper
        ([offset, exact], [0, 0], 1),  # order of the gts does not matter
        ([exact, exact], [1, 0], 1),  # same box: the class the anchor predicts is cheaper
    ]:
        result = assigner(pred, cls, obj, points, strides, torch.tensor(gts), torch.tensor(labels))
        assert result.fg_mask.tolist() == [True]
        assert result.matched_gt.tolist() == [winner]


def test_no_gt_and_no_candidate_give_no_foreground() -> None:
    points = torch.tensor([[4.0, 4.0], [12.0, 4.0]])
    strides = torch.full((2,), STRIDE)
    preds = torch.tensor([[0.0, 0, 8, 8], [8, 0, 16, 8]])
    assigner = SimOTAAssigner()
    args = (preds, torch.zeros(2, 3), torch.zeros(2), points, strides)
    empty = assigner(*args, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    far = assigner(*args, torch.tensor([[200.0, 200, 220, 220]]), torch.tensor([1]))
    for result in (empty, far):
        assert result.num_fg == 0 and not result.fg_mask.any()


def test_geometry_prior_masks() -> None:
    points = torch.tensor([[10.0, 10.0], [35.0, 10.0], [60.0, 60.0]])
    strides = torch.full((3,), STRIDE)
    gt = torch.tensor([[0.0, 0.0, 20.0, 20.0]])  # centre (10, 10), radius 20 px
    candidate, in_both = geometry_prior(points, strides, gt, 2.5)
    assert candidate.tolist() == [True, False, False]
    assert in_both.tolist() == [[True, False, False]]
    wide, _ = geometry_prior(points, strides, gt, 3.5)
    assert wide.tolist() == [True, True, False]


def test_classification_cost_is_summed_bce() -> None:
    cls = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, 0.0]])
    obj = torch.tensor([0.3, -0.7])
    labels = torch.tensor([2, 1])
    cost = classification_cost(cls, obj, labels)
    p = (cls.sigmoid() * obj.sigmoid()[:, None]).sqrt()
    for g, label in enumerate(labels.tolist()):
        target = torch.nn.functional.one_hot(torch.tensor(label), 3).float()
        for a in range(2):
            expected = torch.nn.functional.binary_cross_entropy(p[a], target, reduction="sum")
            torch.testing.assert_close(cost[g, a], expected)


def test_dynamic_k_matching() -> None:
    ious = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.0, 0.2, 0.3, 0.4]])
    cost = torch.tensor([[1.0, 2.0, 3.0, 4.0], [9.0, 1.5, 8.0, 7.0]])
    matching = dynamic_k_matching(cost, ious, topk=10)
    # gt 0: k = ⌊2.5⌋ = 2 → anchors 0, 1; gt 1: k = max(⌊0.9⌋, 1) = 1 → anchor 1 (cost 1.5).
    # Anchor 1 is shared and goes to gt 1, the cheaper one for it.
    assert matching.tolist() == [[True, False, False, False], [False, True, False, False]]
