"""The ``curate`` command: a thin Typer layer over the library (parse, call, print)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="curate",
    help="Turn messy detection data into clean, training-ready small-object datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per command group; each has ``register(app)``.
COMMAND_MODULES = (
    "curate.commands.merge",
    "curate.commands.convert",
    "curate.commands.split",
    "curate.commands.dedupe",
    "curate.commands.stats",
    "curate.commands.tile",
    "curate.commands.inspect",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()
