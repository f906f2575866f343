"""Box IoU losses (IoU, GIoU, CIoU) and the YOLOX training loss built on SimOTA assignment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from train_bridge.models.assigner import SimOTAAssigner
from train_bridge.models.boxes import BoxFmt, box_area, box_iou, to_xyxy, xyxy_to_cxcywh
from train_bridge.models.head import decode_boxes, flatten_outputs

__all__ = ["YOLOXLoss", "box_iou", "iou_loss"]

IoUKind = Literal["iou", "giou", "ciou"]


def iou_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    kind: IoUKind = "iou",
    fmt: BoxFmt = "xyxy",
    eps: float = 1e-7,
) -> torch.Tensor:
    """Row-wise loss of (N, 4) predictions against (N, 4) targets → (N,), no reduction.

    iou: 1 − IoU (YOLOX's default is 1 − IoU²; we keep the usual definition).
    giou: 1 − IoU + (|C| − |A ∪ B|) / |C|, C the smallest enclosing box (Rezatofighi et al.).
    ciou: 1 − IoU + ρ²/c² + αv (Zheng et al.), ρ the centre distance, c the diagonal of C,
    v = 4/π²·(atan(w_gt/h_gt) − atan(w/h))², α = v / ((1 − IoU) + v) held constant (no grad).
    """
    if kind not in ("iou", "giou", "ciou"):
        raise ValueError(f"iou loss kind {kind!r}: use 'iou', 'giou' or 'ciou'")
    p, t = to_xyxy(pred, fmt), to_xyxy(target, fmt)
    inter = (torch.minimum(p[:, 2:], t[:, 2:]) - torch.maximum(p[:, :2], t[:, :2])).clamp(min=0)
    inter_area = inter.prod(dim=1)
    union = box_area(p) + box_area(t) - inter_area
    iou = inter_area / union.clamp(min=eps)
    if kind == "iou":
        return 1 - iou
    enclose = torch.maximum(p[:, 2:], t[:, 2:]) - torch.minimum(p[:, :2], t[:, :2])
    if kind == "giou":
        enclose_area = enclose.prod(dim=1).clamp(min=eps)
        return 1 - iou + (enclose_area - union) / enclose_area
    diag2 = enclose.pow(2).sum(dim=1).clamp(min=eps)
    rho2 = ((p[:, :2] + p[:, 2:]) / 2 - (t[:, :2] + t[:, 2:]) / 2).pow(2).sum(dim=1)
    pw, ph = p[:, 2] - p[:, 0], (p[:, 3] - p[:, 1]).clamp(min=eps)
    tw, th = t[:, 2] - t[:, 0], (t[:, 3] - t[:, 1]).clamp(min=eps)
    v = (4 / math.pi**2) * (torch.atan(tw / th) - torch.atan(pw / ph)).pow(2)
    with torch.no_grad():
        alpha = v / ((1 - iou) + v + eps)
    return 1 - iou + rho2 / diag2 + alpha * v


class YOLOXLoss(nn.Module):
    """YOLOX loss: SimOTA assignment, then iou_weight·IoU-loss + obj BCE + cls BCE (+ L1).

    All terms are sums divided by the number of foreground anchors in the batch (at least 1).
    The class target of a foreground anchor is one-hot(label) · IoU(prediction, gt), and
    every anchor gets objectness target 1 if foreground else 0. The L1 term, on the raw
    regressions against (cx/s − gx, cy/s − gy, log(w/s), log(h/s)), is on only while
    `use_l1` is True (YOLOX turns it on for the last, augmentation-free epochs).
    """

    def __init__(
        self,
        num_classes: int,
        strides: Sequence[int] = (8, 16, 32),
        iou_kind: IoUKind = "iou",
        iou_weight: float = 5.0,
        use_l1: bool = False,
        assigner: SimOTAAssigner | None = None,
    ) -> None:
        super().__init__()
        if iou_kind not in ("iou", "giou", "ciou"):
            raise ValueError(f"iou_kind {iou_kind!r}: use 'iou', 'giou' or 'ciou'")
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.iou_kind: IoUKind = iou_kind
        self.iou_weight = iou_weight
        self.use_l1 = use_l1
        self.assigner = assigner if assigner is not None else SimOTAAssigner()

    def forward(
        self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Raw head maps (B, 5+C, H_i, W_i) and B targets (M_b, 5) = [class, x1, y1, x2, y2] px.

        Returns a dict with 'loss' (the total to backpropagate) and, detached for logging,
        'iou', 'obj', 'cls', 'l1' (unweighted, each already normalised) and 'num_fg'.
        """
        raw, grid, strides = flatten_outputs(outputs, self.strides)
        raw = raw.float()
        grid, strides = grid.float(), strides.float()
        batch = raw.shape[0]
        if len(targets) != batch:
            raise ValueError(f"{len(targets)} target tensors for a batch of {batch} images")
        if raw.shape[-1] != 5 + self.num_classes:
            raise ValueError(
                f"head outputs have {raw.shape[-1]} channels; {self.num_classes} classes need "
                f"{5 + self.num_classes}"
            )
        reg, obj, cls = raw[..., :4], raw[..., 4], raw[..., 5:]
        boxes = decode_boxes(reg, grid, strides, "xyxy")  # (B, A, 4)
        anchor_points = (grid + 0.5) * strides[:, None]

        fg_masks, cls_targets, box_targets, l1_targets = [], [], [], []
        for b in range(batch):
            gt = targets[b].to(device=raw.device, dtype=torch.float32)
            labels, gt_boxes = gt[:, 0].long(), gt[:, 1:5]
            if (
                labels.numel()
                and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes
            ):
                raise ValueError(
                    f"targets of image {b}: class ids {sorted(set(labels.tolist()))} but the "
                    f"loss has {self.num_classes} classes (0..{self.num_classes - 1})"
                )
            result = self.assigner(
                boxes[b].detach(),
                cls[b].detach(),
                obj[b].detach(),
                anchor_points,
                strides,
                gt_boxes,
                labels,
            )
            matched = gt_boxes[result.matched_gt]
            fg_masks.append(result.fg_mask)
            box_targets.append(matched)
            cls_targets.append(
                F.one_hot(labels[result.matched_gt], self.num_classes).float()
                * result.matched_iou[:, None]
            )
            s = strides[result.fg_mask][:, None]
            centre_size = xyxy_to_cxcywh(matched)
            l1_targets.append(
                torch.cat(
                    [
                        centre_size[:, :2] / s - grid[result.fg_mask],
                        torch.log(centre_size[:, 2:] / s + 1e-8),
                    ],
                    dim=1,
                )
            )

        fg = torch.stack(fg_masks)  # (B, A)
        num_fg = fg.sum()
        norm = num_fg.clamp(min=1).float()
        loss_iou = iou_loss(boxes[fg], torch.cat(box_targets), self.iou_kind).sum() / norm
        loss_obj = F.binary_cross_entropy_with_logits(obj, fg.float(), reduction="sum") / norm
        loss_cls = (
            F.binary_cross_entropy_with_logits(cls[fg], torch.cat(cls_targets), reduction="sum")
            / norm
        )
        if self.use_l1:
            loss_l1 = F.l1_loss(reg[fg], torch.cat(l1_targets), reduction="sum") / norm
        else:
            loss_l1 = raw.new_zeros(())
        total = self.iou_weight * loss_iou + loss_obj + loss_cls + loss_l1
        return {
            "loss": total,
            "iou": loss_iou.detach(),
            "obj": loss_obj.detach(),
            "cls": loss_cls.detach(),
            "l1": loss_l1.detach(),
            "num_fg": num_fg.detach().float(),
        }
