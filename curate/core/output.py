"""Safe output: atomic folders, refusal to overwrite, guard against writing over inputs, manifests.

Every writing command does::

    with atomic_output(out, overwrite=overwrite, inputs=[...]) as tmp:
        ...write everything under tmp...
        manifest.write(tmp)

Nothing appears at ``out`` until the block succeeds; then the temporary folder is
renamed into place (an old output, with ``--overwrite``, is removed only after that,
and Ctrl+C cannot stop the swap half-way; see :func:`atomic_output`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.core.errors import OutputExistsError, UsageError
from curate.core.files import OutputCollisionError

if TYPE_CHECKING:
    from curate.core.dataset import Annotation

MANIFEST_NAME = "manifest.json"
#: Files sodkit writes beside a dataset's images (manifest, dedupe report, split summary):
#: readers never take them for annotations.
OWN_FILES = frozenset(
    {
        MANIFEST_NAME,
        "dedupe_report.json",
        "dedupe_report.csv",
        "split_summary.json",
        "split_summary.csv",
    }
)
_OWN_JSON = re.compile(r'"(?:tool|schema)"\s*:\s*"sodkit')


def is_own_file(path: Path) -> bool:
    """A file sodkit wrote beside a dataset: one of :data:`OWN_FILES`, or a JSON report
    saved under another name (``leaks --json``), known by its ``"tool": "sodkit"`` header."""
    if path.name in OWN_FILES:
        return True
    if path.suffix.lower() != ".json":
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return _OWN_JSON.search(head) is not None


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
    except ValueError:
        return False
    return True


def check_output(out: Path, *, overwrite: bool, inputs: Iterable[Path] = ()) -> Path:
    """Validate ``out`` before any work: not an input, not inside one, empty or ``overwrite``."""
    out = Path(out).resolve()
    for raw in inputs:
        inp = Path(raw).resolve()
        if inp.is_file():
            inp = inp.parent
        if _is_within(out, inp) or _is_within(inp, out):
            raise UsageError(
                f"output '{out}' overlaps input '{inp}': inputs are never modified; "
                "choose an output folder outside the inputs"
            )
    if out.exists():
        if not out.is_dir():
            raise OutputExistsError(f"output '{out}' exists and is a file; choose a folder path")
        if any(out.iterdir()) and not overwrite:
            raise OutputExistsError(
                f"output '{out}' is not empty; pass --overwrite to replace it or choose another folder"
            )
    return out


def check_file_output(
    path: Path, *, overwrite: bool, inputs: Iterable[Path] = (), option: str = "output"
) -> Path:
    """Validate an output *file* before any work: not inside an input (an input given as a
    file, such as ``data.yaml``, stands for its folder), not a folder, and absent unless
    ``overwrite``. ``option`` names it in errors."""
    target = Path(path).resolve()
    for raw in inputs:
        inp = Path(raw).resolve()
        if _is_within(target, inp.parent if inp.is_file() else inp):
            raise UsageError(
                f"{option} '{path}' lies in the input '{raw}': inputs are never modified; "
                "write it elsewhere"
            )
    if target.is_dir():
        raise UsageError(f"{option} '{path}' is a folder; give a file path")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{option} '{path}' exists; pass --overwrite to replace it")
    return target


#: Hidden names of atomic writes beside a target: ``.NAME.tmp-PID-TAG`` (being written),
#: ``.NAME.old-PID-TAG`` (a replaced output being removed); older releases wrote them
#: without the PID (``.NAME.tmp-TAG``).
_SIDE_NAME = re.compile(r"\.(?:tmp|old)-(?:(\d+)-)?[0-9a-f]{8}")
#: Age after which a leftover without a PID in its name is taken for abandoned.
STALE_AGE_S = 24 * 3600.0
#: Signals held back while an output is swapped into place.
_DEFERRED = (signal.SIGINT, signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one of another user counts;
    on Windows, where ``os.kill`` would end it, every process counts as alive)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def side_name(target: Path, kind: str) -> Path:
    """A hidden name beside ``target`` for an atomic write (``kind`` ``tmp``) or the old
    output being replaced (``old``): ``.NAME.KIND-PID-TAG``, which :func:`remove_stale`
    recognises once its process is gone."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_stale(target: str | Path) -> list[Path]:
    """Remove what interrupted runs left beside ``target``: ``.NAME.tmp-*`` and ``.NAME.old-*``
    entries whose process is gone, and those without a PID (older releases) once older than
    :data:`STALE_AGE_S`. Those of a running process are kept. Returns what was removed."""
    target = Path(target)
    prefix = f".{target.name}"
    removed: list[Path] = []
    try:
        entries = [e for e in target.parent.iterdir() if e.name.startswith(prefix)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _SIDE_NAME.fullmatch(entry.name, len(prefix))
        if m is None:
            continue
        try:
            if m.group(1) is not None:
                if pid_alive(int(m.group(1))):
                    continue
            elif now - entry.lstat().st_mtime < STALE_AGE_S:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue  # not ours to remove after all (permissions): leave it
        removed.append(entry)
    return removed


class _StopRemoving(BaseException):
    """Raised by the deferring handler to cut short the removal of a replaced output."""


@contextmanager
def _signals_deferred(stop_on_signal: list[bool]) -> Iterator[list[int]]:
    """Hold back SIGINT and SIGTERM: yield the list they are recorded in. While
    ``stop_on_signal[0]`` is true, the first one raises :class:`_StopRemoving` (once).

    Only the main thread can set handlers; elsewhere nothing is deferred (signals are
    delivered to the main thread anyway). A signal whose handler was not set from Python
    or is ignored is left alone. On exit the previous handlers come back, and a held-back
    signal is delivered again, except SIGINT under Python's default handler: that would be
    a KeyboardInterrupt after the work is done, and it is dropped (the caller notes it).
    """
    received: list[int] = []
    previous: dict[int, Any] = {}

    def hold(signum: int, frame: object) -> None:
        received.append(signum)
        if stop_on_signal[0]:
            stop_on_signal[0] = False
            raise _StopRemoving

    if threading.current_thread() is threading.main_thread():
        for sig in _DEFERRED:
            current = signal.getsignal(sig)
            if current is None or current == signal.SIG_IGN:
                continue
            try:
                signal.signal(sig, hold)
            except (ValueError, OSError):  # not the main interpreter
                continue
            previous[sig] = current
    try:
        yield received
    finally:
        stop_on_signal[0] = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            if previous.get(signum) is not signal.default_int_handler:
                signal.raise_signal(signum)


def _swap_into_place(tmp: Path, target: Path, notify: Callable[[str], None] | None) -> None:
    """Move ``tmp`` to ``target``, replacing an old output (see :func:`atomic_output`)."""
    if not target.exists():
        os.replace(tmp, target)  # one rename: atomic, nothing to defer
        return
    old = side_name(target, "old")
    stop = [False]
    with _signals_deferred(stop) as received:
        os.replace(target, old)
        try:
            os.replace(tmp, target)
        except OSError:  # the old output goes back; signals are held, nothing else lands here
            os.replace(old, target)
            raise
        if not received:  # a signal during the renames: leave the removal to the next run
            try:
                stop[0] = True
                shutil.rmtree(old, ignore_errors=True)
                stop[0] = False
            except _StopRemoving:
                pass
    if received and notify is not None:
        left = (
            f"; '{old.name}' (the previous output) is left, the next run into '{target}' removes it"
        )
        notify(
            f"interrupted while putting the output in place: '{target}' holds the new output"
            + (left if old.exists() else "")
        )


@contextmanager
def atomic_output(
    out: str | Path,
    *,
    overwrite: bool = False,
    inputs: Iterable[Path] = (),
    notify: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; move it to ``out`` when the block succeeds.

    The temporary folder is ``.NAME.tmp-PID-TAG``; a failure in the block, Ctrl+C included,
    removes it and leaves ``out`` as it was. Replacing an old output (``overwrite``) renames
    it to ``.NAME.old-PID-TAG``, renames the new one into place, then removes the old one;
    SIGINT and SIGTERM are held back meanwhile (in the main thread), so ``out`` is always
    either the old output or the new one. Once the new one is in place the work counts as
    done: a Ctrl+C from then on raises nothing (a Ctrl+C during the removal stops it and
    leaves the rest to the next run), SIGTERM is delivered again afterwards, and ``notify``
    hears about it. Leftovers of interrupted runs beside ``out`` are removed first (see
    :func:`remove_stale`); ``notify`` gets a note naming them.
    """
    target = check_output(Path(out), overwrite=overwrite, inputs=inputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    stale = remove_stale(target)
    if stale and notify is not None:
        names = ", ".join(f"'{p.name}'" for p in stale)
        notify(f"removed {len(stale)} leftover(s) of interrupted runs beside '{target}': {names}")
    tmp = side_name(target, "tmp")
    placed = False
    try:
        tmp.mkdir()  # inside: a Ctrl+C just after it leaves no empty folder behind
        yield tmp
        _swap_into_place(tmp, target, notify)
        placed = True
    except OutputCollisionError as err:  # name the file in the output, not in tmp
        raise err.in_output(tmp, target) from err
    finally:
        if not placed:  # any failure, Ctrl+C included: leave nothing half-written behind
            shutil.rmtree(tmp, ignore_errors=True)


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2) -> None:
    """Write JSON to ``path`` through a temporary file (removed on any failure) and a rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = side_name(p, "tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=indent, ensure_ascii=False)
        os.replace(tmp, p)
    finally:  # gone after the rename; left only by a failure
        tmp.unlink(missing_ok=True)


#: What a manifest's ``dropped`` entry left out, its ``level``: ``image``, a whole image (the
#: file is not in the output); ``annotation``, one annotation of an image that may well be
#: in the output (the entry names ``annotation_id``, ``annotation_index``, ``category`` and
#: ``bbox``); ``mask``, an annotation's mask (its box is written; named the same way).
DROP_LEVELS = ("image", "annotation", "mask")


def image_drop(item: str, reason: str, **details: Any) -> dict[str, Any]:
    """A ``dropped`` entry for a whole image (``item``: its file name) left out, and why."""
    return {"item": item, "level": "image", "reason": reason, **details}


def annotation_drop(
    item: str,
    reason: str,
    ann: Annotation,
    index: int,
    category: str,
    *,
    level: str = "annotation",
    **details: Any,
) -> dict[str, Any]:
    """A ``dropped`` entry for annotation ``ann`` of image ``item`` (or, with ``level="mask"``,
    for its mask alone): the input's annotation id (None where the format has none), its
    position among the image's annotations as read, its class name and its box (XYXY pixels)."""
    return {
        "item": item,
        "level": level,
        "reason": reason,
        "annotation_id": ann.id,
        "annotation_index": index,
        "category": category,
        "bbox": [round(float(v), 3) for v in ann.bbox],
        "bbox_format": "xyxy",  # pixel corners x1, y1, x2, y2 (not COCO's x, y, w, h)
        **details,
    }


def drop_level(entry: dict[str, Any]) -> str:
    """The ``level`` of a ``dropped`` entry. Entries made without one (readers of raw sources,
    tiling) name a box when they drop an annotation, so those are ``annotation``; the rest
    (frames, clips, tiles, images) ``image``."""
    if "level" in entry:
        return str(entry["level"])
    return "annotation" if {"bbox", "box", "annotation"} & entry.keys() else "image"


def left_out_lines(dropped: Iterable[dict[str, Any]]) -> list[str]:
    """Console lines, one per level: ``left out 2 image(s): <first reason>``, then the
    annotations and masks left out, so no count mixes images with annotations."""
    by_level: dict[str, list[dict[str, Any]]] = {}
    for d in dropped:
        by_level.setdefault(drop_level(d), []).append(d)
    what = {"image": "image(s)", "annotation": "annotation(s)", "mask": "instance mask(s)"}
    order = [lv for lv in DROP_LEVELS if lv in by_level] + sorted(
        by_level.keys() - set(DROP_LEVELS)
    )
    lines = []
    for level in order:
        entries = by_level[level]
        more = len({d["reason"] for d in entries}) > 1
        lines.append(
            f"left out {len(entries)} {what.get(level, level)}: {entries[0]['reason']}"
            + (" (other reasons in manifest.json)" if more else "")
        )
    return lines


@dataclass
class Manifest:
    """What a command read, wrote, dropped or changed, and why, with counts.

    Every ``dropped`` entry says what it left out (``level``, see :data:`DROP_LEVELS`);
    ``dropped_by_level`` counts them, so images and annotations are never counted together.
    """

    command: str
    inputs: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def record_read(self, info: dict[str, Any]) -> None:
        """Add what a reader dropped or changed (``Dataset.info``) to this manifest."""
        self.dropped += info.get("dropped", [])
        self.changed += info.get("changed", [])

    def drop(self, item: str, reason: str, **details: Any) -> None:
        """Record a whole image left out of the output, and why (annotations: append an
        :func:`annotation_drop` to ``dropped``)."""
        self.dropped.append(image_drop(item, reason, **details))

    def count_dropped(self, level: str) -> int:
        """How many ``dropped`` entries are of ``level`` (see :data:`DROP_LEVELS`)."""
        return sum(drop_level(d) == level for d in self.dropped)

    def change(self, item: str, what: str, **details: Any) -> None:
        """Record an item written differently from how it was read."""
        self.changed.append({"item": item, "change": what, **details})

    def to_dict(self) -> dict[str, Any]:
        from curate import __version__

        return {
            "tool": "sodkit",
            "version": __version__,
            "command": self.command,
            "argv": sys.argv,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "inputs": self.inputs,
            "options": self.options,
            "counts": self.counts,
            "dropped_by_level": dict(Counter(drop_level(d) for d in self.dropped)),
            "dropped_by_reason": dict(Counter(d["reason"] for d in self.dropped)),
            "skipped_by_kind": dict(Counter(s.get("kind", "error") for s in self.skipped)),
            "dropped": [{"item": d.get("item"), "level": drop_level(d), **d} for d in self.dropped],
            "changed": self.changed,
            "skipped": self.skipped,
            "outputs": self.outputs,
            **self.extra,
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        write_json_atomic(path, self.to_dict())
        return path
