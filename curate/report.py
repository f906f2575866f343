"""Plots (PNG) and a self-contained HTML report of :class:`~curate.stats.DatasetStats`.

:func:`make_plots` renders each plot to PNG bytes with Matplotlib's Agg canvas (no
pyplot, no global state); :func:`render_html` builds one HTML page with the tables and
the plots embedded as base64 PNGs. Writing files is left to the caller
(:func:`write_report` does it into a folder the caller prepared).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from curate.anchors import AnchorResult
from curate.stats import SIZE_BUCKETS, SIZE_EDGES, ClassStats, DatasetStats

MAX_SCATTER_POINTS = 20_000
"""The w-h scatter draws a random subsample of at most this many boxes."""
MAX_CLASSES_DRAWN = 10
"""Per-class plots show the classes with the most boxes, at most this many."""

PLOT_TITLES = {
    "sizes": "Box side (sqrt of area): native and at the training input",
    "buckets": "Size buckets per class at the training input",
    "scatter": "Box width vs height at the training input",
    "aspect": "Aspect ratio (width / height)",
    "heatmaps": "Where box centres lie (normalised image coordinates)",
    "objects": "Objects per image",
    "balance": "Boxes per class",
}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _top_classes(stats: DatasetStats) -> list[int]:
    order = sorted(range(len(stats.classes)), key=lambda c: -stats.classes[c].boxes)
    return [c for c in order if stats.classes[c].valid_boxes > 0][:MAX_CLASSES_DRAWN]


def _side_bins(side: np.ndarray) -> np.ndarray:
    hi = max(float(np.nanmax(side)) if side.size else 1.0, 128.0)
    return np.geomspace(0.5, hi * 1.05, 60)


def plot_sizes(stats: DatasetStats) -> bytes:
    """Histograms of the box side, native and at the input, with the bucket edges."""
    col = stats.columns
    native = np.sqrt(col.width * col.height)
    inp = np.sqrt(col.input_width * col.input_height)
    inp = inp[np.isfinite(inp)]
    fig = Figure(figsize=(10, 4), layout="constrained")
    bins = _side_bins(np.concatenate([native, inp]))
    for ax, values, label in (
        (fig.add_subplot(1, 2, 1), native, "native"),
        (fig.add_subplot(1, 2, 2), inp, f"at imgsz {stats.options.imgsz}"),
    ):
        ax.hist(values, bins=bins.tolist(), color="#4477aa")
        ax.set_xscale("log")
        for edge in SIZE_EDGES:
            ax.axvline(edge, color="#cc3311", lw=1, ls="--")
            ax.text(
                edge,
                1.0,
                f" {edge}",
                color="#cc3311",
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=8,
            )
        ax.set_xlabel("side = sqrt(w * h), px")
        ax.set_ylabel("boxes")
        ax.set_title(f"{label} ({len(values)} boxes)")
    return _png(fig)


def plot_buckets(stats: DatasetStats) -> bytes:
    """Stacked bars: share of each size bucket at the input, per class and overall."""
    entries: list[ClassStats] = [stats.overall] + [stats.classes[c] for c in _top_classes(stats)]
    fig = Figure(figsize=(10, 0.5 * len(entries) + 1.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    colours = ["#882255", "#cc6677", "#ddcc77", "#88ccee", "#44aa99"]
    y = np.arange(len(entries))
    left = np.zeros(len(entries))
    for k, key in enumerate(SIZE_BUCKETS):
        shares = np.array(
            [e.buckets_input[key] / max(sum(e.buckets_input.values()), 1) for e in entries]
        )
        ax.barh(y, shares, left=left, color=colours[k], label=f"{key} px")
        left += shares
    ax.set_yticks(y, [e.name for e in entries])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of boxes (side at imgsz {stats.options.imgsz})")
    ax.legend(ncols=5, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _png(fig)


def plot_scatter(
    stats: DatasetStats,
    rng: np.random.Generator | None = None,
    anchors: AnchorResult | None = None,
) -> bytes:
    """Width vs height at the input (log-log), a random subsample for large sets."""
    col = stats.columns
    ok = np.isfinite(col.input_width)
    idx = np.flatnonzero(ok)
    if len(idx) > MAX_SCATTER_POINTS:
        gen = rng if rng is not None else np.random.default_rng(0)
        idx = np.sort(gen.choice(idx, MAX_SCATTER_POINTS, replace=False))
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for rank, c in enumerate(_top_classes(stats)):
        sel = idx[col.class_index[idx] == c]
        ax.scatter(
            col.input_width[sel],
            col.input_height[sel],
            s=3,
            alpha=0.4,
            color=f"C{rank}",
            label=stats.classes[c].name,
            linewidths=0,
        )
    if anchors is not None:
        ax.scatter(
            anchors.anchors[:, 0],
            anchors.anchors[:, 1],
            marker="x",
            s=60,
            color="black",
            label="anchors",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"width at imgsz {stats.options.imgsz}, px")
    ax.set_ylabel("height, px")
    shown = len(idx)
    total = int(ok.sum())
    ax.set_title(f"{shown} of {total} boxes" + (" (random subsample)" if shown < total else ""))
    if _top_classes(stats):
        ax.legend(markerscale=4, fontsize=8)
    return _png(fig)


def plot_aspect(stats: DatasetStats) -> bytes:
    """Histogram of log2(width / height) per class."""
    col = stats.columns
    ratio = np.log2(col.width / col.height)
    bins = np.linspace(-4, 4, 49)
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for rank, c in enumerate(_top_classes(stats)):
        v = np.clip(ratio[col.class_index == c], -4, 4)
        ax.hist(
            v,
            bins=bins.tolist(),
            histtype="step",
            color=f"C{rank}",
            label=stats.classes[c].name,
            lw=1.5,
        )
    ticks = np.arange(-4, 5)
    ax.set_xticks(ticks, [f"1:{2**-t}" if t < 0 else f"{2**t}:1" for t in ticks])
    ax.set_xlabel("width : height (log scale, clipped at 16)")
    ax.set_ylabel("boxes")
    if _top_classes(stats):
        ax.legend(fontsize=8)
    return _png(fig)


def plot_heatmaps(stats: DatasetStats) -> bytes:
    """Box-centre heatmaps: all boxes, then each class (log colour scale)."""
    names = ["all"] + [stats.classes[c].name for c in _top_classes(stats)]
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(3.2 * cols, 3.0 * rows), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        hm = stats.heatmaps[name].astype(np.float64)
        vmax = max(float(hm.max()), 1.0)
        im = ax.imshow(
            np.where(hm > 0, hm, np.nan),
            extent=(0, 1, 1, 0),
            cmap="viridis",
            norm=LogNorm(vmin=1, vmax=vmax) if vmax > 1 else None,
            interpolation="nearest",
        )
        ax.set_facecolor("#202020")
        ax.set_title(f"{name} ({int(hm.sum())})", fontsize=9)
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([0, 0.5, 1])
        fig.colorbar(im, ax=ax, shrink=0.8)
    return _png(fig)


def plot_objects(stats: DatasetStats) -> bytes:
    """Bar chart of the objects-per-image histogram."""
    hist: Mapping[str, int] = stats.objects_per_image.get("histogram", {})
    fig = Figure(figsize=(8, 3.5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(list(hist), list(hist.values()), color="#44aa99")
    ax.set_xlabel("objects in the image")
    ax.set_ylabel("images")
    return _png(fig)


def plot_balance(stats: DatasetStats) -> bytes:
    """Horizontal bars of boxes per class."""
    entries = stats.classes
    fig = Figure(figsize=(8, 0.35 * max(len(entries), 1) + 1.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(entries))
    ax.barh(y, [c.boxes for c in entries], color="#4477aa")
    ax.set_yticks(y, [c.name for c in entries])
    ax.invert_yaxis()
    ax.set_xlabel("boxes")
    return _png(fig)


def make_plots(
    stats: DatasetStats,
    *,
    rng: np.random.Generator | None = None,
    anchors: AnchorResult | None = None,
) -> dict[str, bytes]:
    """Every plot as PNG bytes, keyed as in :data:`PLOT_TITLES`."""
    return {
        "sizes": plot_sizes(stats),
        "buckets": plot_buckets(stats),
        "scatter": plot_scatter(stats, rng, anchors),
        "aspect": plot_aspect(stats),
        "heatmaps": plot_heatmaps(stats),
        "objects": plot_objects(stats),
        "balance": plot_balance(stats),
    }


# -- HTML -----------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0 1.5em}
.wide{overflow-x:auto}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>" for r in rows
    )
    return f"<div class='wide'><table><tr>{th}</tr>{body}</table></div>"


def class_tables(stats: DatasetStats) -> list[tuple[str, list[str], list[list[Any]]]]:
    """``(title, header, rows)`` of the per-class tables: counts, sizes, relative sizes.

    Also used by the CLI; the last row of each is the overall entry.
    """
    entries = [*stats.classes, stats.overall]
    imgsz = stats.options.imgsz
    counts = [
        [c.name, c.boxes, _pct(c.share, 1.0), c.images, round(c.boxes_per_image, 2),
         c.negatives, _size(c.image_width, c.image_height)]
        for c in entries
    ]  # fmt: skip
    sizes = []
    for c in entries:
        n_in = max(sum(c.buckets_input.values()) - c.unsized_boxes, 0)
        n_nat = sum(c.buckets_native.values())
        sizes.append(
            [c.name, *(_pct(c.buckets_input[k], n_in) for k in ("<8", "8-16", "16-32")),
             *(_pct(c.coco_input[k], n_in) for k in ("small", "medium", "large")),
             _pct(c.coco_native["small"], n_nat), c.side_native["p50"], c.side_input["p50"]]
        )  # fmt: skip
    relative = [
        [c.name, c.median_area_ratio, c.median_area_ratio_in_range,
         None if c.share_wh_below is None else _pct(c.share_wh_below, 1.0),
         None if c.share_sqrt_ratio_below is None else _pct(c.share_sqrt_ratio_below, 1.0),
         c.aspect["p50"]]
        for c in entries
    ]  # fmt: skip
    return [
        ("Counts", ["class", "boxes", "share", "images", "boxes/img", "negatives",
                    "median image"], counts),
        (f"Sizes at imgsz {imgsz} (side = sqrt(w*h))",
         ["class", "<8", "8-16", "16-32", "small", "medium", "large", "small native",
          "median side", f"median side@{imgsz}"], sizes),
        ("Relative sizes", ["class", "median area ratio", "in 0.08-0.58%", "w,h < 0.1",
                            "sqrt ratio < 0.03", "median w/h"], relative),
    ]  # fmt: skip


def _size(w: float | None, h: float | None) -> str:
    return "–" if w is None or h is None else f"{w:g}x{h:g}"


def quality_rows(stats: DatasetStats) -> list[list[Any]]:
    """``[issue, count, where]`` rows of label problems and reader actions."""
    q = stats.quality
    r = stats.reader
    return [
        ["degenerate boxes (w or h <= 0, non-finite)", q.degenerate, _by(q.by_class["degenerate"])],
        ["out-of-bounds boxes", q.out_of_bounds, _by(q.by_class["out_of_bounds"])],
        [f"boxes under {stats.options.min_side:g} px (w or h)", q.under_min_side,
         _by(q.by_class["under_min_side"])],
        [f"double labels (same class, IoU > {stats.options.double_iou:g})", q.double_labels,
         f"{q.double_label_boxes} boxes"],
        ["boxes of a missing class", q.unknown_class_boxes,
         f"{q.unknown_class_images} images, ids {q.unknown_class_ids}" if q.unknown_class_ids
         else ""],
        ["images without a size", q.unsized_images, ""],
        ["reader: skipped items", r.get("skipped", 0), _by(r.get("skipped_by_kind", {}))],
        ["reader: changed items", r.get("changed", 0), _by(r.get("changed_by_kind", {}))],
        ["reader: dropped items", r.get("dropped", 0), _by(r.get("dropped_by_reason", {}))],
    ]  # fmt: skip


def _by(d: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in d.items())


def render_html(
    stats: DatasetStats,
    plots: Mapping[str, bytes],
    *,
    title: str = "sodkit dataset statistics",
    anchors: AnchorResult | None = None,
) -> str:
    """One self-contained HTML page: summary tables and every plot as a base64 PNG."""
    s = stats
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Overview</h2>",
        _table(
            ["", "value"],
            [
                ["images", s.num_images],
                ["boxes", s.num_boxes],
                ["negatives (no objects)", s.num_negatives],
                ["unlabelled images", s.num_unlabeled],
                ["crowd boxes", s.num_crowd],
                [
                    "objects per image (mean / median / max)",
                    f"{s.objects_per_image.get('mean', 0):.2f} / "
                    f"{s.objects_per_image.get('median', 0):g} / {s.objects_per_image.get('max', 0)}",
                ],
                ["distinct image sizes", s.image_sizes.get("distinct", 0)],
                ["training input size (letterbox)", s.options.imgsz],
            ],
        ),
        "<h2>Classes</h2>",
        "<p>Bucket shares at the training input; <i>side</i> = sqrt(w·h); COCO small "
        "= side &lt; 32, medium &lt; 96. Relative: median box/image area in 0.08–0.58% "
        "(Chen et al.), share with w and h &lt; 0.1 of the image, share with "
        "sqrt(area ratio) &lt; 0.03.</p>",
        *(f"<h3>{html.escape(t)}</h3>" + _table(head, rows) for t, head, rows in class_tables(s)),
        "<h2>Label quality</h2>",
        _table(["issue", "count", "where"], quality_rows(s)),
    ]
    if s.image_sizes.get("most_common"):
        parts += [
            "<h2>Image sizes</h2>",
            _table(
                ["width", "height", "images"],
                [[m["width"], m["height"], m["images"]] for m in s.image_sizes["most_common"]],
            ),
        ]
    if anchors is not None:
        parts += [
            "<h2>Anchors</h2>",
            _table(
                ["", "fitted", "YOLOv5 default"],
                [
                    ["fitness", anchors.ours.fitness, anchors.default.fitness],
                    ["best possible recall", anchors.ours.bpr, anchors.default.bpr],
                    [
                        "anchors above threshold",
                        anchors.ours.anchors_above_thr,
                        anchors.default.anchors_above_thr,
                    ],
                    ["mean best IoU", anchors.ours.mean_best_iou, anchors.default.mean_best_iou],
                ],
            ),
            f"<pre>{html.escape(anchors.yaml_block())}</pre>",
        ]
    parts.append("<h2>Plots</h2>")
    for key, png in plots.items():
        caption = PLOT_TITLES.get(key, key)
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<h3>{html.escape(caption)}</h3>"
            f"<img alt='{html.escape(key)}' src='data:image/png;base64,{data}'>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    folder: Path,
    stats: DatasetStats,
    plots: Mapping[str, bytes],
    *,
    title: str = "sodkit dataset statistics",
) -> list[Path]:
    """Write ``plots/<name>.png`` and ``report.html`` into ``folder``; return the paths."""
    folder = Path(folder)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    written = []
    for key, png in plots.items():
        p = folder / "plots" / f"{key}.png"
        p.write_bytes(png)
        written.append(p)
    page = folder / "report.html"
    page.write_text(render_html(stats, plots, title=title), encoding="utf-8")
    written.append(page)
    return written
