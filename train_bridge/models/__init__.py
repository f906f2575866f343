"""YOLOX detector with switchable small-object improvements (CBAM, MFF, P2 level, CIoU)."""

from train_bridge.models.yolox import YOLOX, ModelConfig, build_loss, build_model

__all__ = ["YOLOX", "ModelConfig", "build_loss", "build_model"]
