"""``curate merge``: many sources in, one dataset out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from curate.commands.common import (
    DryRunOpt,
    FormatOpt,
    Link,
    LinkOpt,
    MaxPixelsOpt,
    OnErrorOpt,
    OutFormat,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    Unlabeled,
    VerifyOpt,
    cli_errors,
    console,
    print_left_out,
    print_note,
    read_options,
    report_skipped,
)
from curate.core.dataset import Dataset
from curate.core.errors import OnError
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.output import Manifest, check_output
from curate.export import export_dataset
from curate.formats.base import SourceOptions, WriteOptions
from curate.io import load_dataset, parse_spec
from curate.merge import ClassMap, MergeReport, merge_datasets, source_names


def register(app: typer.Typer) -> None:
    app.command("merge")(merge_cmd)


@cli_errors
def merge_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Sources: PATH or LAYOUT:PATH (bowfire, video, kaggle, coco, yolo, voc)."
        ),
    ],
    out: OutOpt,
    fmt: FormatOpt = OutFormat.coco,
    class_map: Annotated[
        Path | None,
        typer.Option(
            "--class-map",
            help="YAML/JSON with classes, synonyms and drop; without it classes are only normalised.",
        ),
    ] = None,
    link: LinkOpt = Link.hardlink,
    every: Annotated[
        int | None, typer.Option("--every", help="Video: keep every Nth frame.")
    ] = None,
    fps: Annotated[
        float | None, typer.Option("--fps", help="Video: frames per second to keep.")
    ] = None,
    unlabeled: Annotated[
        Unlabeled,
        typer.Option(
            "--unlabeled",
            help="Video clips without annotations: tag (kept, marked), negative, or skip.",
        ),
    ] = Unlabeled.tag,
    merge_px: Annotated[
        int,
        typer.Option(
            "--merge-px",
            min=0,
            max=256,
            help="BoWFire: join mask fragments closer than N px (0-256) into one instance.",
        ),
    ] = 0,
    min_region: Annotated[
        int, typer.Option("--min-region", help="BoWFire: ignore mask regions under N px.")
    ] = 4,
    patches: Annotated[
        bool, typer.Option("--patches", help="BoWFire: also read the 50x50 train/ patches.")
    ] = False,
    on_error: OnErrorOpt = OnError.fail,
    overwrite: OverwriteOpt = False,
    dry_run: DryRunOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    verify: VerifyOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Merge sources into one COCO or YOLO dataset with one class list."""
    paths = [parse_spec(s)[1] for s in sources]
    if not dry_run:
        check_output(out, overwrite=overwrite, inputs=paths)
    cmap = ClassMap.from_file(class_map) if class_map else ClassMap.passthrough()
    opts = read_options(on_error, verify=verify, max_pixels=max_pixels, quiet=quiet)
    opts.source = SourceOptions(
        every=every,
        fps=fps,
        unlabeled=unlabeled.value,
        merge_distance=merge_px,
        min_region_area=min_region,
        include_patches=patches,
    )  # type: ignore[arg-type]
    names = source_names(sources, paths)
    loaded = []
    for name, spec in zip(names, sources, strict=True):
        ds = load_dataset(spec, opts)
        console.print(
            f"read [bold]{escape(str(name))}[/] ({ds.info.get('layout')}): {len(ds)} images, {ds.num_annotations} boxes"
        )
        loaded.append((name, ds))
    merged, report = merge_datasets(loaded, cmap)
    manifest = Manifest(
        "merge",
        inputs=sources,
        options={
            "format": fmt.value,
            "class_map": str(class_map) if class_map else None,
            "link": link.value,
            "on_error": on_error.value,
            "verify": verify,
        },
    )
    manifest.skipped = opts.policy.skipped
    manifest.dropped += report.dropped
    for _, ds in loaded:
        manifest.record_read(ds.info)
    manifest.counts = {
        "images": len(merged),
        "boxes": merged.num_annotations,
        "renamed_for_collisions": report.renamed,
        "per_class": dict(merged.class_counts()),
    }
    manifest.extra = {"sources": report.per_source, "class_mapping": report.class_mapping}
    _print_summary(merged, report)
    report_skipped(opts.policy, len(merged), dry_run=dry_run)
    if dry_run:
        console.print(f"[yellow]dry run:[/] would write {len(merged)} images to {escape(str(out))}")
        return
    written = export_dataset(
        merged,
        out,
        fmt.value,
        manifest,
        overwrite=overwrite,
        inputs=paths,
        options=WriteOptions(link=link.value),
        notify=print_note,
    )
    print_left_out(written.dropped)  # what the format cannot hold (YOLO: crowd regions)
    console.print(
        f"wrote {fmt.value.upper()} dataset to [bold]{escape(str(out))}[/] (manifest.json lists what was dropped or changed)"
    )


def _print_summary(ds: Dataset, report: MergeReport) -> None:

    table = Table(title="merged sources")
    table.add_column("source")
    table.add_column("layout")
    table.add_column("images", justify="right")
    table.add_column("boxes kept", justify="right")
    table.add_column("boxes dropped", justify="right")
    for name, info in report.per_source.items():
        table.add_row(
            name,
            str(info["layout"]),
            str(info["images"]),
            str(info["boxes_kept"]),
            str(info["boxes_dropped"]),
        )
    console.print(table)
    counts = ds.class_counts()
    console.print(
        "classes: " + ", ".join(f"{c.name}={counts.get(c.name, 0)}" for c in ds.categories)
    )
