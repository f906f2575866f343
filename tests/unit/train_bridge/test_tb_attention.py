"""CBAM and the non-local block against their formulas, evaluated element by element."""

from __future__ import annotations

import math

import torch

from train_bridge.models.attention import CBAM, ChannelAttention, NonLocalBlock, SpatialAttention


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def _channel_gate_by_hand(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> list[float]:
    """sigmoid(W2 relu(W1 avg) + W2 relu(W1 max)) for one image, as plain Python."""
    c = x.shape[0]
    avg = [float(x[k].mean()) for k in range(c)]
    mx = [float(x[k].max()) for k in range(c)]

    def mlp(v: list[float]) -> list[float]:
        hidden = [
            max(0.0, sum(float(w1[j, k]) * v[k] for k in range(c))) for j in range(w1.shape[0])
        ]
        return [sum(float(w2[k, j]) * hidden[j] for j in range(len(hidden))) for k in range(c)]

    a, m = mlp(avg), mlp(mx)
    return [_sigmoid(a[k] + m[k]) for k in range(c)]


def _spatial_gate_by_hand(x: torch.Tensor, kernel: torch.Tensor) -> list[list[float]]:
    """sigmoid(conv7x7([mean_c; max_c])) with zero padding, for one image, as plain Python."""
    _, h, w = x.shape
    k = kernel.shape[-1]
    pad = k // 2
    maps = [x.mean(dim=0), x.amax(dim=0)]
    gate = []
    for i in range(h):
        row = []
        for j in range(w):
            s = 0.0
            for m in range(2):
                for di in range(k):
                    for dj in range(k):
                        ii, jj = i + di - pad, j + dj - pad
                        if 0 <= ii < h and 0 <= jj < w:
                            s += float(kernel[m, di, dj]) * float(maps[m][ii, jj])
            row.append(_sigmoid(s))
        gate.append(row)
    return gate


def test_channel_attention_formula(gen: torch.Generator) -> None:
    module = ChannelAttention(4, reduction=2, min_hidden=1)
    w1 = torch.randn(2, 4, generator=gen)
    w2 = torch.randn(4, 2, generator=gen)
    with torch.no_grad():
        module.mlp[0].weight.copy_(w1[:, :, None, None])
        module.mlp[2].weight.copy_(w2[:, :, None, None])
    x = torch.randn(1, 4, 3, 5, generator=gen)
    gate = torch.tensor(_channel_gate_by_hand(x[0], w1, w2))
    torch.testing.assert_close(module(x)[0], x[0] * gate[:, None, None])


def test_channel_attention_hidden_width() -> None:
    assert ChannelAttention(512).mlp[0].out_channels == 32
    assert ChannelAttention(32).mlp[0].out_channels == 8


def test_spatial_attention_formula(gen: torch.Generator) -> None:
    module = SpatialAttention(7)
    kernel = torch.randn(2, 7, 7, generator=gen) * 0.3
    with torch.no_grad():
        module.conv.weight.copy_(kernel[None])
    x = torch.randn(1, 3, 4, 5, generator=gen)
    gate = torch.tensor(_spatial_gate_by_hand(x[0], kernel))
    torch.testing.assert_close(module(x)[0], x[0] * gate[None])


def test_cbam_is_channel_then_spatial(gen: torch.Generator) -> None:
    module = CBAM(4, reduction=2, min_hidden=1)
    w1 = torch.randn(2, 4, generator=gen)
    w2 = torch.randn(4, 2, generator=gen)
    kernel = torch.randn(2, 7, 7, generator=gen) * 0.3
    with torch.no_grad():
        module.channel.mlp[0].weight.copy_(w1[:, :, None, None])
        module.channel.mlp[2].weight.copy_(w2[:, :, None, None])
        module.spatial.conv.weight.copy_(kernel[None])
    x = torch.randn(2, 4, 3, 3, generator=gen)
    out = module(x)
    for b in range(2):
        refined = x[b] * torch.tensor(_channel_gate_by_hand(x[b], w1, w2))[:, None, None]
        expected = refined * torch.tensor(_spatial_gate_by_hand(refined, kernel))[None]
        torch.testing.assert_close(out[b], expected)


def test_non_local_formula(gen: torch.Generator) -> None:
    c, ci, h, w = 4, 2, 2, 3
    module = NonLocalBlock(c)
    params = {
        name: (torch.randn(ci, c, generator=gen), torch.randn(ci, generator=gen))
        for name in ("theta", "phi", "g")
    }
    w_out, b_out = torch.randn(c, ci, generator=gen), torch.randn(c, generator=gen)
    with torch.no_grad():
        for name, (weight, bias) in params.items():
            getattr(module, name).weight.copy_(weight[:, :, None, None])
            getattr(module, name).bias.copy_(bias)
        module.out.weight.copy_(w_out[:, :, None, None])
        module.out.bias.copy_(b_out)
    x = torch.randn(1, c, h, w, generator=gen)
    positions = [x[0, :, i, j] for i in range(h) for j in range(w)]  # row-major

    def embed(name: str, v: torch.Tensor) -> torch.Tensor:
        weight, bias = params[name]
        return weight @ v + bias

    expected = torch.empty(c, h * w)
    for i, xi in enumerate(positions):
        logits = [float(embed("theta", xi) @ embed("phi", xj)) for xj in positions]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        total = sum(weights)
        y = sum(wt / total * embed("g", xj) for wt, xj in zip(weights, positions, strict=True))
        expected[:, i] = xi + w_out @ y + b_out
    torch.testing.assert_close(module(x)[0], expected.reshape(c, h, w))


def test_non_local_is_identity_at_init(gen: torch.Generator) -> None:
    module = NonLocalBlock(8)
    x = torch.randn(2, 8, 3, 3, generator=gen)
    torch.testing.assert_close(module(x), x)
    assert module.theta.out_channels == 4
