"""One executor abstraction for the heavy map steps (decode, signatures, tiles).

``make_executor(workers, scheduler)`` returns:

- :class:`SerialExecutor` for ``workers == 1`` (debugging, tiny inputs);
- :class:`ProcessExecutor`, a local process pool, by default;
- :class:`DaskExecutor` when ``scheduler`` is a Dask address (``tcp://host:port``) or a
  ``distributed.Client``.

All three have the same ``map(fn, items, chunksize=...)`` that yields results in input
order, so results never depend on where they were computed. ``fn`` must be a
module-level function (picklable).

Why the local pool uses ``forkserver`` and not ``fork``: forking a parent whose OpenCV,
OpenMP or BLAS thread pools are running copies their locks but not their threads, and a
child that then touches the pool (``cv2.setNumThreads`` did) can hang for good. The fork
server is a clean, single-threaded process started once per parent; it imports NumPy,
OpenCV and Pillow once (``_PRELOAD``), so each worker forks from it ready to work. As with
``spawn`` (and Python 3.14's default), workers import the caller's main module, so scripts
that start pools need the ``if __name__ == "__main__":`` guard. Each worker then limits its native thread pools to one thread
(:func:`_limit_native_threads`), so N workers keep N cores busy rather than fighting.
Where there is no fork server (Windows), workers are spawned.

What it costs, measured on 2 cores: mapping ``read_reduced(path, 128)`` over 979 JPEGs
takes 0.41 s on a warm pool with either method (0.63 s serially); a pool of 2 starts in
about 30 ms instead of 10 ms (110 ms without the preload, 170-210 ms with spawn). The
first pool of a process waits for the server's imports (about 0.2 s); the ``curate`` CLI
imports only the command it runs, so its workers start quickly too. On real runs that
fixed cost is noise, and a pool that cannot hang is worth it (the test suite, run
with ``fork`` in its many-threaded process, did hang). ``ProcessExecutor(start_method=
"fork")`` stays available to callers who know their process runs no native threads.

A Dask scheduler address is checked before use: a bad shape, a refused or silent address,
or a port that does not speak Dask (the dashboard's 8787, say) is a :class:`UsageError`
after about ``connect_timeout`` seconds (10 by default, ``SODKIT_SCHEDULER_TIMEOUT`` to
change it), never a traceback or a hang.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from typing_extensions import Self

from curate.core.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")

# Imported once by the fork server, so workers start with them loaded. Not ``__main__``
# (multiprocessing's default): the server would run a user's script, and a script without
# an ``if __name__ == "__main__":`` guard would fail there with a traceback.
_PRELOAD = (
    "numpy",
    "cv2",
    "PIL.Image",
    "threadpoolctl",
    "curate.core.imageio",
    __name__,
)
# Native thread pools read these when they load; workers set them to 1.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

DEFAULT_CONNECT_TIMEOUT = 10.0
TIMEOUT_ENV = "SODKIT_SCHEDULER_TIMEOUT"
_SCHEMES = ("tcp", "tls", "inproc")
_SCHEDULER_HINT = (
    "is `dask scheduler` running there? It listens on port 8786, its dashboard on 8787; "
    "or leave out --scheduler to run on local processes"
)


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


def _limit_native_threads(forked: bool = False) -> None:
    """Worker initializer: one thread for OpenCV, OpenMP and BLAS in this worker.

    ``forked``: the worker is a plain ``fork`` of a parent that may run native thread
    pools; touching them there can hang, so only the environment is set.
    """
    for var in _THREAD_ENV:  # for libraries this worker loads later
        os.environ[var] = "1"
    if forked:
        return
    import cv2

    cv2.setNumThreads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not a dependency of ours; without it BLAS keeps its own count
        return
    threadpool_limits(1)  # NumPy's BLAS, loaded in the fork server before the variables


def _pool_context(method: str | None) -> BaseContext:
    """``forkserver`` (preloading :data:`_PRELOAD`) where the platform has it, else ``spawn``."""
    available = mp.get_all_start_methods()
    method = method or ("forkserver" if "forkserver" in available else "spawn")
    if method not in available:
        raise ValueError(f"start method {method!r} is not available here (one of {available})")
    ctx = mp.get_context(method)
    if method == "forkserver":
        # Takes effect when this process starts its fork server (once); harmless after.
        ctx.set_forkserver_preload(list(_PRELOAD))
    return ctx


class ProcessExecutor(_Base):
    """A local process pool: workers fork from a clean fork server, one native thread each.

    ``start_method`` overrides the choice (``"fork"``, ``"spawn"``; for tests and benchmarks).
    """

    name = "processes"

    def __init__(self, workers: int | None = None, *, start_method: str | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        ctx = _pool_context(start_method)
        self.start_method = ctx.get_start_method()
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_limit_native_threads,
            initargs=(self.start_method == "fork",),
        )
        if self.start_method == "forkserver":
            # Start the server now (it returns at once): its imports overlap with whatever
            # the caller does before the first map, instead of delaying that map.
            from multiprocessing import forkserver

            forkserver.ensure_running()

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


def connect_timeout_default() -> float:
    """Seconds to wait for a Dask scheduler: ``$SODKIT_SCHEDULER_TIMEOUT``, else 10."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{TIMEOUT_ENV}={raw!r}: must be a number of seconds above 0")
    return value


def check_scheduler_address(address: str) -> str:
    """Return ``address`` if it has the shape ``tcp://host:port``, ``tls://...`` or ``inproc://...``."""
    if "://" not in address:
        raise UsageError(
            f"--scheduler {address!r}: the address needs a protocol, e.g. tcp://{address}"
        )
    parts = urlsplit(address)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or not parts.netloc:
        raise UsageError(
            f"--scheduler {address!r}: not a Dask scheduler address "
            "(expected tcp://HOST:PORT, tls://HOST:PORT or inproc://...; e.g. tcp://10.0.0.5:8786)"
        )
    if scheme != "inproc":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise UsageError(
                f"--scheduler {address!r}: needs a host and a port (1-65535), "
                f"e.g. {scheme}://{parts.hostname or '10.0.0.5'}:8786"
            )
    return address


async def _handshake(address: str, timeout: float) -> None:
    from distributed.comm import connect
    from distributed.security import Security

    args = Security().get_connection_args("client")
    # distributed's connect retries until ``timeout``, but then waits for the handshake
    # without one: a port that accepts and never answers (an HTTP server) hangs it forever.
    comm = await asyncio.wait_for(connect(address, timeout=timeout, **args), timeout + 1)
    await comm.close()


def _why(address: str, exc: BaseException) -> str:
    """A few words on why no Dask scheduler answered at ``address`` ("connection refused")."""
    # distributed keeps only its last attempt's error, often one cut short by its own
    # deadline; a plain TCP connect names the reason (refused, unknown host) for sure.
    parts = urlsplit(address)
    if parts.scheme.lower() in ("tcp", "tls") and parts.hostname and parts.port:
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=1.0):
                pass
        except OSError as err:
            return (err.strerror or str(err) or "timed out").lower()
        return "the port takes connections but does not answer as a Dask scheduler"
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else "no answer"


def _probe_scheduler(address: str, timeout: float) -> None:
    """Raise :class:`UsageError` unless a Dask scheduler answers at ``address`` in time."""
    # On a thread of its own: the caller may already run an event loop (a notebook).
    with ThreadPoolExecutor(1, thread_name_prefix="sodkit-probe") as pool:
        try:
            pool.submit(asyncio.run, _handshake(address, timeout)).result()
        # A port that does not speak Dask can send back anything, and decoding it fails in
        # odd ways (a MemoryError for a garbage frame length was seen), hence the wide net.
        except (asyncio.TimeoutError, OSError, ValueError, TypeError, MemoryError) as exc:
            raise UsageError(
                f"cannot reach the Dask scheduler at {address} within {timeout:g} s: "
                f"{_why(address, exc)} ({_SCHEDULER_HINT})"
            ) from exc


class DaskExecutor(_Base):
    """Runs chunks on a Dask distributed cluster.

    ``scheduler`` is an address (``tcp://host:port``, ``tls://...``, ``inproc://...``) or a
    ``distributed.Client``, used as is and left open. An address that is malformed or where
    no scheduler answers within ``connect_timeout`` seconds (default
    :func:`connect_timeout_default`) is a :class:`UsageError`.
    """

    name = "dask"

    def __init__(self, scheduler: Any, *, connect_timeout: float | None = None) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise UsageError(
                "--scheduler needs Dask distributed: pip install 'dask[distributed]'"
            ) from exc

        if isinstance(scheduler, Client):
            self._client = scheduler
            self._owned = False
        elif isinstance(scheduler, str):
            address = check_scheduler_address(scheduler)
            timeout = connect_timeout if connect_timeout is not None else connect_timeout_default()
            if not address.lower().startswith("inproc://"):
                _probe_scheduler(address, timeout)
            try:
                self._client = Client(address, timeout=timeout)
            except (OSError, ValueError) as exc:
                raise UsageError(
                    f"cannot connect to the Dask scheduler at {address}: {_why(address, exc)} "
                    f"({_SCHEDULER_HINT})"
                ) from exc
            self._owned = True
        else:
            raise UsageError(
                f"scheduler {scheduler!r}: expected an address such as tcp://host:8786 "
                "or a distributed.Client"
            )
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
