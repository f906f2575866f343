"""``curate convert``: one dataset, another format."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from curate.commands.common import (
    AnyFormat,
    DataArg,
    DryRunOpt,
    Link,
    LinkOpt,
    MaxPixelsOpt,
    OnErrorOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    VerifyOpt,
    cli_errors,
    console,
    print_left_out,
    print_note,
    read_options,
    report_skipped,
)
from curate.core.errors import OnError
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.output import Manifest, check_output
from curate.export import export_dataset
from curate.formats.base import WriteOptions
from curate.io import load_dataset, parse_spec


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_cmd)


@cli_errors
def convert_cmd(
    data: DataArg,
    to: Annotated[AnyFormat, typer.Option("--to", help="Target format.")],
    out: OutOpt,
    link: LinkOpt = Link.hardlink,
    on_error: OnErrorOpt = OnError.fail,
    overwrite: OverwriteOpt = False,
    dry_run: DryRunOpt = False,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    verify: VerifyOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert a dataset to COCO, YOLO or VOC (splits, masks and attributes kept where the format can hold them)."""
    path = parse_spec(data)[1]
    if not dry_run:
        check_output(out, overwrite=overwrite, inputs=[path])
    opts = read_options(on_error, verify=verify, max_pixels=max_pixels, quiet=quiet)
    ds = load_dataset(data, opts)
    manifest = Manifest(
        "convert",
        inputs=[data],
        options={"to": to.value, "link": link.value, "on_error": on_error.value, "verify": verify},
    )
    manifest.skipped = opts.policy.skipped
    manifest.record_read(ds.info)
    manifest.counts = {"images_read": len(ds), "boxes_read": ds.num_annotations}
    console.print(
        f"read {ds.info.get('layout')} dataset: {len(ds)} images, {ds.num_annotations} boxes"
    )
    report_skipped(opts.policy, len(ds), dry_run=dry_run)
    if dry_run:
        console.print(
            f"[yellow]dry run:[/] would write {len(ds)} images as {to.value} to {escape(str(out))}"
        )
        return
    res = export_dataset(
        ds,
        out,
        to.value,
        manifest,
        overwrite=overwrite,
        inputs=[path],
        options=WriteOptions(link=link.value, progress=opts.progress),
        notify=print_note,
    )
    console.print(
        f"wrote {res.images} images, {res.annotations} boxes as {to.value.upper()} to [bold]{escape(str(out))}[/]"
    )
    print_left_out(res.dropped)  # what the format cannot hold (YOLO: crowd regions)
