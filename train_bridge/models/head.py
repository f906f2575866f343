"""YOLOX decoupled head and the pure functions that flatten and decode its per-level outputs.

Raw output channel layout per level: [tx, ty, tw, th, objectness logit, C class logits].
A prediction at grid cell (gx, gy) of stride s decodes to centre ((tx + gx)·s, (ty + gy)·s)
and size (exp(tw)·s, exp(th)·s) in input-image pixels (YOLOX's anchor-free decoding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from train_bridge.models.blocks import BaseConv, make_conv

BoxFormat = Literal["xyxy", "cxcywh"]


def make_grid(
    height: int, width: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """(H·W, 2) grid-cell indices (gx, gy), row-major like a flattened (H, W) map."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=-1).reshape(-1, 2)


def flatten_outputs(
    outputs: Sequence[torch.Tensor], strides: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-level (B, 5+C, H_i, W_i) → raw (B, A, 5+C), grid (A, 2) and stride (A,), A = Σ H_i·W_i."""
    if len(outputs) != len(strides):
        raise ValueError(f"{len(outputs)} output levels but {len(strides)} strides {list(strides)}")
    flat, grids, level_strides = [], [], []
    for out, stride in zip(outputs, strides, strict=True):
        _, _, h, w = out.shape
        flat.append(out.flatten(2).transpose(1, 2))
        grids.append(make_grid(h, w, out.device, out.dtype))
        level_strides.append(
            torch.full((h * w,), float(stride), device=out.device, dtype=out.dtype)
        )
    return torch.cat(flat, dim=1), torch.cat(grids), torch.cat(level_strides)


def decode_boxes(
    reg: torch.Tensor, grid: torch.Tensor, strides: torch.Tensor, box_format: BoxFormat = "xyxy"
) -> torch.Tensor:
    """Raw (…, A, 4) regressions, grid (A, 2), strides (A,) → absolute-pixel boxes (…, A, 4)."""
    s = strides[:, None]
    centre = (reg[..., :2] + grid) * s
    size = torch.exp(reg[..., 2:4]) * s
    if box_format == "cxcywh":
        return torch.cat([centre, size], dim=-1)
    if box_format == "xyxy":
        return torch.cat([centre - size / 2, centre + size / 2], dim=-1)
    raise ValueError(f"box_format {box_format!r}: use 'xyxy' or 'cxcywh'")


def decode_outputs(
    outputs: Sequence[torch.Tensor], strides: Sequence[int], box_format: BoxFormat = "xyxy"
) -> torch.Tensor:
    """Per-level raw outputs → (B, A, 5+C): pixel boxes, objectness and class probabilities."""
    raw, grid, level_strides = flatten_outputs(outputs, strides)
    boxes = decode_boxes(raw[..., :4], grid, level_strides, box_format)
    return torch.cat([boxes, torch.sigmoid(raw[..., 4:])], dim=-1)


class YOLOXHead(nn.Module):
    """Decoupled head: per level a 1×1 stem, then two 3×3 convs each for a cls and a reg branch.

    The cls branch ends in C class logits, the reg branch in 4 box regressions and 1
    objectness logit. Class and objectness biases start at -log((1 - p) / p), p = prior_prob.
    In training mode `forward` returns the raw per-level maps; in eval mode it returns
    decoded (B, A, 5+C) predictions. It neither assigns labels nor computes losses.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: Sequence[int],
        hidden_channels: int = 256,
        strides: Sequence[int] = (8, 16, 32),
        depthwise: bool = False,
        prior_prob: float = 0.01,
        box_format: BoxFormat = "xyxy",
    ) -> None:
        super().__init__()
        if len(in_channels) != len(strides):
            raise ValueError(
                f"in_channels {list(in_channels)} and strides {list(strides)} differ in length"
            )
        if box_format not in ("xyxy", "cxcywh"):
            raise ValueError(f"box_format {box_format!r}: use 'xyxy' or 'cxcywh'")
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.box_format: BoxFormat = box_format
        h = hidden_channels

        def branch() -> nn.Sequential:
            return nn.Sequential(make_conv(h, h, 3, 1, depthwise), make_conv(h, h, 3, 1, depthwise))

        self.stems = nn.ModuleList(BaseConv(c, h, 1) for c in in_channels)
        self.cls_convs = nn.ModuleList(branch() for _ in in_channels)
        self.reg_convs = nn.ModuleList(branch() for _ in in_channels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(h, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(h, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(h, 1, 1) for _ in in_channels)
        prior_bias = -math.log((1 - prior_prob) / prior_prob)
        for conv in (*self.cls_preds, *self.obj_preds):
            nn.init.constant_(conv.bias, prior_bias)

    def forward_raw(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """L maps (B, C_i, H_i, W_i) → L raw maps (B, 5 + num_classes, H_i, W_i)."""
        if len(features) != len(self.stems):
            raise ValueError(f"head built for {len(self.stems)} levels got {len(features)}")
        outputs = []
        for i, f in enumerate(features):
            x = self.stems[i](f)
            cls_feat = self.cls_convs[i](x)
            reg_feat = self.reg_convs[i](x)
            outputs.append(
                torch.cat(
                    [
                        self.reg_preds[i](reg_feat),
                        self.obj_preds[i](reg_feat),
                        self.cls_preds[i](cls_feat),
                    ],
                    dim=1,
                )
            )
        return outputs

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor] | torch.Tensor:
        """Raw per-level maps in training mode, decoded (B, A, 5 + num_classes) in eval mode."""
        outputs = self.forward_raw(features)
        if self.training:
            return outputs
        return decode_outputs(outputs, self.strides, self.box_format)
