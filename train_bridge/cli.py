"""The ``train_bridge`` command: train, evaluate, predict, and compare raw vs curated data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from curate.commands.common import (
    DataArg,
    MaxPixelsOpt,
    OnErrorOpt,
    OutFormat,
    OverwriteOpt,
    QuietOpt,
    cli_errors,
    console,
    err_console,
    print_skipped,
    read_options,
)
from curate.core.errors import OnError, UsageError
from curate.core.imageio import DEFAULT_MAX_PIXELS, is_image_file
from curate.core.output import Manifest, check_file_output, write_json_atomic
from curate.core.progress import RichProgress
from curate.io import detect_layout, parse_spec
from train_bridge import checkpoint as ckpt
from train_bridge.config import PRESETS, TrainConfig, make_config
from train_bridge.data import load, split_images
from train_bridge.device import resolve_device, use_amp
from train_bridge.engine import prepare_run_dir, previous_run_dir, train
from train_bridge.evaluate import (
    STAT_NAMES,
    EvalResult,
    coco_eval,
    coco_gt,
    evaluate,
    fmt_metric,
    image_ids,
    sliced_results,
)
from train_bridge.predict import Predictor, to_coco_results

app = typer.Typer(
    name="train_bridge",
    help=(
        "Train a small-object YOLOX on a curated dataset and measure whether curation helps "
        "(raw vs curated on one test split, COCO AP/AP50/AP75/AP_small)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Size(str, Enum):
    nano = "nano"
    tiny = "tiny"
    s = "s"
    m = "m"
    l = "l"  # noqa: E741 - YOLOX's size name
    x = "x"


class IoU(str, Enum):
    iou = "iou"
    giou = "giou"
    ciou = "ciou"


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


Preset = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help=f"Start from a named configuration ({', '.join(PRESETS)}); other options override it.",
    ),
]
ModelOpt = Annotated[Size | None, typer.Option("--model", "-m", help="YOLOX size (default s).")]
CbamOpt = Annotated[
    bool | None, typer.Option("--cbam/--no-cbam", help="CBAM attention in the CSP blocks.")
]
MffOpt = Annotated[
    bool | None, typer.Option("--mff/--no-mff", help="Multi-scale feature fusion before the head.")
]
IoUOpt = Annotated[IoU | None, typer.Option("--iou", help="Box loss: iou (default), giou, ciou.")]
P2Opt = Annotated[bool | None, typer.Option("--p2/--no-p2", help="Extra stride-4 level.")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", "-e", help="Training epochs.")]
ImgszOpt = Annotated[
    int | None, typer.Option("--imgsz", help="Input size in px (multiple of 32; default 640).")
]
BatchOpt = Annotated[int | None, typer.Option("--batch", "-b", help="Images per batch.")]
DeviceOpt = Annotated[
    DeviceChoice | None,
    typer.Option("--device", help="auto picks CUDA when available, else CPU."),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed.")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", "-j", help="Data loader worker processes.")
]
WeightsOpt = Annotated[
    Path, typer.Option("--weights", "-w", help="Checkpoint written by 'train_bridge train'.")
]
ConfOpt = Annotated[float, typer.Option("--conf", help="Drop detections scoring below this.")]


def _config(preset: str | None, **options: Any) -> TrainConfig:
    values = {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items()}
    return make_config(preset, **values)


def _print_config(cfg: TrainConfig) -> None:
    switches = [n for n, on in (("CBAM", cfg.cbam), ("MFF", cfg.mff), ("P2", cfg.p2)) if on]
    console.print(
        f"YOLOX-{cfg.model} {'+'.join(switches) or 'baseline'}, {cfg.iou.upper()} loss; "
        f"{cfg.epochs} epochs at {cfg.imgsz} px, batch {cfg.batch}, lr {cfg.lr:.4g}, "
        f"device {resolve_device(cfg.device)}",
        highlight=False,
    )


def _epoch_printer(epochs: int) -> Any:
    def show(row: dict[str, Any]) -> None:
        parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['loss']:.3f}"]
        if "AP50" in row:
            parts += [f"val AP50 {row['AP50']:.3f}", f"AP {row['AP']:.3f}"]
        parts.append(f"{row['seconds']:.0f}s")
        console.print("  ".join(parts), highlight=False)

    return show


def _metrics_table(result: EvalResult, title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in STAT_NAMES:
        table.add_row(name, fmt_metric(result.stats[name]))
    for name, m in result.per_class.items():
        table.add_row(f"AP {name}", fmt_metric(m["AP"]))
    return table


@app.command("train")
@cli_errors
def train_cmd(
    data: DataArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (checkpoints, results.csv, plots).")
    ] = Path("runs/train"),
    preset: Preset = None,
    model: ModelOpt = None,
    cbam: CbamOpt = None,
    mff: MffOpt = None,
    iou: IoUOpt = None,
    p2: P2Opt = None,
    epochs: EpochsOpt = None,
    imgsz: ImgszOpt = None,
    batch: BatchOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    workers: WorkersOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last.pt.")
    ] = False,
    overwrite: OverwriteOpt = False,
    on_error: OnErrorOpt = OnError.fail,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    quiet: QuietOpt = False,
) -> None:
    """Train YOLOX on the train split of DATA (a dataset written by 'curate split')."""
    cfg = _config(
        preset,
        model=model,
        cbam=cbam,
        mff=mff,
        iou=iou,
        p2=p2,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        seed=seed,
        workers=workers,
    )
    path = parse_spec(data)[1]
    run_dir = prepare_run_dir(out, overwrite=overwrite, resume=resume, inputs=[path])
    opts = read_options(on_error, max_pixels=max_pixels, quiet=quiet)
    ds = load(data, opts)
    train_images = split_images(ds, "train")
    val_images = split_images(ds, "val", required=False)
    console.print(
        f"train {len(train_images)} images, val {len(val_images)} images, "
        f"{len(ds.categories)} classes: {', '.join(c.name for c in ds.categories)}",
        highlight=False,
    )
    if resume:
        cfg = TrainConfig.from_dict(ckpt.read(run_dir / "last.pt")["train_config"])
        console.print("[yellow]resuming: the configuration stored in last.pt is used[/]")
    _print_config(cfg)
    manifest = Manifest("train_bridge train", inputs=[data])
    manifest.skipped = opts.policy.skipped
    with _keeps_previous_run(run_dir):
        result = train(
            cfg,
            train_images,
            val_images or None,
            ds.categories,
            run_dir,
            progress=opts.progress,
            resume=resume,
            on_epoch=_epoch_printer(cfg.epochs),
            manifest=manifest,
        )
    print_skipped(opts.policy)
    best = "-" if result.best_ap50 is None else f"{result.best_ap50:.3f}"
    console.print(
        f"done in {result.seconds:.0f}s: best val AP50 {best}; weights [bold]{escape(str(result.best))}[/]",
        highlight=False,
    )


@contextmanager
def _keeps_previous_run(run_dir: Path) -> Iterator[None]:
    """If the run fails or is interrupted, say where the run it replaced is kept.

    (A run that finishes removes it: :func:`train_bridge.engine.finish_run_dir`.)
    """
    finished = False
    try:
        yield
        finished = True
    finally:
        backup = previous_run_dir(run_dir)
        if not finished and backup.is_dir():
            err_console.print(
                f"[yellow]the run this one replaced is kept at '{backup}'[/]", highlight=False
            )


def _predictor(
    weights: Path, device: DeviceChoice, batch: int, conf: float
) -> tuple[Any, Predictor]:
    dev = resolve_device(device.value)
    loaded = ckpt.load_model(weights, dev)
    amp = use_amp(dev, bool(loaded.meta.get("train_config", {}).get("amp", False)))
    return loaded, Predictor(loaded.model, loaded.imgsz, dev, conf_thr=conf, batch=batch, amp=amp)


@app.command("eval")
@cli_errors
def eval_cmd(
    data: DataArg,
    weights: WeightsOpt,
    split: Annotated[
        str, typer.Option("--split", help="Split to score: train, val, test, or 'all'.")
    ] = "test",
    tiles: Annotated[
        str | None,
        typer.Option(
            "--tiles",
            help="Sliced inference: a tile dataset written by 'curate tile' from DATA; "
            "predictions on its tiles are merged back onto DATA's images.",
        ),
    ] = None,
    full_pass: Annotated[
        bool,
        typer.Option("--full-pass", help="With --tiles, also predict on whole images and merge."),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write metrics and predictions as JSON.")
    ] = None,
    device: DeviceOpt = DeviceChoice.auto,
    batch: BatchOpt = 8,
    conf: ConfOpt = 0.001,
    overwrite: OverwriteOpt = False,
    on_error: OnErrorOpt = OnError.fail,
    quiet: QuietOpt = False,
) -> None:
    """Score WEIGHTS on a split of DATA with COCO metrics (pycocotools)."""
    if out is not None:
        check_file_output(out, overwrite=overwrite, inputs=[parse_spec(data)[1]])
    opts = read_options(on_error, quiet=quiet)
    ds = load(data, opts)
    images = list(ds.images) if split == "all" else split_images(ds, split)
    loaded, predictor = _predictor(weights, device or DeviceChoice.auto, batch or 8, conf)
    category_of = loaded.classes.map_to(ds.categories)
    if not category_of:
        raise UsageError(
            f"none of the model's classes {list(loaded.classes.names)} is a class of '{data}'"
        )
    if tiles is None:
        result, results = evaluate(predictor, images, ds.categories, category_of, opts.progress)
    else:
        all_ids = dict(zip((id(i) for i in ds.images), image_ids(ds.images), strict=True))
        tile_ds = load(tiles, opts)
        results = sliced_results(
            predictor,
            tile_ds,
            category_of,
            parents=images if full_pass else None,
            parent_ids=[all_ids[id(i)] for i in images] if full_pass else None,
            progress=opts.progress,
        )
        wanted = [all_ids[id(i)] for i in images]
        results = [r for r in results if r["image_id"] in set(wanted)]
        result = coco_eval(coco_gt(images, ds.categories, ids=wanted), results)
    console.print(_metrics_table(result, f"{split}: {result.images} images"))
    print_skipped(opts.policy)
    if out is not None:
        write_json_atomic(out, {"metrics": result.to_dict(), "predictions": results})
        console.print(f"wrote {escape(str(out))}")


def _image_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))


@app.command("predict")
@cli_errors
def predict_cmd(
    source: Annotated[
        str,
        typer.Argument(
            help="A dataset (PATH or LAYOUT:PATH), an image file, or a folder of images."
        ),
    ],
    weights: WeightsOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="COCO results JSON to write.")],
    split: Annotated[
        str | None, typer.Option("--split", help="For a dataset: only this split.")
    ] = None,
    device: DeviceOpt = DeviceChoice.auto,
    batch: BatchOpt = 8,
    conf: ConfOpt = 0.25,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Detect objects and write COCO results (image_id, category_id, bbox [x,y,w,h], score)."""
    layout, path = parse_spec(source)
    check_file_output(out, overwrite=overwrite, inputs=[path])
    loaded, predictor = _predictor(weights, device or DeviceChoice.auto, batch or 8, conf)
    progress = RichProgress(disable=quiet)
    results: list[dict[str, Any]] = []
    is_dataset = layout is not None
    if layout is None and path.is_dir():
        try:
            detect_layout(path)
            is_dataset = True
        except UsageError:
            is_dataset = False
    if is_dataset:
        ds = load(source, read_options(OnError.fail, quiet=quiet))
        images = split_images(ds, split) if split else list(ds.images)
        category_of = loaded.classes.map_to(ds.categories) or dict(enumerate(loaded.classes.ids))
        ids = image_ids(images)
        for img_id, (item, det) in zip(ids, predictor.predict_items(images, progress), strict=True):
            for r in to_coco_results(det, img_id, category_of):
                results.append({**r, "file_name": item.file_name})
        n_images = len(images)
    else:
        if not path.exists():
            raise UsageError(f"'{path}' does not exist")
        files = _image_files(path)
        if not files:
            raise UsageError(f"no image files in '{path}'")
        category_of = dict(enumerate(loaded.classes.ids))
        base = path if path.is_dir() else path.parent
        for img_id, (file, det) in enumerate(predictor.predict_paths(files, progress), start=1):
            for r in to_coco_results(det, img_id, category_of):
                results.append({**r, "file_name": file.relative_to(base).as_posix()})
        n_images = len(files)
    write_json_atomic(out, results)
    console.print(f"{len(results)} detections on {n_images} images -> [bold]{escape(str(out))}[/]")


@app.command("validate")
@cli_errors
def validate_cmd(
    raw: Annotated[str, typer.Option("--raw", help="The raw dataset (PATH or LAYOUT:PATH).")],
    curated: Annotated[
        str, typer.Option("--curated", help="The curated, split dataset (PATH or LAYOUT:PATH).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for runs, tables and plots.")],
    test: Annotated[
        str | None,
        typer.Option("--test", help="Test set (default: the curated set's test split)."),
    ] = None,
    preset: Preset = None,
    ablation: Annotated[
        bool,
        typer.Option(
            "--ablation", help="Also train the 8 CBAM/MFF/CIoU combinations on the curated set."
        ),
    ] = False,
    model: ModelOpt = None,
    cbam: CbamOpt = None,
    mff: MffOpt = None,
    iou: IoUOpt = None,
    epochs: EpochsOpt = None,
    imgsz: ImgszOpt = None,
    batch: BatchOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run in --out: finished runs are reused, the "
            "unfinished one resumes from its last.pt, with the stored configuration.",
        ),
    ] = False,
    on_error: OnErrorOpt = OnError.fail,
    quiet: QuietOpt = False,
) -> None:
    """Train one configuration on RAW and on CURATED; compare both on the same test split."""
    from train_bridge.validate import validate

    cfg = _config(
        preset,
        model=model,
        cbam=cbam,
        mff=mff,
        iou=iou,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        seed=seed,
        workers=workers,
    )
    if resume:
        console.print("[yellow]resuming: the configuration stored in the run folder is used[/]")
    else:
        _print_config(cfg)
    opts = read_options(on_error, quiet=quiet)

    def show(name: str, row: dict[str, Any]) -> None:
        console.print(
            f"{name}: test AP {fmt_metric(row['AP'])}  AP50 {fmt_metric(row['AP50'])}  "
            f"AP_small {fmt_metric(row['AP_small'])}  ({row['train_seconds']:.0f}s)",
            highlight=False,
        )

    with _keeps_previous_run(out):
        report = validate(
            raw,
            curated,
            out,
            cfg,
            test=test,
            ablation=ablation,
            overwrite=overwrite,
            resume=resume,
            read_options=opts,
            progress=opts.progress,
            on_run=show,
        )
    table = Table(title=f"test split: {report.test_images} images")
    for col in ("run", "AP", "AP50", "AP75", "AP_small"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for row in report.comparison + report.ablation:
        table.add_row(row["run"], *(fmt_metric(row[k]) for k in ("AP", "AP50", "AP75", "AP_small")))
    console.print(table)
    if report.leaked_raw_images:
        console.print(
            f"[yellow]{report.leaked_raw_images} raw image(s) identical to test images were "
            "left out of raw training[/]"
        )
    print_skipped(opts.policy)
    console.print(
        f"wrote comparison.csv, comparison.md, comparison.png to [bold]{escape(str(out))}[/]"
    )


@app.command("synth")
@cli_errors
def synth_cmd(
    out: Annotated[Path, typer.Argument(help="Folder for the generated dataset.")],
    train_n: Annotated[int, typer.Option("--train", help="Training images.")] = 400,
    val_n: Annotated[int, typer.Option("--val", help="Validation images.")] = 50,
    test_n: Annotated[int, typer.Option("--test", help="Test images.")] = 100,
    size: Annotated[int, typer.Option("--size", help="Image width and height in px.")] = 160,
    fmt: Annotated[
        OutFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutFormat.yolo,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    overwrite: OverwriteOpt = False,
) -> None:
    """Generate a split dataset of small shapes (circle/square/triangle, 8-24 px) for smoke tests."""
    from curate.core.output import atomic_output
    from train_bridge.synthetic import ShapesSpec, make_shapes_dataset, split_counts

    spec = ShapesSpec(width=size, height=size, splits=split_counts(train_n, val_n, test_n))
    manifest = Manifest(
        "train_bridge synth", options={"seed": seed, "size": size, "format": fmt.value}
    )
    with atomic_output(out, overwrite=overwrite) as tmp:
        ds = make_shapes_dataset(tmp, spec, seed=seed, fmt=fmt.value)
        manifest.counts = {"images": len(ds), "annotations": ds.num_annotations}
        manifest.write(tmp)
    console.print(
        f"wrote {len(ds)} images, {ds.num_annotations} shapes to [bold]{escape(str(out))}[/]"
    )


def main() -> None:
    app()
