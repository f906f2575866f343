"""Attention blocks: CBAM (Woo et al. 2018) and the embedded-Gaussian non-local block (Wang et al. 2018)."""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """CBAM channel gate: x · sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))) with one shared MLP.

    The MLP is two bias-free 1×1 convs C → hidden → C with a ReLU between them, where
    hidden = max(C // reduction, min_hidden). Woo et al. use reduction 16; the floor of 8
    hidden units keeps the gate expressive on the thin stages of the nano/tiny models
    (C = 32 would otherwise give a 2-unit bottleneck).
    """

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, min_hidden)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W), every channel scaled by a weight in (0, 1)."""
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM spatial gate: x · sigmoid(conv_k×k([mean_c(x); max_c(x)])), bias-free conv."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W), every position scaled by a weight in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Convolutional block attention module: channel gate, then spatial gate (sequential)."""

    def __init__(
        self, channels: int, reduction: int = 16, min_hidden: int = 8, kernel_size: int = 7
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction, min_hidden)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        return self.spatial(self.channel(x))


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block: z = x + W(softmax(θ(x)ᵀ φ(x)) g(x)).

    θ, φ, g are 1×1 convs C → C/2 (with bias) and W is a 1×1 conv C/2 → C. There is no
    1/sqrt(d) scaling, as in Wang et al. W (weight and bias) starts at zero so the block is
    an identity at initialisation and can be dropped into a pretrained network; this is
    the zero-init recipe of the paper applied to W itself rather than to a BN after it
    (as mmcv's NonLocal2d does without a norm layer).
    """

    def __init__(self, channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels if inter_channels is not None else max(channels // 2, 1)
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.out = nn.Conv2d(inter, channels, 1)
        for param in self.out.parameters():
            nn.init.zeros_(param)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W); memory grows as (H·W)² per image."""
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, C')
        phi = self.phi(x).flatten(2)  # (B, C', N)
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, N, C')
        attn = torch.softmax(theta @ phi, dim=-1)  # (B, N, N), row i attends over j
        y = (attn @ g).transpose(1, 2).reshape(b, -1, h, w)
        return x + self.out(y)
