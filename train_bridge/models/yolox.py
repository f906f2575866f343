"""YOLOX model assembly, its typed configuration and the builders for model and loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from curate.core.errors import UsageError
from train_bridge.models.backbone import CSPDarknet
from train_bridge.models.head import YOLOXHead
from train_bridge.models.losses import IoUKind, YOLOXLoss
from train_bridge.models.neck import MFF, PAFPN

Size = Literal["nano", "tiny", "s", "m", "l", "x"]

# size → (depth multiplier, width multiplier, depthwise convs), as in the YOLOX model zoo.
SIZES: dict[str, tuple[float, float, bool]] = {
    "nano": (0.33, 0.25, True),
    "tiny": (0.33, 0.375, False),
    "s": (0.33, 0.50, False),
    "m": (0.67, 0.75, False),
    "l": (1.0, 1.0, False),
    "x": (1.33, 1.25, False),
}


@dataclass(frozen=True)
class ModelConfig:
    """What to build: a YOLOX size, the class count and the small-object switches of Meng et al.

    cbam: CBAM after every CSP stage of the backbone (dark2..dark5) and every CSP of the neck.
    mff: Libra-style multi-level fusion with a non-local refine between neck and head.
    p2: a fourth, stride-4 level fed by dark2 (strides 4, 8, 16, 32 instead of 8, 16, 32).
    iou_loss: box regression loss, 'iou', 'giou' or 'ciou'.
    """

    size: Size = "s"
    num_classes: int = 80
    cbam: bool = False
    mff: bool = False
    p2: bool = False
    iou_loss: IoUKind = "iou"

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise UsageError(f"model size {self.size!r}: choose one of {list(SIZES)}")
        if self.num_classes < 1:
            raise UsageError(f"num_classes {self.num_classes}: need at least 1 class")
        if self.iou_loss not in ("iou", "giou", "ciou"):
            raise UsageError(f"iou_loss {self.iou_loss!r}: use 'iou', 'giou' or 'ciou'")

    @property
    def depth(self) -> float:
        """Depth multiplier of the size."""
        return SIZES[self.size][0]

    @property
    def width(self) -> float:
        """Width multiplier of the size."""
        return SIZES[self.size][1]

    @property
    def depthwise(self) -> bool:
        """Whether the size uses depthwise-separable 3×3 convs (nano only)."""
        return SIZES[self.size][2]

    @property
    def in_features(self) -> tuple[str, ...]:
        """Backbone stages fed to the neck, fine to coarse."""
        return ("dark2", "dark3", "dark4", "dark5") if self.p2 else ("dark3", "dark4", "dark5")

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride of every detection level, fine to coarse."""
        return (4, 8, 16, 32) if self.p2 else (8, 16, 32)


class YOLOX(nn.Module):
    """Backbone → neck → optional fusion → head, each passed in as a module.

    In training mode `forward` returns the head's raw per-level maps (B, 5+C, H_i, W_i) for
    the loss; in eval mode decoded (B, A, 5+C) predictions: xyxy pixel boxes (or cxcywh if
    the head was built so), objectness and class probabilities.
    """

    def __init__(
        self,
        backbone: nn.Module,
        neck: nn.Module,
        head: YOLOXHead,
        fusion: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.fusion = fusion
        self.head = head

    @property
    def strides(self) -> tuple[int, ...]:
        """Stride of every detection level, fine to coarse."""
        return self.head.strides

    def forward(self, x: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        """(B, 3, H, W) images, H and W multiples of 32 → raw maps (train) or (B, A, 5+C) (eval)."""
        features = self.neck(self.backbone(x))
        if self.fusion is not None:
            features = self.fusion(features)
        return self.head(features)


def build_model(cfg: ModelConfig) -> YOLOX:
    """Build the YOLOX described by `cfg` with freshly initialised weights."""
    backbone = CSPDarknet(
        cfg.depth, cfg.width, cfg.in_features, depthwise=cfg.depthwise, cbam=cfg.cbam
    )
    channels = backbone.out_channels
    neck = PAFPN(channels, cfg.depth, depthwise=cfg.depthwise, cbam=cfg.cbam)
    fusion = MFF(channels) if cfg.mff else None
    head = YOLOXHead(
        cfg.num_classes,
        channels,
        hidden_channels=int(256 * cfg.width),
        strides=cfg.strides,
        depthwise=cfg.depthwise,
    )
    return YOLOX(backbone, neck, head, fusion)


def build_loss(cfg: ModelConfig) -> YOLOXLoss:
    """Build the training loss matching `cfg` (classes, strides, IoU-loss kind)."""
    return YOLOXLoss(cfg.num_classes, cfg.strides, cfg.iou_loss)
