"""The ``curate`` command: a thin Typer layer over the library (parse, call, print).

Each command group lives in its own module with ``register(app)``. ``curate NAME ...``
imports only the module of ``NAME`` (importing them all costs about half a second, paid
again by every process pool's fork server); ``curate --help`` and ``curate.cli.app``
(what the tests drive) have every command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

HELP = "Turn messy detection data into clean, training-ready small-object datasets."

#: Command name -> the module that registers it.
COMMANDS: dict[str, str] = {
    "merge": "curate.commands.merge",
    "convert": "curate.commands.convert",
    "split": "curate.commands.split",
    "dedupe": "curate.commands.dedupe",
    "leaks": "curate.commands.dedupe",
    "stats": "curate.commands.stats",
    "anchors": "curate.commands.stats",
    "tile": "curate.commands.tile",
    "untile": "curate.commands.tile",
    "inspect": "curate.commands.inspect",
}


def build_app(names: Iterable[str] | None = None) -> typer.Typer:
    """A ``curate`` app with the commands ``names`` (all when None)."""
    import typer  # here, not at import: main() catches a Ctrl+C during it

    app = typer.Typer(
        name="curate",
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    # A callback keeps ``curate NAME`` a group even when only NAME is registered.
    @app.callback()
    def _group() -> None:
        """Turn messy detection data into clean, training-ready small-object datasets."""

    wanted = list(COMMANDS) if names is None else list(names)
    for module in dict.fromkeys(COMMANDS[n] for n in wanted):
        importlib.import_module(module).register(app)
    return app


def __getattr__(name: str) -> Any:
    """``curate.cli.app``: the app with every command, built on first use."""
    if name == "app":
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _command_of(args: list[str]) -> str | None:
    first = next((a for a in args if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def main() -> None:
    # Ctrl+C while the command is still being imported, before its own handler runs: the
    # same one line as later, never an import traceback.
    try:
        name = _command_of(sys.argv[1:])
        app = build_app(None if name is None else [name])
        app()
    except KeyboardInterrupt:
        # Also a Ctrl+C after the command returned: say what it had written.
        common = sys.modules.get("curate.commands.common")
        line = common.interrupted_message() if common else "interrupted: nothing was written"
        sys.stderr.write(line + "\n")
        raise SystemExit(130) from None
