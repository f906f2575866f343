"""PNG plots of a training run and of a comparison (matplotlib, no pyplot global state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

LOSS_KEYS = ("loss", "iou", "obj", "cls", "l1")
MAP_KEYS = ("AP", "AP50", "AP75", "AP_small")


def _save(fig: Figure, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    tmp.replace(path)
    return path


def plot_losses(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Training losses per epoch."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    for key in LOSS_KEYS:
        values = [h.get(key) for h in history]
        if any(v not in (None, "") for v in values):
            ax.plot(epochs, [float("nan") if v in (None, "") else v for v in values], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_metrics(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Validation AP metrics per evaluated epoch."""
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    rows = [h for h in history if h.get("AP50") not in (None, "")]
    for key in MAP_KEYS:
        ax.plot([h["epoch"] for h in rows], [h[key] for h in rows], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("COCO metric (val)")
    ax.set_ylim(0, 1)
    ax.set_title("validation mAP")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_comparison(
    rows: Sequence[dict[str, Any]], path: Path, keys: Sequence[str] = MAP_KEYS
) -> Path:
    """Grouped bars: one group per metric, one bar per run (``row['run']``)."""
    fig = Figure(figsize=(max(6, 1.5 * len(keys) * max(1, len(rows)) / 2), 4))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs = [k + i * width for k in range(len(keys))]
        ax.bar(xs, [max(float(row.get(k, 0.0)), 0.0) for k in keys], width, label=row["run"])
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))], list(keys))
    ax.set_ylabel("COCO metric on the test split")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, path)
