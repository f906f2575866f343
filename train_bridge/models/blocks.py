"""Convolution blocks of CSPDarknet and YOLOX: conv-BN-SiLU, depthwise conv, CSP, SPP, Focus."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# YOLOX trains its BatchNorm layers with these values instead of PyTorch's defaults.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


class BaseConv(nn.Module):
    """Conv2d ('same' padding, no bias) → BatchNorm2d(eps 1e-3, momentum 0.03) → SiLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, ceil(H / stride), ceil(W / stride))."""
        return self.act(self.bn(self.conv(x)))


class DWConv(nn.Module):
    """Depthwise k×k BaseConv followed by a pointwise 1×1 BaseConv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, kernel_size, stride, groups=in_channels)
        self.pconv = BaseConv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, ceil(H / stride), ceil(W / stride))."""
        return self.pconv(self.dconv(x))


def make_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, depthwise: bool = False
) -> nn.Module:
    """Return a DWConv when `depthwise` else a BaseConv with the same arguments."""
    if depthwise:
        return DWConv(in_channels, out_channels, kernel_size, stride)
    return BaseConv(in_channels, out_channels, kernel_size, stride)


class Bottleneck(nn.Module):
    """1×1 conv to `expansion`·C_out, 3×3 conv to C_out, plus identity when shapes allow."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.conv2 = make_conv(hidden, out_channels, 3, 1, depthwise)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H, W)."""
        y = self.conv2(self.conv1(x))
        return x + y if self.use_add else y


class CSPLayer(nn.Module):
    """Cross-stage-partial block: two 1×1 branches, `n` bottlenecks on one, concat, 1×1 fuse."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.conv2 = BaseConv(in_channels, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1)
        self.m = nn.Sequential(
            *(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise) for _ in range(n))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H, W)."""
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], dim=1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling (YOLOv3-SPP): 1×1 halve, max-pools k∈{5,9,13} stride 1, concat, 1×1."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_sizes: Sequence[int] = (5, 9, 13)
    ) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → (B, C_out, H, W)."""
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.pools)], dim=1))


class Focus(nn.Module):
    """Space-to-depth (2×2 pixel blocks → 4·C channels) followed by a BaseConv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1):
        super().__init__()
        self.conv = BaseConv(4 * in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) with even H, W → (B, C_out, H / 2, W / 2) for stride 1."""
        top_left = x[..., ::2, ::2]
        top_right = x[..., ::2, 1::2]
        bottom_left = x[..., 1::2, ::2]
        bottom_right = x[..., 1::2, 1::2]
        return self.conv(torch.cat([top_left, bottom_left, top_right, bottom_right], dim=1))
