"""CSPDarknet backbone of YOLOX with optional CBAM after every stage from dark2 to dark5."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from train_bridge.models.attention import CBAM
from train_bridge.models.blocks import CSPLayer, Focus, SPPBottleneck, make_conv

STAGES = ("stem", "dark2", "dark3", "dark4", "dark5")
STAGE_STRIDES = {"stem": 2, "dark2": 4, "dark3": 8, "dark4": 16, "dark5": 32}


class CSPDarknet(nn.Module):
    """CSPDarknet-53 scaled by `depth` (bottleneck count) and `width` (channel count).

    Stage channels are w·(64, 128, 256, 512, 1024) with w = int(64·width) / 64, CSP depths
    are d·(1, 3, 3, 1) with d = max(round(3·depth), 1); dark5 has SPP before its CSP layer
    and no shortcuts. `cbam` appends a CBAM to dark2..dark5 (after the CSP layer).
    """

    def __init__(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        out_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        depthwise: bool = False,
        cbam: bool = False,
    ) -> None:
        super().__init__()
        unknown = [name for name in out_features if name not in STAGES]
        if unknown or not out_features:
            raise ValueError(f"out_features {list(out_features)}: choose from {list(STAGES)}")
        order = [STAGES.index(name) for name in out_features]
        if order != sorted(set(order)):
            raise ValueError(
                f"out_features {list(out_features)}: list each stage once, fine to coarse"
            )
        self.out_features = tuple(out_features)
        base = int(width * 64)
        n = max(round(depth * 3), 1)
        self.channels = {
            "stem": base,
            "dark2": base * 2,
            "dark3": base * 4,
            "dark4": base * 8,
            "dark5": base * 16,
        }

        def stage(c_in: int, c_out: int, blocks: int, spp: bool = False) -> nn.Sequential:
            layers: list[nn.Module] = [make_conv(c_in, c_out, 3, 2, depthwise)]
            if spp:
                layers.append(SPPBottleneck(c_out, c_out))
            layers.append(CSPLayer(c_out, c_out, blocks, shortcut=not spp, depthwise=depthwise))
            if cbam:
                layers.append(CBAM(c_out))
            return nn.Sequential(*layers)

        self.stem = Focus(3, base, kernel_size=3)
        self.dark2 = stage(base, base * 2, n)
        self.dark3 = stage(base * 2, base * 4, n * 3)
        self.dark4 = stage(base * 4, base * 8, n * 3)
        self.dark5 = stage(base * 8, base * 16, n, spp=True)

    @property
    def out_channels(self) -> list[int]:
        """Channel count of every output, in `out_features` order."""
        return [self.channels[name] for name in self.out_features]

    @property
    def out_strides(self) -> list[int]:
        """Stride of every output relative to the input, in `out_features` order."""
        return [STAGE_STRIDES[name] for name in self.out_features]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W), H and W multiples of 32 → one (B, C_i, H / s_i, W / s_i) per output."""
        outputs = []
        for name in STAGES[: STAGES.index(self.out_features[-1]) + 1]:
            x = getattr(self, name)(x)
            if name in self.out_features:
                outputs.append(x)
        return outputs
