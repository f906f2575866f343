"""Executors: the local pool's start method and thread limits, Dask address checks.

This module imports nothing heavy at the top: workers import it to find the mapped
functions, and the preload test needs to see what the fork server loaded, not what this
module pulled in.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from curate.core.errors import UsageError
from curate.core.parallel import (
    DEFAULT_CONNECT_TIMEOUT,
    TIMEOUT_ENV,
    DaskExecutor,
    ProcessExecutor,
    SerialExecutor,
    connect_timeout_default,
    make_executor,
    parallel_map,
)

# Not "fork": forking this many-threaded test process is the very hang the pool avoids
# (its workers were seen stuck on an inherited lock when the whole suite ran).
METHODS = [m for m in ("forkserver", "spawn") if m in mp.get_all_start_methods()]


def _square(x: int) -> int:
    return x * x


def _worker_state(_: int) -> dict[str, Any]:
    """What a worker looks like from inside, before it imports anything itself."""
    preloaded = {m: m in sys.modules for m in ("numpy", "cv2", "PIL.Image", "curate.core.imageio")}
    import cv2

    state: dict[str, Any] = {
        "pid": os.getpid(),
        "preloaded": preloaded,
        "cv2_threads": cv2.getNumThreads(),
        "env": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return state
    state["blas_threads"] = [lib["num_threads"] for lib in threadpool_info()]
    return state


@pytest.mark.parametrize("method", METHODS)
def test_pool_keeps_input_order_with_every_start_method(method: str) -> None:
    items = list(range(103))
    with ProcessExecutor(2, start_method=method) as ex:
        assert ex.start_method == method
        assert list(ex.map(_square, items, chunksize=5)) == [x * x for x in items]
        assert list(ex.map(_square, [])) == []


def test_default_pool_forks_from_a_preloaded_server_with_one_thread_per_worker() -> None:
    if "forkserver" not in mp.get_all_start_methods():
        pytest.skip("no forkserver start method on this platform (spawn is used)")
    with ProcessExecutor(2) as ex:
        assert ex.start_method == "forkserver"
        states = list(ex.map(_worker_state, range(8), chunksize=1))
    assert all(s["pid"] != os.getpid() for s in states)
    for s in states:
        assert all(s["preloaded"].values()), s["preloaded"]
        assert s["cv2_threads"] == 1
        assert s["env"] == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        assert set(s.get("blas_threads", [1])) == {1}


def test_the_parent_keeps_its_own_thread_settings() -> None:
    before = os.environ.get("OMP_NUM_THREADS")
    with ProcessExecutor(2) as ex:
        list(ex.map(_worker_state, range(2)))
    assert os.environ.get("OMP_NUM_THREADS") == before


def test_unknown_start_method_is_refused() -> None:
    with pytest.raises(ValueError, match="not available"):
        ProcessExecutor(2, start_method="teleport")


def test_make_executor_picks_by_workers_and_scheduler() -> None:
    with make_executor(1) as ex:
        assert isinstance(ex, SerialExecutor)
    with make_executor(2) as ex:
        assert isinstance(ex, ProcessExecutor) and ex.workers == 2
    with pytest.raises(UsageError, match="needs a protocol"):
        make_executor(2, "localhost:8786")


def test_parallel_map_without_executor_is_serial() -> None:
    assert list(parallel_map(_square, iter([1, 2, 3]))) == [1, 4, 9]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("localhost:8786", "needs a protocol, e.g. tcp://localhost:8786"),
        ("http://localhost:8786", "not a Dask scheduler address"),
        ("tcp://", "not a Dask scheduler address"),
        ("tcp://localhost", "needs a host and a port"),
        ("tcp://:8786", "needs a host and a port"),
        ("tls://host:99999", "needs a host and a port"),
    ],
)
def test_malformed_scheduler_address_is_a_usage_error(address: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        DaskExecutor(address, connect_timeout=0.5)
    assert address in str(info.value)


def test_a_scheduler_must_be_an_address_or_a_client() -> None:
    with pytest.raises(UsageError, match=r"expected an address such as tcp://host:8786"):
        DaskExecutor(8786)


def test_refused_scheduler_is_one_clear_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused is final: no waiting for a handshake (QA round 8: it waited the full 10 s)."""
    from curate.core import parallel

    def no_handshake(*args: object) -> None:
        raise AssertionError("a refused port needs no handshake")

    monkeypatch.setattr(parallel, "_handshake", no_handshake)
    with pytest.raises(UsageError) as info:
        DaskExecutor("tcp://127.0.0.1:1", connect_timeout=600)
    msg = str(info.value)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1: connection refused" in msg
    assert "connection refused" in msg and "dask scheduler" in msg and "\n" not in msg
    assert isinstance(info.value.__cause__, OSError)  # the cause is kept for SODKIT_DEBUG


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word (like a wrong service)."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        yield srv.getsockname()[1]


def test_a_port_that_does_not_speak_dask_does_not_hang(silent_port: int) -> None:
    with pytest.raises(UsageError, match="takes connections but does not answer as a Dask"):
        DaskExecutor(f"tcp://127.0.0.1:{silent_port}", connect_timeout=0.5)


def test_connect_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert connect_timeout_default() == DEFAULT_CONNECT_TIMEOUT
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    assert connect_timeout_default() == 2.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(UsageError, match=f"{TIMEOUT_ENV}='{bad}'"):
            connect_timeout_default()


def test_inproc_address_and_client_both_work() -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        assert cluster.scheduler_address.startswith("inproc://")
        with DaskExecutor(cluster.scheduler_address) as ex:
            assert ex.workers == 2
            assert list(ex.map(_square, list(range(20)), chunksize=3)) == [x * x for x in range(20)]
        with make_executor(scheduler=client) as ex:
            assert list(ex.map(_square, [3, 4])) == [9, 16]
        assert client.status == "running"  # a Client passed in is left open


def test_an_empty_scheduler_address_is_an_error_not_a_local_run() -> None:
    with pytest.raises(UsageError, match="--scheduler is empty"):
        make_executor(2, "")
    with pytest.raises(UsageError, match="--scheduler is empty"):
        make_executor(2, "  ")
