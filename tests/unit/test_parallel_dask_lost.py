"""A Dask scheduler lost while ``DaskExecutor.map`` runs is one clear error, not a bug.

An in-process cluster on TCP (so the client really loses a connection) is closed in the
middle of a map. Errors the mapped function raises on a worker stay what they are.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

import pytest

from curate.core.errors import UsageError
from curate.core.parallel import DaskExecutor

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(60)

RECONNECT = 2.0  # seconds the client tries to reconnect (DaskExecutor's connect timeout)


@pytest.fixture
def cluster() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        processes=False,
        n_workers=1,
        threads_per_worker=2,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=":0",
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def dask_logs() -> Iterator[list[logging.LogRecord]]:
    """What distributed logs, as its own handler (on the ``distributed`` logger) gets it."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("distributed")
    log.addHandler(handler)
    try:
        yield records
    finally:
        log.removeHandler(handler)


def test_a_scheduler_lost_while_mapping_is_one_clear_usage_error(
    cluster: Any, dask_logs: list[logging.LogRecord]
) -> None:
    address = cluster.scheduler_address
    ex = DaskExecutor(address, connect_timeout=RECONNECT)
    results = ex.map(time.sleep, [0.05] * 400, chunksize=1)
    next(results)
    cluster.close()  # the scheduler and its worker go away with most chunks still to run
    with pytest.raises(UsageError) as info:
        for _ in results:
            pass
    ex.close()

    msg = str(info.value)
    assert msg.startswith(f"lost the Dask scheduler at {address} during the run (connection")
    assert "nothing was written" in msg and "leave out --scheduler" in msg and "\n" not in msg
    assert isinstance(info.value.__cause__, (CancelledError, OSError))  # kept for SODKIT_DEBUG
    said = [
        f"{r.name}: {r.getMessage()}"
        for r in dask_logs
        if r.name in ("distributed.client", "distributed.batched")
        and (r.levelno >= logging.WARNING or r.exc_info)
    ]
    assert said == []  # the error above says it all: no reconnect failure, no traceback


def test_a_map_after_the_scheduler_is_gone_fails_the_same_way(cluster: Any) -> None:
    address = cluster.scheduler_address
    ex = DaskExecutor(address, connect_timeout=RECONNECT)
    assert list(ex.map(abs, [-1])) == [1]
    cluster.close()
    lost = f"^lost the Dask scheduler at {re.escape(address)} during the run"
    with pytest.raises(UsageError, match=lost):  # the client waits for it to come back
        list(ex.map(abs, [-1, -2]))
    with pytest.raises(UsageError, match=lost) as info:  # it has given up: closed
        list(ex.map(abs, [-1, -2]))
    assert f"no reconnect within {RECONNECT:g} s" in str(info.value)
    ex.close()


def test_errors_the_mapped_function_raises_on_a_worker_stay_what_they_are(cluster: Any) -> None:
    with DaskExecutor(cluster.scheduler_address, connect_timeout=RECONNECT) as ex:
        with pytest.raises(ValueError, match="invalid literal"):
            list(ex.map(int, ["1", "x"], chunksize=1))
        # An OSError from the function is the function's, not a lost connection.
        with pytest.raises(FileNotFoundError):
            list(ex.map(os.stat, [os.path.join(os.sep, "no", "such", "file")]))
        assert list(ex.map(abs, [-3, 4])) == [3, 4]  # the client is still fine
