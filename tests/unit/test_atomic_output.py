"""atomic_output and write_json_atomic: interrupts during the swap, leftovers of earlier runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from curate.core import output as O
from curate.core.output import atomic_output, write_json_atomic


def _fill(folder: Path, text: str, n: int = 3) -> None:
    for i in range(n):
        (folder / f"f{i}.txt").write_text(text)


def _old_output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    _fill(out, "old")
    return out


def _hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _signal_on_call(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, call: int, sig: int
) -> list[int]:
    """Wrap ``module.name`` so that its ``call``-th call (1-based) first raises ``sig`` at
    this process, as a Ctrl+C or a kill would; returns the list of calls seen."""
    real: Callable[..., Any] = getattr(module, name)
    calls: list[int] = []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == call:
            signal.raise_signal(sig)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_ctrl_c_between_the_renames_still_puts_the_new_output_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _old_output(tmp_path)
    notes: list[str] = []
    with atomic_output(out, overwrite=True, notify=notes.append) as tmp:
        _fill(tmp, "new")
        # Ctrl+C arrives after the old output was moved aside, before the new one is moved in.
        _signal_on_call(monkeypatch, O.os, "replace", 2, signal.SIGINT)
    monkeypatch.undo()
    assert sorted(p.read_text() for p in out.iterdir()) == ["new"] * 3
    assert len(notes) == 1 and "holds the new output" in notes[0]
    # The removal was left to the next run (the user asked to stop); it is named.
    (left,) = _hidden(tmp_path)
    assert left.startswith(f".out.old-{os.getpid()}-") and left in notes[0]


def test_ctrl_c_during_the_removal_stops_it_without_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _old_output(tmp_path)
    notes: list[str] = []
    removing: list[int] = []

    def slow_rmtree(path: Any, ignore_errors: bool = False) -> None:
        removing.append(1)
        signal.raise_signal(signal.SIGINT)  # delivered while the old output is removed
        raise AssertionError("the removal went on after Ctrl+C")

    with atomic_output(out, overwrite=True, notify=notes.append) as tmp:
        _fill(tmp, "new")
        monkeypatch.setattr(O.shutil, "rmtree", slow_rmtree)
    monkeypatch.undo()
    assert removing == [1]
    assert sorted(p.read_text() for p in out.iterdir()) == ["new"] * 3
    assert len(notes) == 1 and "next run" in notes[0]
    # Python's Ctrl+C handler is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_during_the_swap_is_delivered_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _old_output(tmp_path)
    seen: list[list[str]] = []

    def on_term(signum: int, frame: object) -> None:
        seen.append(sorted(p.read_text() for p in out.iterdir()) if out.is_dir() else [])

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with atomic_output(out, overwrite=True) as tmp:
            _fill(tmp, "new")
            _signal_on_call(monkeypatch, O.os, "replace", 1, signal.SIGTERM)
        monkeypatch.undo()
        # Delivered once, when the new output was complete, and our handler is back.
        assert seen == [["new"] * 3]
        assert signal.getsignal(signal.SIGTERM) is on_term
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_failure_in_the_block_leaves_the_old_output_and_nothing_hidden(tmp_path: Path) -> None:
    out = _old_output(tmp_path)
    with pytest.raises(KeyboardInterrupt), atomic_output(out, overwrite=True) as tmp:
        _fill(tmp, "new")
        raise KeyboardInterrupt
    assert sorted(p.read_text() for p in out.iterdir()) == ["old"] * 3
    assert _hidden(tmp_path) == []


def test_ctrl_c_right_after_the_temporary_folder_is_made_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA round 4: a Ctrl+C as the temporary folder appeared left it behind, empty."""
    out = _old_output(tmp_path)
    real = O.side_name

    class Interrupting(type(tmp_path)):  # type: ignore[misc]
        def mkdir(self, *args: Any, **kwargs: Any) -> None:
            super().mkdir(*args, **kwargs)
            raise KeyboardInterrupt

    def side_name(target: Path, kind: str) -> Path:
        return Interrupting(real(target, kind))

    monkeypatch.setattr(O, "side_name", side_name)
    with pytest.raises(KeyboardInterrupt), atomic_output(out, overwrite=True):
        pytest.fail("the block must not start")
    assert sorted(p.read_text() for p in out.iterdir()) == ["old"] * 3
    assert _hidden(tmp_path) == []


def test_swap_from_a_worker_thread(tmp_path: Path) -> None:
    """Signal handlers can only be set in the main thread: elsewhere the swap just runs."""
    out = _old_output(tmp_path)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with atomic_output(out, overwrite=True) as tmp:
                _fill(tmp, "new")
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == []
    assert sorted(p.read_text() for p in out.iterdir()) == ["new"] * 3
    assert _hidden(tmp_path) == []


def test_leftovers_of_dead_runs_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getpid()
    names = {
        f".out.tmp-{dead}-0123abcd": "dead tmp",
        f".out.old-{dead}-4567cdef": "dead old",
        f".out.tmp-{live}-89abcdef": "live",
        ".out.old-deadbeef": "pre-PID, 2 days old",
        ".out.tmp-feedface": "pre-PID, fresh",
        f".other.tmp-{dead}-0123abcd": "another output's",
        f".out.tmp-{dead}-notatag": "not our name",
    }
    for name in names:
        (tmp_path / name).mkdir()
        _fill(tmp_path / name, "x", 1)
    (tmp_path / f".out.json.tmp-{dead}-0123abcd").write_text("{")  # another target's file
    two_days = time.time() - 2 * 86400
    os.utime(tmp_path / ".out.old-deadbeef", (two_days, two_days))
    notes: list[str] = []
    with atomic_output(tmp_path / "out", notify=notes.append) as tmp:
        _fill(tmp, "new")
    removed = {f".out.tmp-{dead}-0123abcd", f".out.old-{dead}-4567cdef", ".out.old-deadbeef"}
    assert set(_hidden(tmp_path)) == {*names, f".out.json.tmp-{dead}-0123abcd"} - removed
    assert len(notes) == 1 and all(n in notes[0] for n in removed)
    assert O.remove_stale(tmp_path / "out") == []  # nothing more to do


def test_write_json_atomic_removes_its_temp_file_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half_dump(data: Any, fh: Any, **kwargs: Any) -> None:
        fh.write('{"half": ')
        raise KeyboardInterrupt

    monkeypatch.setattr(O.json, "dump", half_dump)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(tmp_path / "r.json", {"a": 1})
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
