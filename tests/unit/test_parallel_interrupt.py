"""Ctrl+C and errors while the local process pool works: one clean stop, never a hang.

A terminal sends SIGINT to the whole process group. The scenarios run in a child Python
in a session of its own, so that a hang is a timeout here (not a stuck test run) and every
process it left behind can be found (and ended) by its session id. The mapped functions
are builtins (``time.sleep``, ``abs``, ``bytes``): workers need nothing importable.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import curate
from curate.core.parallel import ProcessExecutor

pytestmark = [
    pytest.mark.skipif(
        "forkserver" not in mp.get_all_start_methods() or not Path("/proc").is_dir(),
        reason="needs POSIX signals, the forkserver start method and /proc",
    ),
    pytest.mark.timeout(180),
]

REPO = Path(curate.__file__).resolve().parents[1]
HANG = 60.0  # seconds: a stop that takes this long is a hang (it takes milliseconds)

# Workers block in time.sleep(BLOCK) (an hour): only a terminated pool stops that soon.
_PRELUDE = """
import os, signal, sys, threading, time
from curate.core.parallel import ProcessExecutor
BLOCK = 3600
"""

SCENARIOS = {
    # Both workers busy with chunks that take an hour; the first result is back at once.
    "busy": """
        with ProcessExecutor(2) as ex:
            results = ex.map(time.sleep, [0] + [BLOCK] * 12, chunksize=1)
            next(results)
            print("ready", flush=True)
            for _ in results:
                pass
    """,
    # Workers idle, waiting on the pool's queue (where they printed tracebacks and could
    # die holding its lock); this process sleeps.
    "idle": """
        with ProcessExecutor(2) as ex:
            assert list(ex.map(abs, [-1, -2, -3, -4], chunksize=1)) == [1, 2, 3, 4]
            print("ready", flush=True)
            time.sleep(BLOCK)
    """,
}

# A worker stopped halfway through sending a 128 MiB result: the pool's manager thread
# waits for the rest of it for good unless the teardown ends that wait.
MID_SEND = """
    MiB = 2**20

    def stop_worker_mid_send():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for frame in sys._current_frames().values():
                if frame.f_code.co_name == "_recv" and frame.f_locals.get("remaining", 0) > 32 * MiB:
                    for child in __import__("multiprocessing").active_children():
                        os.kill(child.pid, signal.SIGSTOP)
                    print("ready", flush=True)
                    os.kill(os.getpid(), signal.SIGINT)
                    return
            time.sleep(0.0002)
        print("never caught a result being sent", flush=True)
        os._exit(3)

    with ProcessExecutor(1) as ex:
        assert list(ex.map(abs, [-1])) == [1]  # the worker is up
        threading.Thread(target=stop_worker_mid_send, daemon=True).start()
        for _ in ex.map(bytes, [128 * MiB]):
            pass
"""


def _script(body: str) -> str:
    body = textwrap.indent(textwrap.dedent(body), "    ")
    return (
        _PRELUDE
        + "try:\n"
        + body
        + "except KeyboardInterrupt:\n"
        + "    print('interrupted', file=sys.stderr)\n"
        + "    sys.exit(130)\n"
    )


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (they keep it when orphaned)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def _left_behind(sid: int, wait: float = 10.0) -> list[int]:
    """Processes of session ``sid`` still there after ``wait`` seconds (the fork server and
    the resource tracker leave a moment after the process that started them)."""
    deadline = time.monotonic() + wait
    while (left := _session(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _run(script: str, send_sigint: bool) -> tuple[int, str]:
    """Run ``script`` in a new session; once it prints ``ready``, Ctrl+C its process group
    (if ``send_sigint``). Returns (exit code, stderr); fails on a hang or a leftover."""
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "NO_ALBUMENTATIONS_UPDATE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # the script prints it within seconds, or exits
        assert ready == "ready\n", f"{ready!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
        if send_sigint:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {HANG:g} s after Ctrl+C: the pool hangs")
        left = _left_behind(proc.pid)
        assert not left, f"processes left behind: {left}"
        return proc.returncode, err
    finally:
        for pid in _session(proc.pid):  # only ever the processes this test started
            os.kill(pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_ctrl_c_stops_the_pool_at_once_without_worker_tracebacks(scenario: str) -> None:
    code, err = _run(_script(SCENARIOS[scenario]), send_sigint=True)
    assert (code, err) == (130, "interrupted\n")


def test_a_worker_stopped_while_sending_a_result_does_not_hang_the_teardown() -> None:
    code, err = _run(_script(MID_SEND), send_sigint=False)
    assert (code, err) == (130, "interrupted\n")


def test_an_error_in_the_with_block_stops_busy_workers_without_waiting() -> None:
    before = set(mp.active_children())
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the caller failed"), ProcessExecutor(2) as ex:
        results = ex.map(time.sleep, [0, 600, 600, 600], chunksize=1)
        next(results)
        workers = set(mp.active_children()) - before
        raise RuntimeError("the caller failed")
    assert time.monotonic() - started < HANG  # not the 600 s the running chunks take
    assert workers and not any(p.is_alive() for p in workers)


def test_a_normal_close_lets_the_workers_finish_and_exit() -> None:
    before = set(mp.active_children())
    with ProcessExecutor(2) as ex:
        assert list(ex.map(abs, list(range(-20, 0)), chunksize=3)) == list(range(20, 0, -1))
        workers = set(mp.active_children()) - before
    assert workers and [p.exitcode for p in workers] == [0] * len(workers)  # not terminated


def test_a_consumer_that_stops_early_leaves_the_pool_usable() -> None:
    with ProcessExecutor(1) as ex:
        results = ex.map(time.sleep, [0] + [0.05] * 20, chunksize=1)
        next(results)
        results.close()  # its queued chunks are cancelled
        assert list(ex.map(abs, [-7])) == [7]


def test_ctrl_c_while_a_result_wait_takes_its_lock_back_is_a_ctrl_c(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt inside ``Condition.wait`` as it re-takes its lock leaves the lock
    free, and the ``with`` around the wait raises ``RuntimeError: cannot release
    un-acquired lock`` in its place (a CI run printed that traceback after Ctrl+C). The
    pool stops and the caller gets the KeyboardInterrupt."""
    from concurrent.futures import Future

    def cut_wait(self: Future, timeout: float | None = None) -> object:  # type: ignore[type-arg]
        try:
            raise KeyboardInterrupt
        finally:
            raise RuntimeError("cannot release un-acquired lock")

    before = set(mp.active_children())
    with ProcessExecutor(2) as ex:
        results = ex.map(time.sleep, [0, 600, 600], chunksize=1)
        next(results)
        workers = set(mp.active_children()) - before
        monkeypatch.setattr(Future, "result", cut_wait)
        with pytest.raises(KeyboardInterrupt):
            next(results)
        monkeypatch.undo()
    assert workers and not any(p.is_alive() for p in workers)
    # Any other RuntimeError stays what it is.
    with ProcessExecutor(1) as ex:
        monkeypatch.setattr(Future, "result", lambda self, timeout=None: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            next(ex.map(abs, [-1]))
        monkeypatch.undo()
