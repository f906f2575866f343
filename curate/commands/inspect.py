"""``curate inspect``: look at a dataset in the FiftyOne App."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from curate.commands.common import (
    DataArg,
    OnErrorOpt,
    QuietOpt,
    cli_errors,
    console,
    print_skipped,
    read_options,
)
from curate.core.errors import OnError


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)


@cli_errors
def inspect_cmd(
    data: DataArg,
    name: Annotated[
        str | None, typer.Option("--name", help="FiftyOne dataset name (default: the folder name).")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port of the FiftyOne App.")] = 5151,
    launch: Annotated[
        bool,
        typer.Option(
            "--launch/--no-launch",
            help="Open the App (blocks until closed) or only build the dataset.",
        ),
    ] = True,
    persistent: Annotated[
        bool, typer.Option("--persistent", help="Keep the FiftyOne dataset after this command.")
    ] = False,
    on_error: OnErrorOpt = OnError.fail,
    quiet: QuietOpt = False,
) -> None:
    """Load a dataset into FiftyOne (its own MongoDB) and open the App to look at it."""
    from curate.inspect import summary, to_fiftyone
    from curate.io import load_dataset, parse_spec

    opts = read_options(on_error, quiet=quiet)
    ds = load_dataset(data, opts)
    print_skipped(opts.policy)
    ds_name = name or f"sodkit-{parse_spec(data)[1].resolve().name}"
    fods = to_fiftyone(ds, ds_name, persistent=persistent, progress=opts.progress)
    info = summary(fods)
    table = Table(title=f"FiftyOne dataset '{ds_name}'")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("samples", str(info["samples"]))
    table.add_row("objects", str(info["objects"]))
    table.add_row("small objects (< 32²)", str(info["small_objects"]))
    for k, v in sorted(info["per_class"].items()):
        table.add_row(f"  {k}", str(v))
    for k, v in sorted(info["per_split"].items()):
        table.add_row(f"split {k}", str(v))
    console.print(table)
    if not launch:
        return
    from curate.inspect import import_fiftyone

    session = import_fiftyone().launch_app(fods, port=port, remote=True)
    console.print(f"FiftyOne App on http://localhost:{port} (Ctrl+C to stop)")
    session.wait()
