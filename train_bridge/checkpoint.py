"""Checkpoint files: what a trained detector needs to be rebuilt, written atomically.

A checkpoint is a plain dict saved with ``torch.save`` and read with
``torch.load(weights_only=True)`` (tensors, numbers, strings, lists and dicts only):

- ``format``/``version``: ``"sodkit-yolox"``, 1;
- ``model_config``: the :class:`~train_bridge.models.ModelConfig` fields;
- ``classes``: :meth:`ClassMap.to_dict`; ``imgsz``: the training input size;
- ``model``: weights to predict with (the EMA weights when EMA is on);
- ``train_config``: :meth:`TrainConfig.to_dict`; ``epoch`` (last finished, 0-based);
- for resuming: ``raw_model``, ``optimizer``, ``scaler``, ``ema_updates``, ``best_ap50``,
  ``history``.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from curate.core.errors import UsageError
from train_bridge.data import ClassMap
from train_bridge.models import YOLOX, ModelConfig, build_model

FORMAT = "sodkit-yolox"
VERSION = 1


@dataclass
class LoadedModel:
    """A detector rebuilt from a checkpoint, in eval mode."""

    model: YOLOX
    model_config: ModelConfig
    classes: ClassMap
    imgsz: int
    meta: dict[str, Any]


def save(path: Path, data: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        torch.save({"format": FORMAT, "version": VERSION, **data}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint dict of ``path``; a clear error for missing or foreign files."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"weights '{p}' do not exist; pass a .pt written by 'train_bridge train'")
    try:
        data = torch.load(p, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UsageError(f"weights '{p}' cannot be read as a checkpoint ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(
            f"weights '{p}' are not a sodkit YOLOX checkpoint (format {FORMAT!r} expected); "
            "only checkpoints written by 'train_bridge train' can be loaded"
        )
    return data


def load_model(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the detector of checkpoint ``path`` with its prediction weights, in eval mode."""
    data = read(path, device)
    cfg = ModelConfig(**data["model_config"])
    model = build_model(cfg)
    model.load_state_dict(data["model"])
    model.to(device).eval()
    meta = {k: v for k, v in data.items() if k not in ("model", "raw_model", "optimizer", "scaler")}
    return LoadedModel(model, cfg, ClassMap.from_dict(data["classes"]), int(data["imgsz"]), meta)


def model_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
