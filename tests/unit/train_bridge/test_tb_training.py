"""YOLOXLoss behaviour, gradient flow through the full model, and a single-image overfit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from train_bridge.models import ModelConfig, build_loss, build_model
from train_bridge.models.boxes import box_iou
from train_bridge.models.head import decode_outputs
from train_bridge.models.losses import YOLOXLoss
from train_bridge.models.nms import postprocess


def _exact_raw(gt: list[float], label: int, classes: int, size: int, stride: int) -> torch.Tensor:
    """A (1, 5+C, size, size) map whose every cell decodes exactly to `gt` (xyxy)."""
    cx, cy = (gt[0] + gt[2]) / 2, (gt[1] + gt[3]) / 2
    w, h = gt[2] - gt[0], gt[3] - gt[1]
    gy, gx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    raw = torch.zeros(1, 5 + classes, size, size)
    raw[0, 0] = cx / stride - gx
    raw[0, 1] = cy / stride - gy
    raw[0, 2] = math.log(w / stride)
    raw[0, 3] = math.log(h / stride)
    raw[0, 4] = 1.5
    raw[0, 5 + label] = 2.0
    return raw


def test_loss_on_exact_predictions() -> None:
    gt = [8.0, 8.0, 24.0, 24.0]
    raw = _exact_raw(gt, label=1, classes=3, size=4, stride=8)
    loss_fn = YOLOXLoss(3, strides=(8,), iou_kind="ciou", use_l1=True)
    losses = loss_fn([raw], [torch.tensor([[1.0, *gt]])])
    fg = loss_fn.assigner(  # the same assignment, to check which cells are foreground
        decode_outputs([raw], (8,))[0, :, :4],
        raw[0, 5:].flatten(1).T,
        raw[0, 4].flatten(),
        (torch.cartesian_prod(torch.arange(4.0), torch.arange(4.0)).flip(1) + 0.5) * 8,
        torch.full((16,), 8.0),
        torch.tensor([gt]),
        torch.tensor([1]),
    ).fg_mask
    assert fg[[5, 6, 9, 10]].all()
    # Centre (16, 16) ± 20 px covers all 16 cells, the box [8, 24] only the 4 with centres 12
    # or 20 on both axes. Every prediction has IoU 1, so dynamic k = ⌊Σ top-10 IoUs⌋ = 10: the
    # 4 in-both cells, then 6 cells that carry the prior penalty (YOLOX ranks, never excludes).
    assert float(losses["num_fg"]) == 10
    assert float(losses["iou"]) == pytest.approx(0.0, abs=1e-5)
    assert float(losses["l1"]) == pytest.approx(0.0, abs=1e-5)
    cls_target = torch.tensor([0.0, 1.0, 0.0])
    expected_cls = F.binary_cross_entropy_with_logits(
        torch.tensor([0.0, 2.0, 0.0]), cls_target, reduction="sum"
    )
    assert float(losses["cls"]) == pytest.approx(float(expected_cls), rel=1e-5)
    obj_target = torch.zeros(16)
    obj_target[:10] = 1
    expected_obj = (
        F.binary_cross_entropy_with_logits(torch.full((16,), 1.5), obj_target, reduction="sum") / 10
    )
    assert float(losses["obj"]) == pytest.approx(float(expected_obj), rel=1e-5)
    total = 5 * losses["iou"] + losses["obj"] + losses["cls"] + losses["l1"]
    torch.testing.assert_close(losses["loss"], total)


def test_loss_without_targets_is_objectness_only() -> None:
    raw = torch.zeros(2, 7, 4, 4, requires_grad=True)
    losses = YOLOXLoss(2, strides=(8,))([raw], [torch.zeros(0, 5), torch.zeros(0, 5)])
    assert float(losses["num_fg"]) == 0
    assert float(losses["iou"]) == 0 and float(losses["cls"]) == 0
    assert float(losses["obj"]) == pytest.approx(32 * math.log(2), rel=1e-6)
    losses["loss"].backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()


def test_loss_rejects_mismatched_inputs() -> None:
    loss_fn = YOLOXLoss(2, strides=(8, 16))
    with pytest.raises(ValueError, match="strides"):
        loss_fn([torch.zeros(1, 7, 4, 4)], [torch.zeros(0, 5)])
    with pytest.raises(ValueError, match="batch of 1"):
        loss_fn([torch.zeros(1, 7, 4, 4), torch.zeros(1, 7, 2, 2)], [])
    with pytest.raises(ValueError, match="classes"):
        loss_fn([torch.zeros(1, 9, 4, 4), torch.zeros(1, 9, 2, 2)], [torch.zeros(0, 5)])
    with pytest.raises(ValueError, match=r"class ids \[0, 2\].*\(0\.\.1\)"):
        loss_fn(
            [torch.zeros(1, 7, 4, 4), torch.zeros(1, 7, 2, 2)],
            [torch.tensor([[2.0, 0, 0, 8, 8], [0, 0, 0, 8, 8]])],
        )


@pytest.mark.parametrize("kind", ["iou", "giou", "ciou"])
def test_gradient_flows_through_full_loss(kind: str) -> None:
    cfg = ModelConfig(size="nano", num_classes=3, cbam=True, mff=True, p2=True, iou_loss=kind)
    model = build_model(cfg)
    loss_fn = build_loss(cfg)
    loss_fn.use_l1 = True
    images = torch.rand(2, 3, 64, 64)
    targets = [torch.tensor([[0.0, 4, 6, 20, 30], [2, 30, 30, 62, 50]]), torch.zeros(0, 5)]
    losses = loss_fn(model(images), targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses["num_fg"]) > 0 and float(losses["l1"]) > 0
    losses["loss"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert model.backbone.stem.conv.conv.weight.grad.abs().sum() > 0
    assert model.fusion is not None and model.fusion.refine.out.weight.grad.abs().sum() > 0


def test_tiny_model_overfits_one_image() -> None:
    cfg = ModelConfig(size="nano", num_classes=2, cbam=True, mff=True, p2=True, iou_loss="ciou")
    model = build_model(cfg)
    loss_fn = build_loss(cfg)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 64, 64, generator=gen)
    image[..., 8:28, 10:34] += 1.0
    image[..., 36:60, 40:56] -= 0.5
    boxes = torch.tensor([[10.0, 8, 34, 28], [40, 36, 56, 60]])
    targets = [torch.cat([torch.tensor([[0.0], [1.0]]), boxes], dim=1)]
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(100):
        losses = loss_fn(model(image), targets)
        optimiser.zero_grad()
        losses["loss"].backward()
        optimiser.step()
        history.append(float(losses["loss"].detach()))
    first, last = history[0], sum(history[-5:]) / 5
    assert last < 0.2 * first, history
    # Decode in training mode: 100 batch-1 steps are too few for BN running statistics.
    with torch.no_grad():
        (dets,) = postprocess(decode_outputs(model(image), cfg.strides), 0.3, 0.5)
    assert dets.shape[0] == 2
    order = dets[:, 6].argsort()
    assert dets[order, 6].tolist() == [0.0, 1.0]
    assert (box_iou(dets[order, :4], boxes, pairwise=False) > 0.7).all()
