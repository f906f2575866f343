"""box_iou and the IoU / GIoU / CIoU losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from train_bridge.models.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from train_bridge.models.losses import box_iou, iou_loss

# (pred, target) in xyxy with IoU, GIoU loss and CIoU loss worked out by hand.
_SAME_CENTRE_V = 4 / math.pi**2 * (math.atan(2 / 4) - math.atan(4 / 2)) ** 2
CASES = {
    # inter 1, union 7, enclosing 3×3; centres (1,1) and (2,2), same aspect.
    "partial": ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7, 1 - 1 / 7 + 2 / 9, 1 - 1 / 7 + 2 / 18),
    # target inside prediction: IoU 4/16, enclosing box is the prediction, same centre.
    "containment": ([0, 0, 4, 4], [1, 1, 3, 3], 0.25, 0.75, 0.75),
    # no overlap: enclosing 3×1, union 2; centre distance 2, enclosing diagonal² 10.
    "disjoint": ([0, 0, 1, 1], [2, 0, 3, 1], 0.0, 1 + 1 / 3, 1 + 4 / 10),
    # both centred at (2, 1), 4×2 against 2×4: inter 4, union 12, enclosing 4×4.
    "same_centre_aspect": (
        [0, 0, 4, 2],
        [1, -1, 3, 3],
        1 / 3,
        1 - 1 / 3 + 4 / 16,
        1 - 1 / 3 + _SAME_CENTRE_V**2 / ((1 - 1 / 3) + _SAME_CENTRE_V),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_iou_giou_ciou_by_hand(case: str) -> None:
    pred_l, target_l, iou, giou_loss, ciou_loss = CASES[case]
    pred = torch.tensor([pred_l], dtype=torch.float64)
    target = torch.tensor([target_l], dtype=torch.float64)
    torch.testing.assert_close(
        box_iou(pred, target, pairwise=False), torch.tensor([iou], dtype=torch.float64)
    )
    torch.testing.assert_close(
        iou_loss(pred, target, "iou"), torch.tensor([1 - iou], dtype=torch.float64)
    )
    torch.testing.assert_close(
        iou_loss(pred, target, "giou"), torch.tensor([giou_loss], dtype=torch.float64)
    )
    torch.testing.assert_close(
        iou_loss(pred, target, "ciou"), torch.tensor([ciou_loss], dtype=torch.float64)
    )


def test_losses_accept_cxcywh() -> None:
    pred = torch.tensor([[0.0, 0, 4, 2], [0, 0, 2, 2]])
    target = torch.tensor([[1.0, -1, 3, 3], [1, 1, 3, 3]])
    for kind in ("iou", "giou", "ciou"):
        torch.testing.assert_close(
            iou_loss(xyxy_to_cxcywh(pred), xyxy_to_cxcywh(target), kind, fmt="cxcywh"),
            iou_loss(pred, target, kind),
        )
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(pred)), pred)


def test_pairwise_box_iou(gen: torch.Generator) -> None:
    a = torch.rand(5, 2, generator=gen) * 50
    boxes1 = torch.cat([a, a + torch.rand(5, 2, generator=gen) * 30 + 1], dim=1)
    b = torch.rand(3, 2, generator=gen) * 50
    boxes2 = torch.cat([b, b + torch.rand(3, 2, generator=gen) * 30 + 1], dim=1)
    pairwise = box_iou(boxes1, boxes2)
    assert pairwise.shape == (5, 3)
    for i in range(5):
        for j in range(3):
            expected = box_iou(boxes1[i : i + 1], boxes2[j : j + 1], pairwise=False)[0]
            torch.testing.assert_close(pairwise[i, j], expected)
    torch.testing.assert_close(box_iou(boxes1, boxes1).diagonal(), torch.ones(5))


def test_ciou_alpha_has_no_gradient() -> None:
    pred = torch.tensor([[0.5, 0.2, 4.0, 2.5]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[1.0, -1, 3, 3]], dtype=torch.float64)
    iou_loss(pred, target, "ciou").sum().backward()
    assert pred.grad is not None
    # Same loss with α computed outside the graph as a plain number.
    p = pred.detach().clone().requires_grad_(True)
    iou = box_iou(p, target, pairwise=False)
    w, h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    v = 4 / math.pi**2 * (math.atan(2 / 4) - torch.atan(w / h)) ** 2
    alpha = float((v / ((1 - iou) + v)).detach())
    centre = (p[:, :2] + p[:, 2:]) / 2
    enclose = torch.maximum(p[:, 2:], target[:, 2:]) - torch.minimum(p[:, :2], target[:, :2])
    rho2 = (centre - torch.tensor([[2.0, 1.0]], dtype=torch.float64)).pow(2).sum(1)
    manual = 1 - iou + rho2 / enclose.pow(2).sum(1) + alpha * v
    manual.sum().backward()
    torch.testing.assert_close(pred.grad, p.grad)


def test_losses_do_not_change_inputs() -> None:
    pred = torch.tensor([[0.0, 0, 4, 2]])
    target = torch.tensor([[1.0, -1, 3, 3]])
    before = (pred.clone(), target.clone())
    for kind in ("iou", "giou", "ciou"):
        iou_loss(pred, target, kind)
    box_iou(pred, target)
    torch.testing.assert_close((pred, target), before)


def test_iou_loss_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="diou"):
        iou_loss(torch.zeros(1, 4), torch.zeros(1, 4), "diou")  # type: ignore[arg-type]


_coord = st.floats(min_value=0, max_value=100, allow_nan=False, width=32)
_extent = st.floats(min_value=0.5, max_value=50, allow_nan=False, width=32)


@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.tuples(_coord, _coord, _extent, _extent), min_size=2, max_size=2),
)
def test_iou_losses_properties(pair: list[tuple[float, float, float, float]]) -> None:
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in pair], dtype=torch.float64)
    pred, target = boxes[:1], boxes[1:]
    iou = box_iou(pred, target, pairwise=False)
    torch.testing.assert_close(iou, box_iou(target, pred, pairwise=False))
    assert 0 <= float(iou) <= 1 + 1e-9
    plain = iou_loss(pred, target, "iou")
    giou = iou_loss(pred, target, "giou")
    ciou = iou_loss(pred, target, "ciou")
    assert float(plain) - 1e-9 <= float(giou) <= 2 + 1e-9
    assert float(ciou) >= float(plain) - 1e-9
    torch.testing.assert_close(iou_loss(pred, pred, "ciou"), torch.zeros(1, dtype=torch.float64))
