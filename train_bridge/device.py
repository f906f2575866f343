"""Where tensors run: device choice with CPU fallback, AMP and memory-format helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from curate.core.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"device '{name}' asked for but no CUDA GPU is visible to torch "
                f"(torch {torch.__version__}); use --device cpu or --device auto"
            )
        return torch.device(name)
    raise UsageError(f"device '{name}': use auto, cpu or cuda")


def use_amp(device: torch.device, amp: bool) -> bool:
    """Mixed precision runs only on CUDA (CPU autocast in float16 is slow or unsupported)."""
    return amp and device.type == "cuda"


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """``torch.autocast`` in float16 on CUDA when enabled; a no-op otherwise."""
    if enabled and device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            yield
    else:
        yield


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A GradScaler that scales only when AMP runs (disabled scalers pass values through)."""
    return torch.amp.GradScaler("cuda", enabled=enabled and device.type == "cuda")


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``; channels-last on CUDA (faster convs with tensor cores)."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, 3, H, W) uint8 batch → float 0..1 on ``device`` (channels-last on CUDA)."""
    x = images.to(device, non_blocking=device.type == "cuda").float().div_(255.0)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x
