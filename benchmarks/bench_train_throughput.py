"""Training and inference throughput of YOLOX-s: baseline vs CBAM + MFF + CIoU, same run, same device.

Prints images/s for a training step (forward, SimOTA loss, backward, SGD step) and for
inference (forward + NMS), and the ratio of the all-switches model to the baseline.
Uses random images with a few small boxes each, so no data is needed. On CUDA it runs
with AMP and channels-last like ``train_bridge train``; on CPU in float32.

    python benchmarks/bench_train_throughput.py                   # auto device
    python benchmarks/bench_train_throughput.py --device cpu --batch 2 --iters 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from train_bridge.config import make_config
from train_bridge.device import (
    autocast,
    grad_scaler,
    prepare_images,
    prepare_model,
    resolve_device,
    use_amp,
)
from train_bridge.engine import make_optimizer
from train_bridge.models import build_loss, build_model
from train_bridge.models.nms import postprocess

VARIANTS = {
    "baseline": {"cbam": False, "mff": False, "iou": "iou"},
    "cbam+mff+ciou": {"cbam": True, "mff": True, "iou": "ciou"},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_once(step: Callable[[], None], device: torch.device, iters: int) -> float:
    """Seconds per call of ``step`` over ``iters`` calls (synchronised on CUDA)."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def make_steps(
    name: str, args: argparse.Namespace, device: torch.device
) -> tuple[Callable[[], None], Callable[[], None]]:
    """(training step, inference step) of variant ``name`` on a fixed random batch."""
    cfg = make_config(
        model=args.model, imgsz=args.imgsz, batch=args.batch, amp=not args.no_amp, **VARIANTS[name]
    )
    amp = use_amp(device, cfg.amp)
    model_cfg = cfg.model_config(args.classes)
    torch.manual_seed(0)
    model = prepare_model(build_model(model_cfg), device)
    loss_fn = build_loss(model_cfg)
    optimizer = make_optimizer(model, cfg)
    scaler = grad_scaler(device, amp)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, args.imgsz, args.imgsz), generator=gen).to(
        torch.uint8
    )
    targets = []
    for _ in range(args.batch):
        xy = torch.rand(8, 2, generator=gen) * (args.imgsz - 40)
        wh = 8 + torch.rand(8, 2, generator=gen) * 24
        cls = torch.randint(0, args.classes, (8, 1), generator=gen).float()
        targets.append(torch.cat([cls, xy, xy + wh], dim=1).to(device))

    def train_step() -> None:
        model.train()
        x = prepare_images(images, device)
        with autocast(device, amp):
            losses = loss_fn(model(x), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()

    @torch.no_grad()
    def infer_step() -> None:
        model.eval()
        x = prepare_images(images, device)
        with autocast(device, amp):
            preds = model(x)
        postprocess(preds.float(), 0.001, 0.65)

    return train_step, infer_step


def measure(args: argparse.Namespace, device: torch.device) -> dict[str, tuple[float, float]]:
    """Best-of-``rounds`` (train images/s, inference images/s) per variant.

    Variants alternate inside every round, so a slow spell of a shared machine hits all
    of them alike; the best round of each is reported.
    """
    steps = {name: make_steps(name, args, device) for name in VARIANTS}
    for train_step, infer_step in steps.values():
        for _ in range(args.warmup):
            train_step()
            infer_step()
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (train_step, infer_step) in steps.items():
            best[name][0] = min(best[name][0], _time_once(train_step, device, args.iters))
            best[name][1] = min(best[name][1], _time_once(infer_step, device, args.iters))
    return {name: (args.batch / t, args.batch / i) for name, (t, i) in best.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--model", default="s")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--batch", type=int, default=None, help="default: 16 on CUDA, 2 on CPU")
    p.add_argument("--classes", type=int, default=3)
    p.add_argument(
        "--iters", type=int, default=None, help="steps per round (default 10 CUDA, 1 CPU)"
    )
    p.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is reported")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (5 CUDA, 1 CPU)")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    args = p.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.batch = args.batch or (16 if cuda else 2)
    args.iters = args.iters or (10 if cuda else 1)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    if cuda:
        torch.backends.cudnn.benchmark = True
        label = torch.cuda.get_device_name(device)
    else:
        label = f"CPU, {torch.get_num_threads()} threads"
    amp = use_amp(device, not args.no_amp)
    print(
        f"YOLOX-{args.model} at {args.imgsz}px, batch {args.batch}, {label}, "
        f"{'AMP fp16 + channels-last' if amp else 'fp32'}; torch {torch.__version__}"
    )
    rows = measure(args, device)
    base_train, base_infer = rows["baseline"]
    print(f"{'variant':<16}{'train img/s':>14}{'ratio':>8}{'infer img/s':>14}{'ratio':>8}")
    for name, (tr, inf) in rows.items():
        print(f"{name:<16}{tr:>14.1f}{tr / base_train:>8.2f}{inf:>14.1f}{inf / base_infer:>8.2f}")


if __name__ == "__main__":
    main()
