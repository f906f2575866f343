"""Greedy NMS, class-aware batched NMS, Gaussian Soft-NMS and YOLOX-style post-processing (torch only)."""

from __future__ import annotations

from typing import Literal

import torch

from train_bridge.models.boxes import box_iou


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thr: float) -> torch.Tensor:
    """Greedy NMS of (N, 4) xyxy boxes with (N,) scores → kept indices (K,) by descending score.

    Exact greedy result computed on the (N, N) IoU matrix without a per-box loop: a box is
    kept iff no kept higher-scoring box overlaps it by more than `iou_thr`. Iterating that
    rule from "all kept" reaches the greedy fixed point (Cluster-NMS, Zheng et al. 2020),
    usually in a few matrix steps. Memory grows as N²; pre-filter by score for large N.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True, stable=True)
    overlaps = box_iou(boxes[order], boxes[order]).triu(diagonal=1) > iou_thr
    keep = torch.ones(order.shape[0], dtype=torch.bool, device=boxes.device)
    for _ in range(order.shape[0]):
        new_keep = ~(overlaps & keep[:, None]).any(dim=0)
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    return order[keep]


def _class_offsets(boxes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Shift boxes of different labels apart so that boxes of different classes never overlap."""
    span = boxes.max() - boxes.min() + 1
    return boxes + (labels.to(boxes.dtype) * span)[:, None]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_thr: float
) -> torch.Tensor:
    """Class-aware NMS: boxes only suppress boxes of the same label → kept indices (K,)."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    return nms(_class_offsets(boxes, labels), scores, iou_thr)


def soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    sigma: float = 0.5,
    score_thr: float = 0.001,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian Soft-NMS (Bodla et al. 2017) → kept indices (K,) and their decayed scores (K,).

    Repeatedly takes the highest remaining score, then multiplies every other remaining
    score by exp(−IoU² / sigma) and drops those below `score_thr`. With `labels`, only
    boxes of the same label decay each other. Output is in selection order.
    """
    if labels is not None and boxes.shape[0] > 0:
        boxes = _class_offsets(boxes, labels)
    ious = box_iou(boxes, boxes)
    current = scores.clone()
    alive = current >= score_thr
    keep, kept_scores = [], []
    for _ in range(boxes.shape[0]):
        if not bool(alive.any()):
            break
        best = torch.where(alive, current, torch.full_like(current, -torch.inf)).argmax()
        keep.append(best)
        kept_scores.append(current[best])
        alive[best] = False
        current = current * torch.exp(-ious[best].pow(2) / sigma)
        alive &= current >= score_thr
    if not keep:
        empty = torch.zeros(0, dtype=torch.long, device=boxes.device)
        return empty, scores.new_zeros(0)
    return torch.stack(keep), torch.stack(kept_scores)


def postprocess(
    preds: torch.Tensor,
    conf_thr: float = 0.01,
    nms_thr: float = 0.65,
    class_agnostic: bool = False,
    method: Literal["nms", "soft"] = "nms",
    sigma: float = 0.5,
) -> list[torch.Tensor]:
    """Decoded (B, A, 5+C) xyxy predictions → per image (K, 7) detections sorted by score.

    Columns: x1, y1, x2, y2, objectness, class confidence, class id; the detection score
    is objectness · class confidence, and candidates below `conf_thr` are dropped. With
    method "soft", Gaussian Soft-NMS (sigma) decays scores instead of removing boxes
    (boxes decayed below `conf_thr` are dropped) and the class-confidence column holds
    the decayed value so that the product stays the score.
    """
    if method not in ("nms", "soft"):
        raise ValueError(f"method {method!r}: use 'nms' or 'soft'")
    results = []
    for pred in preds:
        class_conf, class_id = pred[:, 5:].max(dim=1)
        score = pred[:, 4] * class_conf
        mask = score >= conf_thr
        dets = torch.cat(
            [pred[mask, :5], class_conf[mask, None], class_id[mask, None].to(pred.dtype)], dim=1
        )
        score, labels = score[mask], class_id[mask]
        nms_labels = None if class_agnostic else labels
        if method == "nms":
            if nms_labels is None:
                keep = nms(dets[:, :4], score, nms_thr)
            else:
                keep = batched_nms(dets[:, :4], score, nms_labels, nms_thr)
            dets = dets[keep]
        else:
            keep, new_score = soft_nms(dets[:, :4], score, sigma, conf_thr, nms_labels)
            dets = dets[keep]
            dets[:, 5] = new_score / dets[:, 4].clamp(min=1e-12)
        results.append(dets)
    return results


def detections_to_dicts(detections: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """(K, 7) per-image detections → dicts with 'boxes' (K, 4), 'scores' (K,), 'labels' (K,)."""
    return [
        {"boxes": d[:, :4], "scores": d[:, 4] * d[:, 5], "labels": d[:, 6].long()}
        for d in detections
    ]
