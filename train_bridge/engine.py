"""The training loop: YOLOX recipe (SGD + warm-up/cosine, EMA, no-aug tail with L1), checkpoints, logs.

A run folder holds ``last.pt`` (everything needed to resume), ``best.pt`` (best
validation AP50; the last weights when there is no validation split), ``results.csv``
(one row per epoch), ``loss.png``/``map.png`` and ``manifest.json``. Checkpoints and the
CSV are replaced atomically after every epoch, so an interrupted run resumes from its
last finished epoch (``resume=True``).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from curate.core.dataset import Category, ImageItem
from curate.core.errors import UsageError
from curate.core.output import Manifest, check_output
from curate.core.progress import NullProgress, Progress
from train_bridge import checkpoint as ckpt
from train_bridge.config import TrainConfig
from train_bridge.data import ClassMap, DetectionDataset, collate
from train_bridge.device import (
    autocast,
    grad_scaler,
    prepare_images,
    prepare_model,
    resolve_device,
    use_amp,
)
from train_bridge.evaluate import evaluate
from train_bridge.models import build_loss, build_model
from train_bridge.plots import plot_losses, plot_metrics
from train_bridge.predict import Predictor

LOG_FIELDS = (
    "epoch",
    "lr",
    "loss",
    "iou",
    "obj",
    "cls",
    "l1",
    "num_fg",
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "seconds",
)


# -- optimiser and schedule -------------------------------------------------------------
def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv/linear weights only; BatchNorm parameters and biases get none."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if name == "weight" and isinstance(module, (nn.Conv2d, nn.Linear)):
                decay.append(p)
            else:
                no_decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with Nesterov momentum, YOLOX's lr per 64 images scaled by the batch size."""
    return torch.optim.SGD(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum, nesterov=True
    )


def lr_at(
    it: int,
    total: int,
    *,
    base_lr: float,
    warmup: int,
    no_aug: int,
    warmup_start: float = 0.0,
    min_ratio: float = 0.05,
) -> float:
    """YOLOX ``yoloxwarmcos``: quadratic warm-up, cosine to ``min_ratio·base_lr``, flat no-aug tail."""
    min_lr = base_lr * min_ratio
    if it < warmup:
        return (base_lr - warmup_start) * (it / max(warmup, 1)) ** 2 + warmup_start
    if it >= total - no_aug:
        return min_lr
    span = max(total - warmup - no_aug, 1)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * (it - warmup) / span))


class ModelEMA:
    """Exponential moving average of weights and buffers, decay ``d·(1 − exp(−updates/tau))``."""

    def __init__(self, model: nn.Module, decay: float = 0.9998, tau: float = 2000.0) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        current = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(current[k].detach(), alpha=1 - d)
            else:
                v.copy_(current[k])


# -- batches ------------------------------------------------------------------------------
def resize_batch(
    images: torch.Tensor, targets: list[torch.Tensor], size: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Multi-scale step: bilinear-resize a square batch to ``size`` and scale the boxes along."""
    current = images.shape[-1]
    if size == current:
        return images, targets
    r = size / current
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    scaled = []
    for t in targets:
        t = t.clone()
        t[:, 1:] *= r
        scaled.append(t)
    return images, scaled


def pick_size(rng: np.random.Generator, low: int, high: int) -> int:
    """A random multiple of 32 within ``[low, high]``."""
    return int(rng.integers(low // 32, high // 32 + 1)) * 32


# -- the run folder -----------------------------------------------------------------------
def prepare_run_dir(
    out: Path, *, overwrite: bool = False, resume: bool = False, inputs: Sequence[Path] = ()
) -> Path:
    """Check ``out`` before any work: resumable with ``resume``, empty unless ``overwrite``."""
    if resume:
        if not (out / "last.pt").is_file():
            raise UsageError(f"cannot resume: '{out / 'last.pt'}' does not exist")
        return out
    target = check_output(out, overwrite=overwrite, inputs=inputs)
    if target.exists() and any(target.iterdir()):
        # --overwrite: the old run is moved aside, not deleted, until the new one finishes
        # (finish_run_dir). If a backup is already there, an earlier replacement never
        # finished: that backup is the last complete run, and the unfinished one goes.
        backup = previous_run_dir(target)
        if backup.exists():
            shutil.rmtree(target)
        else:
            target.rename(backup)
    target.mkdir(parents=True, exist_ok=True)
    return target


def previous_run_dir(out: Path) -> Path:
    """Where ``--overwrite`` keeps the run it replaces until the new run has finished."""
    return out.with_name(f".{out.name}.previous")


def finish_run_dir(out: Path) -> None:
    """The run in ``out`` finished: remove the run it replaced, if any."""
    backup = previous_run_dir(out)
    if backup.is_dir():
        shutil.rmtree(backup)


def write_csv(path: Path, history: Sequence[dict[str, Any]]) -> None:
    """One row per epoch (blank where a value was not measured), replaced atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _csv_value(row.get(k)) for k in LOG_FIELDS})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


# -- training -----------------------------------------------------------------------------
@dataclass
class TrainResult:
    """Where a run's outputs are and how it ended."""

    out_dir: Path
    best: Path
    last: Path
    best_ap50: float | None
    epochs: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


EpochLog = Callable[[dict[str, Any]], None]


def train(
    cfg: TrainConfig,
    train_images: Sequence[ImageItem],
    val_images: Sequence[ImageItem] | None,
    categories: Sequence[Category],
    out_dir: Path,
    *,
    progress: Progress | None = None,
    resume: bool = False,
    on_epoch: EpochLog | None = None,
    manifest: Manifest | None = None,
) -> TrainResult:
    """Train a detector on ``train_images``; validate on ``val_images`` (AP50 picks ``best.pt``).

    ``out_dir`` must exist (see :func:`prepare_run_dir`). With ``resume`` the run continues
    from ``out_dir/last.pt`` with the configuration stored there. ``on_epoch`` receives
    each epoch's log row (what ``results.csv`` holds).
    """
    progress = progress or NullProgress()
    out_dir = Path(out_dir)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    state: dict[str, Any] | None = None
    if resume:
        state = ckpt.read(last_path)
        cfg = TrainConfig.from_dict(state["train_config"])
    if not train_images:
        raise UsageError("the training split is empty: nothing to learn from")
    classes = ClassMap.from_categories(categories)
    device = resolve_device(cfg.device)
    amp = use_amp(device, cfg.amp)
    torch.manual_seed(cfg.seed)

    model_cfg = cfg.model_config(len(classes))
    model = prepare_model(build_model(model_cfg), device)
    loss_fn = build_loss(model_cfg)
    optimizer = make_optimizer(model, cfg)
    scaler = grad_scaler(device, amp)
    ema = ModelEMA(model, cfg.ema_decay, cfg.ema_tau) if cfg.ema else None
    history: list[dict[str, Any]] = []
    best_ap50: float | None = None
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["raw_model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.module.load_state_dict(state["model"])
            ema.updates = int(state["ema_updates"])
        history = list(state["history"])
        best_ap50 = state.get("best_ap50")
        start_epoch = int(state["epoch"]) + 1

    train_ds = DetectionDataset(
        train_images, classes, cfg.imgsz, augment=cfg.augment, seed=cfg.seed, cache=cfg.cache
    )
    train_ds.fill_cache(progress)
    batches_per_epoch = len(train_ds) // cfg.batch if len(train_ds) >= cfg.batch else 1
    total_iters = batches_per_epoch * cfg.epochs
    warmup_iters = round(batches_per_epoch * cfg.warmup_epochs)
    no_aug_iters = batches_per_epoch * min(cfg.no_aug_epochs, cfg.epochs)
    predictor = Predictor(
        ema.module if ema is not None else model,
        cfg.imgsz,
        device,
        conf_thr=cfg.conf_thr,
        nms_thr=cfg.nms_thr,
        batch=cfg.batch,
        amp=amp,
    )
    category_of = dict(enumerate(classes.ids))
    started = time.perf_counter()

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        no_aug = epoch >= cfg.epochs - cfg.no_aug_epochs
        train_ds.set_epoch(epoch)
        train_ds.mix = not no_aug
        loss_fn.use_l1 = no_aug
        loader = DataLoader(
            train_ds,
            batch_size=cfg.batch,
            shuffle=True,
            drop_last=len(train_ds) >= cfg.batch,
            num_workers=cfg.workers,
            collate_fn=collate,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed * 10_007 + epoch),
        )
        size_rng = np.random.default_rng([cfg.seed, epoch, 1])
        size = cfg.imgsz
        model.train()
        sums: dict[str, float] = {}
        n = 0
        for i, (images, targets, _) in enumerate(
            progress.track(loader, total=len(loader), description=f"epoch {epoch + 1}/{cfg.epochs}")
        ):
            it = epoch * batches_per_epoch + i
            lr = lr_at(
                it,
                total_iters,
                base_lr=cfg.lr,
                warmup=warmup_iters,
                no_aug=no_aug_iters,
                warmup_start=cfg.warmup_lr_start,
                min_ratio=cfg.min_lr_ratio,
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = prepare_images(images, device)
            if cfg.multiscale is not None and not no_aug:
                if i % cfg.multiscale_every == 0:
                    size = pick_size(size_rng, *cfg.multiscale)
                x, targets = resize_batch(x, targets, size)
            targets = [t.to(device, non_blocking=True) for t in targets]
            with autocast(device, amp):
                outputs = model(x)
                losses = loss_fn(outputs, targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model)
            for k in ("loss", "iou", "obj", "cls", "l1", "num_fg"):
                sums[k] = sums.get(k, 0.0) + float(losses[k].detach())
            n += 1
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        row.update({k: v / max(n, 1) for k, v in sums.items()})
        last_epoch = epoch == cfg.epochs - 1
        if val_images and (no_aug or last_epoch or (epoch + 1) % cfg.eval_every == 0):
            result, _ = evaluate(predictor, val_images, categories, category_of)
            row.update({k: result[k] for k in ("AP", "AP50", "AP75", "AP_small")})
        row["seconds"] = time.perf_counter() - t0
        history.append(row)

        pred_model = ema.module if ema is not None else model
        common = {
            "model_config": ckpt.model_config_dict(model_cfg),
            "classes": classes.to_dict(),
            "imgsz": cfg.imgsz,
            "train_config": cfg.to_dict(),
            "epoch": epoch,
            "history": history,
        }
        improved = "AP50" in row and (best_ap50 is None or row["AP50"] > best_ap50)
        if improved:
            best_ap50 = row["AP50"]
        ckpt.save(
            last_path,
            {
                **common,
                "model": pred_model.state_dict(),
                "raw_model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "ema_updates": ema.updates if ema is not None else 0,
                "best_ap50": best_ap50,
            },
        )
        if improved or (not val_images and last_epoch):
            ckpt.save(
                best_path, {**common, "model": pred_model.state_dict(), "best_ap50": best_ap50}
            )
        write_csv(out_dir / "results.csv", history)
        if on_epoch is not None:
            on_epoch(row)

    if not best_path.exists():
        # Resumed after the last epoch, or validation never ran: the last weights are the best.
        shutil.copyfile(last_path, best_path)
    plot_losses(history, out_dir / "loss.png")
    if any("AP50" in h for h in history):
        plot_metrics(history, out_dir / "map.png")
    seconds = time.perf_counter() - started
    if manifest is not None:
        manifest.options.update(cfg.to_dict())
        manifest.counts.update(
            {
                "train_images": len(train_images),
                "val_images": len(val_images or ()),
                "classes": len(classes),
                "epochs": cfg.epochs,
            }
        )
        manifest.extra["best_ap50"] = best_ap50
        manifest.extra["device"] = str(device)
        manifest.extra["amp"] = amp
        manifest.extra["train_seconds"] = round(seconds, 1)
        manifest.outputs = sorted(
            p.name for p in out_dir.iterdir() if p.is_file() and not p.name.startswith(".")
        )
        manifest.write(out_dir)
    finish_run_dir(out_dir)
    return TrainResult(out_dir, best_path, last_path, best_ap50, cfg.epochs, seconds, history)
