"""YOLOX PAFPN neck (3 or more levels, optional CBAM) and the Libra-style MFF fusion module."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from train_bridge.models.attention import CBAM, NonLocalBlock
from train_bridge.models.blocks import BaseConv, CSPLayer, make_conv


def _csp(c_in: int, c_out: int, n: int, depthwise: bool, cbam: bool) -> nn.Module:
    """CSPLayer without shortcuts, followed by a CBAM when `cbam`."""
    layer = CSPLayer(c_in, c_out, n, shortcut=False, depthwise=depthwise)
    return nn.Sequential(layer, CBAM(c_out)) if cbam else layer


class PAFPN(nn.Module):
    """Path-aggregation FPN of YOLOX generalised to L ≥ 2 levels.

    Top-down, from the coarsest level i = L-1 to 1: a 1×1 conv reduces the running map to
    C_{i-1} channels (kept as the lateral of level i), it is upsampled (nearest) to level
    i-1, concatenated with that backbone map and fused by a CSP layer. Bottom-up, from
    level 0: a stride-2 3×3 conv, concatenation with the lateral of the next level and a
    CSP layer to C_{i+1} channels. With in_channels w·(256, 512, 1024) this is exactly
    YOLOX's neck; prepending w·128 (dark2) adds the P2 level with one more step each way.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        depth: float = 1.0,
        depthwise: bool = False,
        cbam: bool = False,
    ) -> None:
        super().__init__()
        if len(in_channels) < 2:
            raise ValueError(f"in_channels {list(in_channels)}: PAFPN needs at least 2 levels")
        c = list(in_channels)
        n = round(3 * depth)
        levels = range(1, len(c))
        self.in_channels = c
        self.reduce = nn.ModuleList(BaseConv(c[i], c[i - 1], 1) for i in levels)
        self.top_down = nn.ModuleList(
            _csp(2 * c[i - 1], c[i - 1], n, depthwise, cbam) for i in levels
        )
        self.down = nn.ModuleList(make_conv(c[i - 1], c[i - 1], 3, 2, depthwise) for i in levels)
        self.bottom_up = nn.ModuleList(_csp(2 * c[i - 1], c[i], n, depthwise, cbam) for i in levels)

    @property
    def out_channels(self) -> list[int]:
        """Channel count of every output level (equal to the input's)."""
        return list(self.in_channels)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """L maps (B, C_i, H_i, W_i), fine to coarse → L maps of the same shapes."""
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"PAFPN built for {len(self.in_channels)} levels got {len(features)} feature maps"
            )
        laterals: dict[int, torch.Tensor] = {}
        top = features[-1]
        for i in range(len(features) - 1, 0, -1):
            laterals[i] = self.reduce[i - 1](top)
            up = F.interpolate(laterals[i], size=features[i - 1].shape[-2:], mode="nearest")
            top = self.top_down[i - 1](torch.cat([up, features[i - 1]], dim=1))
        outputs = [top]
        for i in range(1, len(features)):
            down = self.down[i - 1](outputs[-1])
            outputs.append(self.bottom_up[i - 1](torch.cat([down, laterals[i]], dim=1)))
        return outputs


def _rescale(x: torch.Tensor, size: torch.Size, finer: bool) -> torch.Tensor:
    """Resize a map to `size`: adaptive max-pool when it is finer than the target, else nearest."""
    if x.shape[-2:] == size:
        return x
    if finer:
        return F.adaptive_max_pool2d(x, size)
    return F.interpolate(x, size=size, mode="nearest")


class MFF(nn.Module):
    """Multi-level feature fusion as Libra R-CNN's balanced feature pyramid, with a non-local refine.

    Every level is brought to the refine level's resolution (finer levels by adaptive
    max-pooling, coarser ones by nearest upsampling), averaged, refined by a NonLocalBlock,
    brought back to each level's resolution the opposite way and added to that level.

    YOLOX's PAFPN levels have different widths (w·256/512/1024), so a level whose width is
    not `channels` is projected in and out with 1×1 convs (Identity where they match).
    This keeps the head unchanged and MFF a drop-in stage between neck and head; fusing
    after the head stems instead would need no projections but would tie MFF to the head.
    `channels` defaults to the narrowest level (cheapest), `refine_level` to L // 2: the
    stride-16 level for both 3 levels (8, 16, 32) and 4 levels (4, 8, 16, 32), which keeps
    the (H·W)² attention matrix small.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int | None = None,
        refine_level: int | None = None,
    ) -> None:
        super().__init__()
        c = list(in_channels)
        self.channels = channels if channels is not None else min(c)
        self.refine_level = refine_level if refine_level is not None else len(c) // 2
        if not 0 <= self.refine_level < len(c):
            raise ValueError(f"refine_level {self.refine_level}: must index one of {len(c)} levels")
        self.in_channels = c

        def project(c_in: int, c_out: int) -> nn.Module:
            return nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

        self.project_in = nn.ModuleList(project(ci, self.channels) for ci in c)
        self.project_out = nn.ModuleList(project(self.channels, ci) for ci in c)
        self.refine = NonLocalBlock(self.channels)

    @property
    def out_channels(self) -> list[int]:
        """Channel count of every output level (equal to the input's)."""
        return list(self.in_channels)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """L maps (B, C_i, H_i, W_i), fine to coarse → L maps of the same shapes."""
        if len(features) != len(self.in_channels):
            raise ValueError(
                f"MFF built for {len(self.in_channels)} levels got {len(features)} feature maps"
            )
        r = self.refine_level
        size = features[r].shape[-2:]
        gathered = [
            _rescale(proj(f), size, finer=i < r)
            for i, (proj, f) in enumerate(zip(self.project_in, features, strict=True))
        ]
        balanced = self.refine(torch.stack(gathered).mean(dim=0))
        return [
            f + proj(_rescale(balanced, f.shape[-2:], finer=i > r))
            for i, (proj, f) in enumerate(zip(self.project_out, features, strict=True))
        ]
