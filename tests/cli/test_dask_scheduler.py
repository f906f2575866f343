"""``--scheduler tcp://...`` against a real Dask scheduler and worker, each its own process.

The same command on the cluster and on a local pool (``--workers 2``) must write the same
dataset, manifest and report; a scheduler that is not there is one clear error line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

import pytest

import curate
from curate.core.parallel import TIMEOUT_ENV

from . import test_dedupe_cli, test_tile_cli
from .conftest import manifest

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("distributed") is None,
        reason="Dask distributed is not installed: --scheduler cannot be tested",
    ),
    pytest.mark.timeout(120),
]

# The datasets of the dedupe and tile CLI tests: a YOLO set with an exact copy and a
# brighter copy planted, and a COCO set with one 1500x1000 image and one small one.
data = test_dedupe_cli.data
coco_src = test_tile_cli.coco_src

REPO = Path(curate.__file__).resolve().parents[1]
START_TIMEOUT = 30.0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-15:]) if path.exists() else ""


def _scheduler_address(sched_file: Path, procs: list[subprocess.Popen[bytes]], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            pytest.fail(f"a Dask process exited while starting:\n{_tail(log)}")
        try:
            return str(json.loads(sched_file.read_text())["address"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)  # not written yet, or half written
    pytest.fail(f"no scheduler file after {START_TIMEOUT:g} s:\n{_tail(log)}")


@pytest.fixture(scope="module", autouse=True)
def _stdlib_metadata_finder_back() -> Iterator[None]:
    """Undo what importing dask does to this whole test process, once this module is done.

    On Python < 3.12 dask imports the ``importlib_metadata`` backport, which deletes the
    stdlib's ``PathFinder.find_distributions`` (importlib_metadata#91); FiftyOne's ``eta``
    then fails on import (``KeyError: 'author'``) in every later test.
    """
    saved = PathFinder.__dict__.get("find_distributions")
    yield
    if saved is not None and "find_distributions" not in PathFinder.__dict__:
        PathFinder.find_distributions = saved  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """A scheduler and one worker (2 threads) as subprocesses; yields (address, client)."""
    import distributed

    root = tmp_path_factory.mktemp("dask")
    sched_file = root / "scheduler.json"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    }
    procs: list[subprocess.Popen[bytes]] = []
    logs = [root / "scheduler.log", root / "worker.log"]
    commands = [
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--scheduler-file", str(sched_file), "--idle-timeout", "300", "--no-dashboard"],
        [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
         "--nworkers", "1", "--nthreads", "2", "--no-nanny", "--memory-limit", "0",
         "--death-timeout", "60", "--local-directory", str(root / "worker"), "--no-dashboard"],
    ]  # fmt: skip
    try:
        for cmd, log in zip(commands, logs, strict=True):
            with log.open("wb") as out:  # the child keeps its own copy of the descriptor
                procs.append(
                    subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        address = _scheduler_address(sched_file, procs, logs[0])
        with distributed.Client(address, timeout=START_TIMEOUT, set_as_default=False) as client:
            try:
                client.wait_for_workers(1, timeout=START_TIMEOUT)
            except TimeoutError:
                pytest.fail(f"the worker did not register:\n{_tail(logs[1])}")
            yield address, client
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _executed(client: Any) -> int:
    """Tasks the cluster's workers have run so far."""
    counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
    return int(sum(counts.values()))


def _files(folder: Path, *leave_out: str) -> dict[str, bytes]:
    """Every file written but the manifest (it names the output folder) and ``leave_out``."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", *leave_out)
    }


def test_dedupe_on_a_scheduler_equals_local_workers(
    run, cluster: tuple[str, Any], data: Path, tmp_path: Path
) -> None:
    address, client = cluster
    on_dask, local = tmp_path / "dask", tmp_path / "local"
    before = _executed(client)
    run("dedupe", data, "--out", on_dask, "--scheduler", address, "--no-cache", "-q")
    assert _executed(client) > before
    run("dedupe", data, "--out", local, "--workers", "2", "--no-cache", "-q")

    a, b = manifest(on_dask), manifest(local)
    assert {d["item"] for d in a["dropped"]} == {"s0_copy.jpg", "s1_bright.jpg"}
    assert a["dropped"] == b["dropped"] and a["counts"] == b["counts"]
    ra = json.loads((on_dask / "dedupe_report.json").read_text())
    rb = json.loads((local / "dedupe_report.json").read_text())
    assert len(ra["clusters"]) == 2 and ra["clusters"] == rb["clusters"]
    kept = sorted(p.name for p in on_dask.rglob("*.jpg"))
    assert kept == ["s0.jpg", "s1.jpg", "s2.jpg", "s3.jpg"]
    # Images, labels, data.yaml and the CSV; the JSON report also holds timings.
    assert _files(on_dask, "dedupe_report.json") == _files(local, "dedupe_report.json")


def test_tile_on_a_scheduler_equals_local_workers(
    run, cluster: tuple[str, Any], coco_src: Path, tmp_path: Path
) -> None:
    address, client = cluster
    on_dask, local = tmp_path / "dask", tmp_path / "local"
    opts = ("--size", "640", "--keep-empty", "0.5", "--seed", "3", "-q")
    before = _executed(client)
    run("tile", f"coco:{coco_src}", "--out", on_dask, "--scheduler", address, *opts)
    assert _executed(client) > before
    run("tile", f"coco:{coco_src}", "--out", local, "--workers", "2", *opts)
    a, b = manifest(on_dask), manifest(local)
    assert a["counts"] == b["counts"] and a["dropped"] == b["dropped"]
    assert a["counts"]["tiles"] > 2
    assert _files(on_dask) == _files(local)  # tiles byte for byte, annotations.json


@pytest.mark.parametrize("command", ["dedupe", "tile"])
def test_unreachable_scheduler_is_one_clear_line(
    run, command: str, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    out = tmp_path / "never"
    res = run(command, data, "--out", out, "--scheduler", "tcp://127.0.0.1:1", code=1)
    errors = [line for line in res.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, res.output  # tile says what it read first; nothing else
    assert errors[0].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:1")
    assert "connection refused" in errors[0] and "dask scheduler" in errors[0]
    assert not out.exists()


def test_malformed_scheduler_address_is_one_clear_line(run, data: Path, tmp_path: Path) -> None:
    res = run("dedupe", data, "--out", tmp_path / "o", "--scheduler", "localhost:8786", code=1)
    assert "needs a protocol, e.g. tcp://localhost:8786" in res.output
