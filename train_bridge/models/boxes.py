"""Torch box helpers shared by the assigner, the losses and NMS: format conversion and IoU.

Boxes are absolute-pixel float tensors, XYXY (x1 <= x2, y1 <= y2) unless a `fmt` says cxcywh.
"""

from __future__ import annotations

from typing import Literal

import torch

BoxFmt = Literal["xyxy", "cxcywh"]


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(…, 4) centre-size boxes → (…, 4) corner boxes."""
    centre, size = boxes[..., :2], boxes[..., 2:4]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(…, 4) corner boxes → (…, 4) centre-size boxes."""
    return torch.cat(
        [(boxes[..., :2] + boxes[..., 2:4]) / 2, boxes[..., 2:4] - boxes[..., :2]], dim=-1
    )


def to_xyxy(boxes: torch.Tensor, fmt: BoxFmt) -> torch.Tensor:
    """Return `boxes` in xyxy, converting from `fmt`."""
    if fmt == "xyxy":
        return boxes
    if fmt == "cxcywh":
        return cxcywh_to_xyxy(boxes)
    raise ValueError(f"box format {fmt!r}: use 'xyxy' or 'cxcywh'")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(…, 4) xyxy → (…,) area, zero for degenerate boxes."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(
        min=0
    )


def box_iou(
    boxes1: torch.Tensor,
    boxes2: torch.Tensor,
    fmt: BoxFmt = "xyxy",
    pairwise: bool = True,
    eps: float = 1e-7,
) -> torch.Tensor:
    """IoU of (N, 4) and (M, 4) boxes: (N, M) when `pairwise`, else (N,) row by row (M == N)."""
    a, b = to_xyxy(boxes1, fmt), to_xyxy(boxes2, fmt)
    if pairwise:
        a, b = a[:, None, :], b[None, :, :]
    top_left = torch.maximum(a[..., :2], b[..., :2])
    bottom_right = torch.minimum(a[..., 2:4], b[..., 2:4])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = box_area(a) + box_area(b) - inter
    return inter / union.clamp(min=eps)
