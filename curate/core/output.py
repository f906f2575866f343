"""Safe output: atomic folders, refusal to overwrite, guard against writing over inputs, manifests.

Every writing command does::

    with atomic_output(out, overwrite=overwrite, inputs=[...]) as tmp:
        ...write everything under tmp...
        manifest.write(tmp)

Nothing appears at ``out`` until the block succeeds; then the temporary folder is
renamed into place (an old output, with ``--overwrite``, is removed only after that).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.core.errors import OutputExistsError, UsageError

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


@contextmanager
def atomic_output(
    out: str | Path, *, overwrite: bool = False, inputs: Iterable[Path] = ()
) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; move it to ``out`` when the block succeeds."""
    target = check_output(Path(out), overwrite=overwrite, inputs=inputs)
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = target.parent / f".{target.name}.tmp-{tag}"
    tmp.mkdir()
    done = False
    try:
        yield tmp
        done = True
    finally:
        if not done:  # any failure, Ctrl+C included: leave nothing half-written behind
            shutil.rmtree(tmp, ignore_errors=True)
    if target.exists():
        old = target.parent / f".{target.name}.old-{tag}"
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=indent, ensure_ascii=False)
    os.replace(tmp, p)


@dataclass
class Manifest:
    """What a command read, wrote, dropped or changed, and why, with counts."""

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
        """Record an item (image or annotation) left out of the output, and why."""
        self.dropped.append({"item": item, "reason": reason, **details})

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
            "dropped_by_reason": dict(Counter(d["reason"] for d in self.dropped)),
            "skipped_by_kind": dict(Counter(s.get("kind", "error") for s in self.skipped)),
            "dropped": self.dropped,
            "changed": self.changed,
            "skipped": self.skipped,
            "outputs": self.outputs,
            **self.extra,
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST_NAME
        write_json_atomic(path, self.to_dict())
        return path
