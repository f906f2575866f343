"""Typed training configuration and named presets.

:class:`TrainConfig` holds everything a training run needs besides the data: the model
(size and the small-object switches), the schedule (YOLOX's warm-up + cosine, no-aug
tail), the online augmentation (:class:`AugmentConfig`) and the runtime (device, AMP,
workers, seed). Presets are partial overrides applied to the defaults by
:func:`make_config`; the CLI applies the user's options on top.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from curate.core.errors import UsageError
from train_bridge.models import ModelConfig

Device = Literal["auto", "cpu", "cuda"]
IoUKind = Literal["iou", "giou", "ciou"]
ModelSize = Literal["nano", "tiny", "s", "m", "l", "x"]


@dataclass(frozen=True)
class AugmentConfig:
    """Online augmentation of the training split (probabilities are per sample).

    mosaic_scale/affine_scale are zoom ranges of the random affine after Mosaic (on the
    ``2·imgsz`` canvas, so 1.0 halves objects) and on single images; translate is the
    largest shift as a fraction of ``imgsz``. Boxes clipped to under ``min_visible`` of
    their area or ``min_area`` px² are dropped.
    """

    mosaic_prob: float = 1.0
    mixup_prob: float = 1.0
    hsv_prob: float = 1.0
    flip_prob: float = 0.5
    mosaic_scale: tuple[float, float] = (0.1, 2.0)
    mixup_scale: tuple[float, float] = (0.5, 1.5)
    affine_scale: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.1
    min_area: float = 4.0
    min_visible: float = 0.25

    def __post_init__(self) -> None:
        for name in ("mosaic_prob", "mixup_prob", "hsv_prob", "flip_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise UsageError(f"{name} {p}: a probability must be within 0..1")
        for name in ("mosaic_scale", "mixup_scale", "affine_scale"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise UsageError(f"{name} {(lo, hi)}: need 0 < low <= high")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Learning rate is YOLOX's: ``lr_per_64`` per 64 images, scaled by batch.

    no_aug_epochs: the last epochs run without Mosaic/MixUp (colour and flip stay) and
    with the L1 box loss on (all epochs when it is not below ``epochs``). multiscale: (min, max) input size, multiples of 32, drawn
    every ``multiscale_every`` iterations (None: always ``imgsz``). eval_every: epochs
    between validations (the no-aug epochs are always validated).
    """

    model: ModelSize = "s"
    cbam: bool = False
    mff: bool = False
    iou: IoUKind = "iou"
    p2: bool = False
    epochs: int = 100
    imgsz: int = 640
    batch: int = 16
    device: Device = "auto"
    lr_per_64: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 5.0
    warmup_lr_start: float = 0.0
    min_lr_ratio: float = 0.05
    no_aug_epochs: int = 15
    multiscale: tuple[int, int] | None = None
    multiscale_every: int = 10
    ema: bool = True
    ema_decay: float = 0.9998
    ema_tau: float = 2000.0
    seed: int = 0
    workers: int = 4
    amp: bool = True
    cache: bool = False
    eval_every: int = 5
    conf_thr: float = 0.001
    nms_thr: float = 0.65
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.imgsz % 32:
            raise UsageError(f"imgsz {self.imgsz}: must be a multiple of 32 (the largest stride)")
        if self.epochs < 1 or self.batch < 1:
            raise UsageError(f"epochs {self.epochs}, batch {self.batch}: both must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"device {self.device!r}: use auto, cpu or cuda")
        if self.multiscale is not None:
            lo, hi = self.multiscale
            if lo % 32 or hi % 32 or not 32 <= lo <= hi:
                raise UsageError(
                    f"multiscale {self.multiscale}: need multiples of 32 with low <= high"
                )
        if self.no_aug_epochs < 0 or self.warmup_epochs < 0:
            raise UsageError(
                f"no_aug_epochs {self.no_aug_epochs}, warmup_epochs {self.warmup_epochs}: "
                "must be >= 0"
            )
        # Builds (and so checks) the model part.
        self.model_config(1)

    @property
    def lr(self) -> float:
        """Peak learning rate for this batch size."""
        return self.lr_per_64 * self.batch / 64

    def model_config(self, num_classes: int) -> ModelConfig:
        """The detector this run trains, for ``num_classes`` classes."""
        return ModelConfig(
            size=self.model,
            num_classes=num_classes,
            cbam=self.cbam,
            mff=self.mff,
            p2=self.p2,
            iou_loss=self.iou,
        )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``; ``augment`` may be a dict of AugmentConfig fields."""
        aug = changes.pop("augment", None)
        if isinstance(aug, dict):
            changes["augment"] = dataclasses.replace(self.augment, **aug)
        elif aug is not None:
            changes["augment"] = aug
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are errors."""
        data = dict(data)
        aug = dict(data.pop("augment", {}))
        for k in ("mosaic_scale", "mixup_scale", "affine_scale"):
            if k in aug:
                aug[k] = tuple(aug[k])
        if data.get("multiscale") is not None:
            data["multiscale"] = tuple(data["multiscale"])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown training options {unknown}; known: {sorted(known)}")
        return cls(**data, augment=AugmentConfig(**aug))


#: Named presets: overrides of the TrainConfig defaults (``augment`` as a dict of overrides).
PRESETS: dict[str, dict[str, Any]] = {
    # YOLOX-s as published (300 epochs on COCO; fewer suit small curated sets).
    "yolox-s": {},
    # Learns 8-24 px synthetic shapes in about two minutes on 2 CPU cores (test AP50
    # 0.87-0.90 after 24 epochs of 400 images): nano at 160 px, small batches with a high
    # learning rate (0.025 at batch 8: more updates for the same compute), no Mosaic/MixUp
    # (they shrink objects that are already small), mild zoom/shift.
    "cpu-smoke": {
        "model": "nano",
        "imgsz": 160,
        "epochs": 24,
        "batch": 8,
        "device": "cpu",
        "lr_per_64": 0.2,
        "warmup_epochs": 2.0,
        "no_aug_epochs": 4,
        "workers": 0,
        "amp": False,
        "cache": True,
        "ema_tau": 200.0,
        "eval_every": 100,
        "augment": {
            "mosaic_prob": 0.0,
            "mixup_prob": 0.0,
            "affine_scale": (0.8, 1.25),
            "translate": 0.1,
        },
    },
}


def make_config(preset: str | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the named preset, then ``overrides`` (None values are ignored)."""
    cfg = TrainConfig()
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
        cfg = cfg.replace(**dict(PRESETS[preset]))
    changes = {k: v for k, v in overrides.items() if v is not None}
    return cfg.replace(**changes) if changes else cfg
