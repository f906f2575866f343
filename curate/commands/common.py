"""Options shared by every curate command, and the error boundary of the CLI."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from curate.core.errors import ErrorPolicy, ItemError, OnError, SodkitError, UsageError
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.progress import RichProgress
from curate.formats.base import ReadOptions

# Piped output (CI logs, files) gets wide tables instead of Rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

F = TypeVar("F", bound=Callable[..., Any])

DataArg = Annotated[
    str,
    typer.Argument(
        help="Dataset: PATH (layout detected) or LAYOUT:PATH, LAYOUT one of coco, yolo, voc, bowfire, video, kaggle, images (an image tree without labels). For YOLO, PATH may be the data.yaml itself."
    ),
]
OutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="Output folder (must be empty unless --overwrite).")
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace a non-empty output folder.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Report what would be done; write nothing.")
]
OnErrorOpt = Annotated[
    OnError,
    typer.Option(
        "--on-error",
        help="Bad items: 'fail' stops with a clear error, 'skip' leaves them out and lists them in the manifest.",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        "-j",
        min=1,
        help="Local worker processes (default: all cores; 1 = no pool).",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask scheduler address (tcp://host:port) to run the heavy map steps on a cluster.",
    ),
]
VerifyOpt = Annotated[
    bool,
    typer.Option(
        "--verify",
        help="Decode every image in full before writing, on all cores (about a full decode "
        "per image): finds damage anywhere in a file, libjpeg's warnings included. Without it, "
        "headers, file ends and a PNG's first 64 KiB are checked.",
    ),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels", help="Largest image (width x height) decoded; bigger ones are errors."
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option("--seed", min=0, help="Random seed (results are deterministic for a seed)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def read_options(
    on_error: OnError = OnError.fail,
    *,
    check_images: bool = True,
    verify: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    quiet: bool = False,
) -> ReadOptions:
    """ReadOptions for a CLI command: the user's policy, Rich progress bars, and the
    readers' notes printed (on stderr) as they come."""
    return ReadOptions(
        policy=ErrorPolicy(on_error),
        progress=RichProgress(disable=quiet),
        check_images=check_images,
        verify=verify,
        max_pixels=max_pixels,
        notify=print_note,
    )


def print_left_out(dropped: list[dict[str, Any]]) -> None:
    """What a writer left out (the format cannot hold it: YOLO crowd regions, VOC masks), one
    yellow line per level (images, annotations, masks), so no count mixes them."""
    from curate.core.output import left_out_lines

    for line in left_out_lines(dropped):
        console.print(f"[yellow]{escape(line)}[/]", highlight=False)


def print_note(note: str) -> None:
    """One ``note:`` line on stderr (what a reader noticed, an option with nothing to do)."""
    err_console.print(f"[cyan]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


#: What this run has put in place so far (outputs, reports): an interrupt after that says
#: so instead of "nothing was written".
WRITTEN: list[str] = []


def wrote(path: str | Path) -> None:
    """Record that ``path`` is written, complete (see :func:`interrupted_message`)."""
    WRITTEN.append(str(path))


def interrupted_message() -> str:
    """The one line a Ctrl+C prints: what this run had written by then, or nothing."""
    if not WRITTEN:
        return "interrupted: nothing was written"
    return f"interrupted: {' and '.join(WRITTEN)} {'was' if len(WRITTEN) == 1 else 'were'} written"


#: Said after an item's error under ``--on-error fail`` (QA round 10: with five bad images,
#: a user met them one run at a time).
SKIP_HINT = (
    "(--on-error skip leaves such items out, goes on, and lists every one of them in the manifest)"
)


def cli_errors(fn: F) -> F:
    """Print known errors as one line and exit 1; tracebacks only with SODKIT_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        WRITTEN.clear()  # one run per command call (tests run many in one process)
        try:
            return fn(*args, **kwargs)
        except SodkitError as exc:
            if os.environ.get("SODKIT_DEBUG"):
                raise
            err_console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            if isinstance(exc, ItemError) and kwargs.get("on_error") is OnError.fail:
                err_console.print(SKIP_HINT, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print(f"[yellow]{escape(interrupted_message())}[/]")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except (
            Exception
        ) as exc:  # the CLI boundary: a bug, reported as one line, never a wall of traceback
            if os.environ.get("SODKIT_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                "(nothing was written; rerun with SODKIT_DEBUG=1 for the traceback and please report it)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def print_skipped(
    policy: ErrorPolicy, limit: int = 10, listed_in: str | None = "manifest.json"
) -> None:
    """Tell the user what was skipped: the first ``limit`` items, the rest in ``listed_in``
    (the manifest); every item when nothing written lists them (``listed_in=None``)."""
    if not policy.skipped:
        return
    where = f"; see {listed_in}" if listed_in else ""
    err_console.print(f"[yellow]skipped {len(policy.skipped)} bad item(s){where}[/]")
    if listed_in is None:
        limit = len(policy.skipped)
    for s in policy.skipped[:limit]:
        loc = s.get("file", "?")
        if "line" in s:
            loc += f" line {s['line']}"
        left = f" (image left out: {s['left_out']}" if s.get("left_out") else ""
        if left:
            n_anns = s.get("left_out_annotations", 0)
            left += f", with its {n_anns} annotation(s))" if n_anns else ")"
        ref = "--against " if s.get("against") else ""
        # escaped: messages quote formats such as 'bbox' [x,y,w,h], which Rich takes for markup
        text = escape(f"{ref}{loc}: {s.get('error')}{left}")
        err_console.print(f"  [yellow]-[/] {text}", highlight=False)
    if len(policy.skipped) > limit:
        err_console.print(f"  ... and {len(policy.skipped) - limit} more")


def report_skipped(
    policy: ErrorPolicy,
    images_left: int,
    *,
    dry_run: bool,
    listed_in: str | None = "manifest.json",
    what: str = "write",
) -> None:
    """:func:`print_skipped` for a command about to write ``images_left`` images (pointing
    at ``listed_in``, the manifest, only when it will be written), and refuse to ``what``
    none: an output made of nothing because every image was skipped is no dataset."""
    nothing = images_left == 0 and bool(policy.skipped)
    print_skipped(policy, listed_in=None if dry_run or nothing else listed_in)
    if nothing:
        raise UsageError(
            f"nothing to {what}: every image was skipped ({len(policy.skipped)} bad item(s), "
            "listed above)"
        )


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


class OutFormat(str, Enum):
    """Training formats a command can write (``images``: the image tree alone, no labels)."""

    coco = "coco"
    yolo = "yolo"
    images = "images"


class AnyFormat(str, Enum):
    """Every writable format."""

    coco = "coco"
    yolo = "yolo"
    voc = "voc"
    images = "images"


class Link(str, Enum):
    """How images get into an output."""

    hardlink = "hardlink"
    symlink = "symlink"
    copy = "copy"


class Unlabeled(str, Enum):
    """What to do with video clips that have no annotations."""

    tag = "tag"
    negative = "negative"
    skip = "skip"


FormatOpt = Annotated[OutFormat, typer.Option("--format", "-f", help="Output format.")]
LinkOpt = Annotated[
    Link,
    typer.Option(
        "--link",
        help="How images get into the output (a hard link falls back to a copy across devices).",
    ),
]
