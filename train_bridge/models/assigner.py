"""SimOTA label assignment of YOLOX (Ge et al. 2021), written as pure torch functions.

For one image: anchors whose centre lies inside a ground-truth box or within
`center_radius`·stride of its centre are candidates. Each (gt, candidate) pair costs
cls BCE + iou_weight·(−log IoU) + prior_penalty·[not inside both box and centre region].
Each gt takes its dynamic_k cheapest candidates, dynamic_k = max(1, ⌊Σ top-`topk` IoUs⌋);
an anchor taken by several gts keeps only the gt for which it is cheapest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from train_bridge.models.boxes import box_iou


@dataclass(frozen=True)
class AssignResult:
    """Foreground anchors of one image and the gt each one learns from."""

    fg_mask: torch.Tensor  # (A,) bool
    matched_gt: torch.Tensor  # (F,) long, gt index per foreground anchor, ascending anchor order
    matched_iou: torch.Tensor  # (F,) float, IoU of the prediction with its matched gt

    @property
    def num_fg(self) -> int:
        """Number of foreground anchors."""
        return int(self.matched_gt.numel())


def geometry_prior(
    anchor_points: torch.Tensor,
    anchor_strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    center_radius: float = 2.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres (A, 2), strides (A,), gt xyxy (G, 4) → candidate (A,) and in-both (G, A) masks."""
    x, y = anchor_points[:, 0][None], anchor_points[:, 1][None]
    x1, y1, x2, y2 = (gt_boxes[:, k, None] for k in range(4))
    in_box = (x > x1) & (x < x2) & (y > y1) & (y < y2)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = center_radius * anchor_strides[None]
    in_centre = (x > cx - r) & (x < cx + r) & (y > cy - r) & (y < cy + r)
    candidate = (in_box | in_centre).any(dim=0)
    return candidate, in_box & in_centre


def classification_cost(
    cls_logits: torch.Tensor, obj_logits: torch.Tensor, gt_labels: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """(A, C) and (A,) logits, (G,) labels → (G, A) Σ_c BCE(sqrt(σ(cls)·σ(obj)), one-hot(label))."""
    p = (torch.sigmoid(cls_logits.float()) * torch.sigmoid(obj_logits.float())[:, None]).sqrt()
    log_p = torch.log(p.clamp(min=eps))
    log_not_p = torch.log((1 - p).clamp(min=eps))
    # BCE summed over classes = Σ_c −log(1−p_c), with the gt class term swapped to −log p_k.
    all_negative = -log_not_p.sum(dim=1)
    return all_negative[None, :] + (log_not_p - log_p)[:, gt_labels].T


def dynamic_k_matching(cost: torch.Tensor, ious: torch.Tensor, topk: int = 10) -> torch.Tensor:
    """(G, A) cost and IoU → (G, A) bool matching, at most one gt per anchor."""
    num_gt, num_anchors = cost.shape
    top_ious = ious.topk(min(topk, num_anchors), dim=1).values
    dynamic_k = top_ious.sum(dim=1).to(torch.long).clamp(min=1)
    order = cost.argsort(dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(num_anchors, device=cost.device).expand(num_gt, -1))
    matching = rank < dynamic_k[:, None]
    cheapest = F.one_hot(cost.argmin(dim=0), num_gt).T.bool()
    shared = matching.sum(dim=0, keepdim=True) > 1
    return torch.where(shared, cheapest, matching)


@torch.no_grad()
def simota_assign(
    pred_boxes: torch.Tensor,
    cls_logits: torch.Tensor,
    obj_logits: torch.Tensor,
    anchor_points: torch.Tensor,
    anchor_strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    center_radius: float = 2.5,
    iou_weight: float = 3.0,
    prior_penalty: float = 1e5,
    topk: int = 10,
) -> AssignResult:
    """Assign one image's A anchors to its G gts; boxes xyxy pixels, anchor_points (A, 2) centres."""
    num_anchors = anchor_points.shape[0]
    device = anchor_points.device
    fg_mask = torch.zeros(num_anchors, dtype=torch.bool, device=device)
    empty = AssignResult(
        fg_mask,
        torch.zeros(0, dtype=torch.long, device=device),
        torch.zeros(0, dtype=torch.float32, device=device),
    )
    if gt_boxes.shape[0] == 0:
        return empty
    gt_boxes = gt_boxes.float()
    candidate, in_both = geometry_prior(anchor_points, anchor_strides, gt_boxes, center_radius)
    cand_idx = candidate.nonzero().squeeze(1)
    if cand_idx.numel() == 0:
        return empty
    ious = box_iou(gt_boxes, pred_boxes[cand_idx].float())
    cost = (
        classification_cost(cls_logits[cand_idx], obj_logits[cand_idx], gt_labels.long())
        + iou_weight * -torch.log(ious + 1e-8)
        + prior_penalty * (~in_both[:, cand_idx]).float()
    )
    matching = dynamic_k_matching(cost, ious, topk)
    is_fg = matching.any(dim=0)
    fg_idx = cand_idx[is_fg]
    matched_gt = matching[:, is_fg].float().argmax(dim=0)
    fg_mask[fg_idx] = True
    return AssignResult(fg_mask, matched_gt, ious[matched_gt, is_fg.nonzero().squeeze(1)])


@dataclass(frozen=True)
class SimOTAAssigner:
    """Configured SimOTA; calling it runs `simota_assign` with these hyper-parameters."""

    center_radius: float = 2.5
    iou_weight: float = 3.0
    prior_penalty: float = 1e5
    topk: int = 10

    def __call__(
        self,
        pred_boxes: torch.Tensor,
        cls_logits: torch.Tensor,
        obj_logits: torch.Tensor,
        anchor_points: torch.Tensor,
        anchor_strides: torch.Tensor,
        gt_boxes: torch.Tensor,
        gt_labels: torch.Tensor,
    ) -> AssignResult:
        """See `simota_assign`."""
        return simota_assign(
            pred_boxes,
            cls_logits,
            obj_logits,
            anchor_points,
            anchor_strides,
            gt_boxes,
            gt_labels,
            self.center_radius,
            self.iou_weight,
            self.prior_penalty,
            self.topk,
        )
