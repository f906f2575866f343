"""One executor abstraction for the heavy map steps (decode, signatures, tiles).

``make_executor(workers, scheduler)`` returns:

- :class:`SerialExecutor` for ``workers == 1`` (debugging, tiny inputs);
- :class:`ProcessExecutor`, a local process pool, by default;
- :class:`DaskExecutor` when ``scheduler`` is a Dask address (``tcp://host:port``) or a
  ``distributed.Client``.

All three have the same ``map(fn, items, chunksize=...)`` that yields results in input
order, so results never depend on where they were computed. ``fn`` must be a
module-level function (picklable).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol, TypeVar

from typing_extensions import Self

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Maps a picklable function over items, yielding results in input order."""

    name: str

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, chunksize: int | None = None
    ) -> Iterator[R]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def _apply_chunk(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(x) for x in chunk]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _auto_chunksize(n: int, workers: int) -> int:
    return max(1, min(256, n // (workers * 8) or 1))


class _Base:
    name = "base"

    def close(self) -> None:
        """Release workers."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialExecutor(_Base):
    """Runs everything in this process."""

    name = "serial"

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, chunksize: int | None = None
    ) -> Iterator[R]:
        for x in items:
            yield fn(x)


class ProcessExecutor(_Base):
    """A local process pool (fork where the platform has it: no re-import per worker)."""

    name = "processes"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context(method))

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, chunksize: int | None = None
    ) -> Iterator[R]:
        size = chunksize or _auto_chunksize(len(items), self.workers)
        # Submit chunks lazily, a bounded number ahead, so memory stays flat on long inputs.
        chunks = _chunks(items, size)
        pending: list[Any] = []
        ahead = self.workers * 4
        for chunk in chunks:
            pending.append(self._pool.submit(_apply_chunk, fn, chunk))
            if len(pending) >= ahead:
                yield from pending.pop(0).result()
        for fut in pending:
            yield from fut.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(_Base):
    """Runs chunks on a Dask distributed cluster."""

    name = "dask"

    def __init__(self, scheduler: Any) -> None:
        from distributed import Client

        if isinstance(scheduler, Client):
            self._client = scheduler
            self._owned = False
        else:
            self._client = Client(scheduler)
            self._owned = True
        self.workers = max(1, sum(self._client.nthreads().values()))

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, chunksize: int | None = None
    ) -> Iterator[R]:
        size = chunksize or _auto_chunksize(len(items), self.workers)
        chunks = list(_chunks(items, size))
        ahead = self.workers * 4
        pending: list[Any] = []
        for chunk in chunks:
            pending.append(self._client.submit(_apply_chunk, fn, chunk, pure=False))
            if len(pending) >= ahead:
                yield from pending.pop(0).result()
        for fut in pending:
            yield from fut.result()

    def close(self) -> None:
        if self._owned:
            self._client.close()


def make_executor(workers: int | None = None, scheduler: Any = None) -> Executor:
    """Pick the executor: Dask when ``scheduler`` is given, serial for 1 worker, else processes."""
    if scheduler:
        return DaskExecutor(scheduler)
    if workers == 1:
        return SerialExecutor()
    return ProcessExecutor(workers)


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    executor: Executor | None = None,
    chunksize: int | None = None,
) -> Iterator[R]:
    """``executor.map`` with a serial fallback when no executor is passed."""
    seq = items if isinstance(items, Sequence) else list(items)
    ex = executor or SerialExecutor()
    return ex.map(fn, seq, chunksize=chunksize)
