"""``curate tile`` (slice large images into tiles) and ``curate untile`` (tile predictions back)."""

from __future__ import annotations

import json
from contextlib import ExitStack
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from curate.commands.common import (
    DataArg,
    DryRunOpt,
    MaxPixelsOpt,
    OnErrorOpt,
    OutFormat,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    SchedulerOpt,
    SeedOpt,
    WorkersOpt,
    cli_errors,
    console,
    print_note,
    print_skipped,
    read_options,
)
from curate.core.errors import MalformedFileError, OnError, OutputExistsError, UsageError
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.output import Manifest, atomic_output, check_output, write_json_atomic
from curate.core.parallel import make_executor
from curate.io import load_dataset, parse_spec
from curate.merge_preds import MergeConfig, tile_index, untile_predictions
from curate.tiling import TileConfig, TilePlan, plan_tiles, tile_dataset


class Method(str, Enum):
    """How overlapping predictions are merged."""

    nms = "nms"
    greedy_nmm = "greedy_nmm"
    nmm = "nmm"


class Metric(str, Enum):
    """How two boxes are matched."""

    iou = "iou"
    ios = "ios"


def register(app: typer.Typer) -> None:
    app.command("tile")(tile_cmd)
    app.command("untile")(untile_cmd)


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"512,1024"`` → ``(512, 1024)``, with a clear error for anything else."""
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as exc:
        raise UsageError(
            f"--sizes '{text}' must be comma-separated pixel sizes, e.g. 512,1024"
        ) from exc
    if not sizes:
        raise UsageError("--sizes is empty; give e.g. 512,1024")
    return sizes


@cli_errors
def tile_cmd(
    data: DataArg,
    out: OutOpt,
    size: Annotated[
        int,
        typer.Option("--size", min=32, help="Tile size in pixels (square), at least 32."),
    ] = 640,
    overlap: Annotated[
        float,
        typer.Option(
            "--overlap", help="Overlap of neighbouring tiles, as a fraction of the tile size."
        ),
    ] = 0.2,
    min_visibility: Annotated[
        float,
        typer.Option(
            "--min-visibility",
            help="Keep a cut box when at least this fraction of it is inside the tile.",
        ),
    ] = 0.3,
    min_area: Annotated[
        float,
        typer.Option(
            "--min-area",
            help="...and at least this many pixels of it are inside (drops slivers of tiny objects).",
        ),
    ] = 16.0,
    keep_empty: Annotated[
        float,
        typer.Option(
            "--keep-empty", help="Fraction of tiles without objects to keep (sampled with --seed)."
        ),
    ] = 0.1,
    sizes: Annotated[
        str | None,
        typer.Option(
            "--sizes",
            help="Several tile sizes for multi-scale tiling, e.g. 512,1024 (replaces --size).",
        ),
    ] = None,
    fmt: Annotated[
        OutFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format (default: the input's when COCO or YOLO, else COCO).",
        ),
    ] = None,
    quality: Annotated[
        int,
        typer.Option(
            "--quality", help="JPEG/WebP quality of the tiles (tiles keep the source's codec)."
        ),
    ] = 95,
    seed: SeedOpt = 0,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    on_error: OnErrorOpt = OnError.fail,
    overwrite: OverwriteOpt = False,
    dry_run: DryRunOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Slice large images into overlapping tiles; tiles record their parent and offset."""
    config = TileConfig(
        sizes=parse_sizes(sizes) if sizes else (size,),
        overlap=overlap,
        min_visibility=min_visibility,
        min_area=min_area,
        keep_empty=keep_empty,
        seed=seed,
        quality=quality,
        max_pixels=max_pixels,
    )
    path = parse_spec(data)[1]
    if not dry_run:
        check_output(out, overwrite=overwrite, inputs=[path])
    opts = read_options(on_error, max_pixels=max_pixels, quiet=quiet)
    # Connect first: a bad --scheduler is reported before the dataset is read.
    executor = None if dry_run else make_executor(workers, scheduler)
    with ExitStack() as on_failure:
        if executor is not None:
            on_failure.callback(executor.close)
        ds = load_dataset(data, opts)
        on_failure.pop_all()  # read: the `with executor` below closes it
    layout = str(ds.info.get("layout", ""))
    out_fmt = fmt.value if fmt else (layout if layout in ("coco", "yolo") else "coco")
    console.print(f"read {layout} dataset: {len(ds)} images, {ds.num_annotations} boxes")
    options = {
        "sizes": list(config.sizes),
        "overlap": overlap,
        "min_visibility": min_visibility,
        "min_area": min_area,
        "keep_empty": keep_empty,
        "seed": seed,
        "quality": quality,
        "format": out_fmt,
        "on_error": on_error.value,
    }
    if dry_run:
        plan = plan_tiles(ds, config, progress=opts.progress)
        _print_counts(plan)
        print_skipped(opts.policy, listed_in=None)  # a dry run writes no manifest
        console.print(
            f"[yellow]dry run:[/] would write {plan.counts['tiles']} tiles as {out_fmt} to {out}"
        )
        return
    manifest = Manifest("tile", inputs=[data], options=options)
    with (
        atomic_output(out, overwrite=overwrite, inputs=[path], notify=print_note) as tmp,
        executor as ex,
    ):
        res = tile_dataset(
            ds, tmp, out_fmt, config, executor=ex, progress=opts.progress, policy=opts.policy
        )
        manifest.counts = {
            **res.counts,
            "images_written": res.write.images,
            "annotations_written": res.write.annotations,
        }
        manifest.skipped = opts.policy.skipped
        manifest.record_read(ds.info)
        manifest.dropped += res.plan.dropped + res.write.dropped
        manifest.changed += res.write.changed
        manifest.outputs += ["images/", *res.write.files]
        manifest.write(tmp)
    _print_counts(res.plan)
    print_skipped(opts.policy)
    console.print(
        f"wrote {res.write.images} tiles as {out_fmt.upper()} to [bold]{escape(str(out))}[/] (manifest.json has the counts)"
    )


def _print_counts(plan: TilePlan) -> None:
    c = plan.counts
    table = Table(title="tiling")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows: list[tuple[str, Any]] = [
        ("source images", c["images"]),
        ("windows", c["windows"]),
        ("tiles written", c["tiles"]),
        ("  passed through whole", c["tiles_passthrough"]),
        ("  empty kept / dropped", f"{c['tiles_empty_kept']} / {c['tiles_empty_dropped']}"),
        ("source boxes", c["source_boxes"]),
        ("tile boxes: whole", c["boxes_whole"]),
        ("tile boxes: cut", c["boxes_cut"]),
        *((f"dropped: {r}", n) for r, n in c["boxes_dropped"].items()),
        ("source boxes cut in every tile", c["source_boxes_cut_everywhere"]),
        ("source boxes in no tile", c["source_boxes_lost"]),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)


def _load_results(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError as exc:
        raise UsageError(f"predictions file '{path}' does not exist") from exc
    except json.JSONDecodeError as exc:
        raise MalformedFileError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from exc
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        data = data["annotations"]
    if not isinstance(data, list):
        raise MalformedFileError(
            path, "expected COCO results: a list of {image_id, category_id, bbox, score}"
        )
    return data


@cli_errors
def untile_cmd(
    pred: Annotated[
        Path,
        typer.Argument(
            help="COCO results JSON of predictions on the tiles (image_id = tile id or file name)."
        ),
    ],
    tiles: Annotated[
        str,
        typer.Option(
            "--tiles", help="The tile dataset written by 'curate tile' (folder or LAYOUT:PATH)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output COCO results JSON on the parent images.")
    ],
    full: Annotated[
        Path | None,
        typer.Option(
            "--full", help="Also merge in a full-image pass: COCO results on the parent image ids."
        ),
    ] = None,
    method: Annotated[
        Method, typer.Option("--method", help="nms, greedy_nmm (SAHI's default) or nmm.")
    ] = Method.greedy_nmm,
    metric: Annotated[
        Metric,
        typer.Option("--metric", help="Match by iou or ios (intersection over the smaller box)."),
    ] = Metric.ios,
    threshold: Annotated[
        float, typer.Option("--threshold", help="Boxes match when the metric is >= this.")
    ] = 0.5,
    class_agnostic: Annotated[
        bool, typer.Option("--class-agnostic", help="Merge across classes (default: per class).")
    ] = False,
    on_error: OnErrorOpt = OnError.fail,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Map tile predictions back to their parent images and merge overlaps (NMS/NMM)."""
    config = MergeConfig(
        method=method.value, metric=metric.value, threshold=threshold, class_agnostic=class_agnostic
    )
    inputs = [p for p in (pred, full, parse_spec(tiles)[1]) if p is not None]
    if any(out.resolve() == p.resolve() for p in inputs):
        raise UsageError(f"output '{out}' is one of the inputs; inputs are never modified")
    manifest_path = out.with_name(f"{out.stem}.manifest.json")
    if not overwrite:
        for p in (out, manifest_path):
            if p.exists():
                raise OutputExistsError(f"output '{p}' exists; pass --overwrite to replace it")
    opts = read_options(on_error, check_images=False, quiet=quiet)
    tile_ds = load_dataset(tiles, opts)
    index = tile_index(tile_ds)
    res = untile_predictions(
        _load_results(pred),
        index,
        full_results=_load_results(full) if full else None,
        config=config,
        policy=opts.policy,
        progress=opts.progress,
        where=str(pred),
        where_full=str(full) if full else "",
    )
    write_json_atomic(out, res.results, indent=None)
    manifest = Manifest(
        "untile",
        inputs=[str(p) for p in inputs],
        options={
            "method": method.value,
            "metric": metric.value,
            "threshold": threshold,
            "class_agnostic": class_agnostic,
        },
        counts=res.counts,
        outputs=[str(out)],
    )
    manifest.skipped = opts.policy.skipped
    write_json_atomic(manifest_path, manifest.to_dict())
    print_skipped(opts.policy)
    c = res.counts
    console.print(
        f"merged {c['tile_predictions']} tile + {c['full_image_predictions']} full-image predictions "
        f"into {c['merged_predictions']} on {c['parent_images']} images → [bold]{escape(str(out))}[/]"
    )
