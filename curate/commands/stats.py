"""``curate stats`` and ``curate anchors``: small-object statistics, anchors, pictures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from curate.anchors import AnchorOptions, AnchorResult, anchors_for_dataset
from curate.commands.common import (
    DataArg,
    MaxPixelsOpt,
    OnErrorOpt,
    OverwriteOpt,
    QuietOpt,
    cli_errors,
    console,
    print_note,
    print_skipped,
    read_options,
)
from curate.core.dataset import Dataset
from curate.core.errors import OnError
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.output import (
    Manifest,
    atomic_output,
    check_file_output,
    check_output,
    write_json_atomic,
)
from curate.io import load_dataset, parse_spec
from curate.report import class_tables, make_plots, quality_rows, write_report
from curate.stats import DatasetStats, StatsOptions, compute_stats

ImgszOpt = Annotated[
    int, typer.Option("--imgsz", help="Training input size: images letterboxed to this side.")
]
JsonOpt = Annotated[
    Path | None,
    typer.Option("--json", help="Also write the results to this JSON file."),
]
ReportOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Folder for stats.json, plots/*.png and report.html (must be empty unless --overwrite).",
    ),
]
SeedDefaultOpt = Annotated[
    int, typer.Option("--seed", help="Random seed (results are deterministic for a seed).")
]


def register(app: typer.Typer) -> None:
    app.command("stats")(stats_cmd)
    app.command("anchors")(anchors_cmd)


def _read(data: str, on_error: OnError, max_pixels: int, quiet: bool) -> tuple[Dataset, Any]:
    """Annotations only: image files are not opened unless a size is missing."""
    opts = read_options(on_error, check_images=False, max_pixels=max_pixels, quiet=quiet)
    ds = load_dataset(data, opts)
    console.print(
        f"read {ds.info.get('layout')} dataset: {len(ds)} images, {ds.num_annotations} boxes"
    )
    print_skipped(opts.policy)
    return ds, opts


def _check_json(path: Path | None, data_path: Path, overwrite: bool) -> None:
    if path is not None:
        check_file_output(path, overwrite=overwrite, inputs=[data_path], option="--json")


def _table(title: str, head: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*(_cell(v) for v in r))
    return t


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _print_stats(st: DatasetStats) -> None:
    opi = st.objects_per_image
    console.print(
        _table(
            "Overview",
            ["", "value"],
            [
                ["images", st.num_images],
                ["boxes", st.num_boxes],
                ["negatives", st.num_negatives],
                ["unlabelled", st.num_unlabeled],
                [
                    "objects/image mean, median, max",
                    f"{opi['mean']:.2f}, {opi['median']:g}, {opi['max']}",
                ],
                ["distinct image sizes", st.image_sizes.get("distinct", 0)],
            ],
        )
    )
    for title, head, rows in class_tables(st):
        console.print(_table(title, head, rows))
    console.print(_table("Label quality", ["issue", "count", "where"], quality_rows(st)))


def _print_anchors(res: AnchorResult) -> None:
    o, d = res.ours, res.default
    console.print(
        _table(
            f"Anchors at imgsz {res.options.imgsz} ({res.num_boxes} boxes, "
            f"{res.num_fit_boxes} used to fit)",
            ["", "fitted", "YOLOv5 COCO default"],
            [
                ["fitness", o.fitness, d.fitness],
                ["best possible recall", o.bpr, d.bpr],
                ["anchors above threshold / box", o.anchors_above_thr, d.anchors_above_thr],
                ["mean best IoU", o.mean_best_iou, d.mean_best_iou],
            ],
        )
    )
    print(res.yaml_block())  # plain print: ready to paste, no Rich markup or wrapping
    print(res.darknet_line())
    print("# " + "; ".join(res.darknet_masks()))
    console.print(
        _table(
            "Anchor-free: share of boxes per stride (FCOS size ranges; under one cell)",
            ["stride", "P2-P5 head", "P3-P5 head", "sqrt(w*h) < stride"],
            [
                [
                    s.stride,
                    f"{s.assigned_p2_p5:.1%}",
                    "-" if s.assigned_p3_p5 is None else f"{s.assigned_p3_p5:.1%}",
                    f"{s.below_cell:.1%}",
                ]
                for s in res.strides
            ],
        )
    )
    for line in res.recommendations:
        console.print(f"[bold]→[/] {line}", highlight=False)


@cli_errors
def stats_cmd(
    data: DataArg,
    imgsz: ImgszOpt = 640,
    out: ReportOutOpt = None,
    json_file: JsonOpt = None,
    overwrite: OverwriteOpt = False,
    on_error: OnErrorOpt = OnError.fail,
    seed: SeedDefaultOpt = 0,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Small-object statistics: sizes (native and at --imgsz), relative sizes, heatmaps, label quality."""
    data_path = parse_spec(data)[1]
    if out is not None:
        check_output(out, overwrite=overwrite, inputs=[data_path])
    _check_json(json_file, data_path, overwrite)
    ds, opts = _read(data, on_error, max_pixels, quiet)
    st = compute_stats(ds, StatsOptions(imgsz=imgsz), skipped=opts.policy.skipped)
    _print_stats(st)
    if json_file is not None:
        write_json_atomic(json_file, st.to_dict())
        console.print(f"wrote [bold]{escape(str(json_file))}[/]")
    if out is None:
        return
    plots = make_plots(st, rng=np.random.default_rng(seed))
    with atomic_output(out, overwrite=overwrite, inputs=[data_path], notify=print_note) as tmp:
        written = write_report(tmp, st, plots, title=f"sodkit stats: {data_path.name}")
        write_json_atomic(tmp / "stats.json", st.to_dict())
        manifest = Manifest(
            "stats",
            inputs=[data],
            options={"imgsz": imgsz, "on_error": on_error.value, "seed": seed},
            counts={"images_read": len(ds), "boxes_read": ds.num_annotations},
            skipped=opts.policy.skipped,
            changed=list(ds.info.get("changed", [])),
            dropped=list(ds.info.get("dropped", [])),
            outputs=["stats.json"] + [str(p.relative_to(tmp)) for p in written],
        )
        manifest.write(tmp)
    console.print(f"wrote report, plots and stats.json to [bold]{escape(str(out))}[/]")


@cli_errors
def anchors_cmd(
    data: DataArg,
    n: Annotated[int, typer.Option("--n", help="Number of anchors (a multiple of --levels).")] = 9,
    levels: Annotated[
        int, typer.Option("--levels", help="Detection levels: 3 (P3-P5) or 4 (adds P2, stride 4).")
    ] = 3,
    imgsz: ImgszOpt = 640,
    json_file: JsonOpt = None,
    overwrite: OverwriteOpt = False,
    seed: SeedDefaultOpt = 0,
    on_error: OnErrorOpt = OnError.fail,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Anchors for YOLO-style detectors (k-means + genetic refinement) and stride advice."""
    options = AnchorOptions(n=n, levels=levels, imgsz=imgsz)
    data_path = parse_spec(data)[1]
    _check_json(json_file, data_path, overwrite)
    ds, opts = _read(data, on_error, max_pixels, quiet)
    res = anchors_for_dataset(ds, options, np.random.default_rng(seed), progress=opts.progress)
    _print_anchors(res)
    if json_file is not None:
        write_json_atomic(json_file, res.to_dict())
        console.print(f"wrote [bold]{escape(str(json_file))}[/]")
