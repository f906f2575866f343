"""The ``augment`` command: offline small-object augmentation of curated datasets.

The online augmentations used while training live in :mod:`augment.functional`; the
offline commands that write augmented datasets are added here one per subcommand.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="augment",
    help=(
        "Augment a curated small-object dataset and write the result as a new dataset.\n\n"
        "Coming next: 'augment mosaic' (offline Mosaic tiles that keep small objects "
        "visible) and 'augment copypaste' (paste object crops or masks from an entity "
        "bank). The pure functions behind them (letterbox, mosaic, mixup, random_affine, "
        "hsv_jitter, hflip) are in augment.functional and are used online by train_bridge."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """Show the help when no command is given."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def main() -> None:
    app()
