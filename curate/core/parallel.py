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
change it), never a traceback or a hang. A scheduler lost during a map is one too: at once
when the client had tasks on it, else once the client gives up reconnecting (as long again).

Ctrl+C stops the local pool at once and quietly: the workers ignore SIGINT (a terminal
sends it to the whole process group; a worker that took it printed a traceback and could
die holding the pool's queue lock, hanging the others and Python's exit), and this process
cancels what is queued and terminates them (:meth:`ProcessExecutor._abort`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, ThreadPoolExecutor
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

# Seconds an interrupted pool waits for each step of its teardown (a worker to die after
# SIGTERM, then SIGKILL; the pool's manager thread to finish) before the next, harder one.
_ABORT_WAIT = 5.0

DEFAULT_CONNECT_TIMEOUT = 10.0
TIMEOUT_ENV = "SODKIT_SCHEDULER_TIMEOUT"
# Seconds between checks that the Dask client is still open while waiting for a task.
_DASK_POLL = 1.0
_SCHEMES = ("tcp", "tls", "inproc")
# What distributed logs in this process when the scheduler goes away (logger: start of the
# message): the connection closing, and the client giving up reconnecting. DaskExecutor.map
# reports that loss itself, as one error line, so these are left out while it runs.
_LOSS_LOGS = {
    "distributed.batched": "Batched Comm Closed",
    "distributed.client": "Failed to reconnect to scheduler",
}
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


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl+C back until the block is done, then raise ``KeyboardInterrupt`` as usual.

    For the steps a ``KeyboardInterrupt`` must not cut short: starting a process (one cut
    off half-started is never stopped) and stopping the pool. Processes started in the
    block inherit SIGINT blocked.
    """
    caught: list[int] = []
    old = None
    if threading.current_thread() is threading.main_thread():  # Python runs handlers there
        old = signal.getsignal(signal.SIGINT)
    if old is not None:  # None: a handler not set from Python, left alone
        signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    mask = None
    if hasattr(signal, "pthread_sigmask"):  # not on Windows
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if old is not None:
            signal.signal(signal.SIGINT, old)
            if caught:
                signal.raise_signal(signal.SIGINT)


def _limit_native_threads(forked: bool = False) -> None:
    """Worker initializer: ignore Ctrl+C, and one thread for OpenCV, OpenMP and BLAS.

    A terminal sends SIGINT to the whole process group: a worker that took it would print
    a traceback and could die holding the pool's queue lock, leaving the others waiting
    for good. The parent handles Ctrl+C and stops the workers itself (forkserver workers
    start with SIGINT blocked, see :class:`ProcessExecutor`; this covers the rest).

    ``forked``: the worker is a plain ``fork`` of a parent that may run native thread
    pools; touching them there can hang, so only the environment is set.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
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


def _cut_lock_wait(exc: RuntimeError) -> KeyboardInterrupt | None:
    """The Ctrl+C that ``exc`` stands for, if any. A ``KeyboardInterrupt`` raised while
    ``threading.Condition.wait`` takes its lock back (waiting for a chunk's result) leaves
    the lock free, and the ``with`` around the wait then raises ``RuntimeError: cannot
    release un-acquired lock`` in its place (a CI run: Ctrl+C of a busy pool ended in
    that traceback instead of 'interrupted'; 0 of 40 reruns here did)."""
    ctx = exc.__context__
    return ctx if isinstance(ctx, KeyboardInterrupt) and "lock" in str(exc) else None


class ProcessExecutor(_Base):
    """A local process pool: workers fork from a clean fork server, one native thread each.

    Ctrl+C reaches only this process: the workers ignore SIGINT (the fork server is
    started with it blocked, so its workers never see one, not even while they start).
    A ``KeyboardInterrupt`` while mapping, or any exception leaving a ``with`` block,
    cancels the queued chunks and terminates the workers instead of waiting for them;
    :meth:`close` after a normal run waits for them to finish.

    ``start_method`` overrides the choice (``"fork"``, ``"spawn"``; for tests and benchmarks).
    """

    name = "processes"

    def __init__(self, workers: int | None = None, *, start_method: str | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        ctx = _pool_context(start_method)
        self.start_method = ctx.get_start_method()
        # What _abort stops (workers, the pool's manager thread, its result queue), kept
        # from its first call: the pool forgets them at shutdown.
        self._to_stop: tuple[list[Any], Any, Any] | None = None
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=ctx,
            initializer=_limit_native_threads,
            initargs=(self.start_method == "fork",),
        )
        if self.start_method == "forkserver":
            # Start the server now (it returns at once): its imports overlap with whatever
            # the caller does before the first map, instead of delaying that map. With
            # SIGINT blocked, as the resource tracker does: a Ctrl+C during its imports
            # would print a traceback, and its workers inherit the mask from birth.
            from multiprocessing import forkserver

            with _sigint_deferred():
                forkserver.ensure_running()

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, chunksize: int | None = None
    ) -> Iterator[R]:
        size = chunksize or _auto_chunksize(len(items), self.workers)
        # Submit chunks lazily, a bounded number ahead, so memory stays flat on long inputs.
        pending: list[Future[list[R]]] = []
        ahead = self.workers * 4
        try:
            for chunk in _chunks(items, size):
                with _sigint_deferred():  # submit may start a worker
                    pending.append(self._pool.submit(_apply_chunk, fn, chunk))
                if len(pending) >= ahead:
                    yield from pending.pop(0).result()
            while pending:
                yield from pending.pop(0).result()
        except KeyboardInterrupt:
            self._abort()
            raise
        except RuntimeError as exc:
            ctrl_c = _cut_lock_wait(exc)
            if ctrl_c is None:
                raise
            self._abort()
            raise ctrl_c from None
        finally:  # an error, or a caller that stopped early: queued chunks are not wanted
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        """Wait for running chunks and stop the workers (a second Ctrl+C stops them now)."""
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:
            self._abort()
            raise

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None:
            self._abort()  # the results are not wanted: do not wait for running chunks
        else:
            self.close()

    def _abort(self) -> None:
        """Cancel queued chunks and terminate the workers now; never waits without bound.

        ``ProcessPoolExecutor`` has no public way to stop running work: it joins its workers
        at shutdown and again when Python exits, which hangs if a worker is stuck. So the
        workers are terminated here and the pool's manager thread is seen to finish.
        A Ctrl+C meanwhile is raised when it is done; calling it again is harmless.
        """
        with _sigint_deferred():
            if self._to_stop is None:
                self._to_stop = self._internals()
                self._pool.shutdown(wait=False, cancel_futures=True)
            procs, manager, results = self._to_stop
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(_ABORT_WAIT)
                if proc.is_alive():
                    proc.kill()
                    proc.join(_ABORT_WAIT)
            if results is not None:
                # Only workers write results. One killed while sending a result leaves the
                # manager reading the rest for good; with our end closed, it reads EOF.
                results._writer.close()
            if manager is not None:
                manager.join(_ABORT_WAIT)

    def _internals(self) -> tuple[list[Any], Any, Any]:
        """The pool's workers, manager thread and result queue (concurrent.futures' own)."""
        pool = self._pool
        workers = list((pool._processes or {}).values())
        return workers, pool._executor_manager_thread, pool._result_queue


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


def _refused(address: str) -> OSError | None:
    """Why nothing listens at a ``tcp://`` address (connection refused, an unknown host),
    found at once; None when something may (a silent host is left to the timeout)."""
    parts = urlsplit(address)
    if parts.scheme.lower() != "tcp" or not parts.hostname or not parts.port:
        return None
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1.0):
            return None
    except (ConnectionRefusedError, socket.gaierror) as err:
        return err
    except OSError:  # timed out, unreachable: the handshake's timeout decides
        return None


def _probe_scheduler(address: str, timeout: float) -> None:
    """Raise :class:`UsageError` unless a Dask scheduler answers at ``address`` in time
    (at once when the port refuses connections or the host is unknown)."""
    err = _refused(address)
    if err is not None:
        why = (err.strerror or str(err)).lower()
        raise UsageError(
            f"cannot reach the Dask scheduler at {address}: {why} ({_SCHEDULER_HINT})"
        ) from err
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


class _DropStartingWith(logging.Filter):
    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextlib.contextmanager
def _logs_dropped(prefixes: dict[str, str]) -> Iterator[None]:
    """Drop the records of each logger that start with its prefix ("": all), while this runs."""
    filters = {
        logging.getLogger(name): _DropStartingWith(prefix) for name, prefix in prefixes.items()
    }
    for log, keep in filters.items():
        log.addFilter(keep)
    try:
        yield
    finally:
        for log, keep in filters.items():
            log.removeFilter(keep)


class DaskExecutor(_Base):
    """Runs chunks on a Dask distributed cluster.

    ``scheduler`` is an address (``tcp://host:port``, ``tls://...``, ``inproc://...``) or a
    ``distributed.Client``, used as is and left open. An address that is malformed or where
    no scheduler answers within ``connect_timeout`` seconds (default
    :func:`connect_timeout_default`) is a :class:`UsageError`. So is a scheduler lost
    during :meth:`map`, once the client has given up reconnecting (after as long again)
    or has cancelled the run's tasks; an error the mapped function raises on a worker is
    raised as it is.
    """

    name = "dask"

    def __init__(self, scheduler: Any, *, connect_timeout: float | None = None) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise UsageError(
                "--scheduler needs Dask distributed: pip install 'dask[distributed]'"
            ) from exc

        self._timeout: float | None = None
        if isinstance(scheduler, Client):
            self._client = scheduler
            self._owned = False
            self.address = str(getattr(scheduler.scheduler, "address", "") or "its address")
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
            self._timeout = timeout
            self.address = address
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
        with _logs_dropped(_LOSS_LOGS):  # a lost scheduler is reported below, as one error
            for chunk in chunks:
                pending.append(self._submit(fn, chunk))
                if len(pending) >= ahead:
                    yield from self._result(pending.pop(0))
            while pending:
                yield from self._result(pending.pop(0))

    def _closed(self) -> bool:
        return self._client.status in ("closing", "closed")

    def _submit(self, fn: Callable[[T], R], chunk: Sequence[T]) -> Any:
        from distributed.client import ClosedClientError

        if self._closed():  # a task submitted now would never be resolved
            raise self._lost()
        try:
            return self._client.submit(_apply_chunk, fn, chunk, pure=False)
        except (ClosedClientError, CancelledError, OSError) as exc:
            raise self._lost(exc) from exc

    def _result(self, fut: Any) -> list[Any]:
        from distributed.client import ClosedClientError

        # Waits in steps: a task submitted just as the client closed is never resolved,
        # and fut.result() would wait for it for good. A client that is reconnecting is
        # waited for (it cancels the tasks it had, or gives up and closes).
        done = threading.Event()
        fut.add_done_callback(lambda _: done.set())
        while not done.wait(_DASK_POLL):
            if self._closed():
                raise self._lost()
        try:
            return fut.result()  # type: ignore[no-any-return]
        except (ClosedClientError, CancelledError, OSError) as exc:
            if fut.status == "error":
                raise  # the mapped function raised it on a worker: a real error, as it is
            raise self._lost(exc) from exc

    def _lost(self, exc: BaseException | None = None) -> UsageError:
        """The error for a task this client cannot get back: its scheduler is gone."""
        reason = getattr(exc, "reason", None)
        if isinstance(exc, CancelledError) and self._client.status == "running":
            if reason != "scheduler-connection-lost":  # cancelled on the cluster, not lost
                return UsageError(
                    f"the Dask scheduler at {self.address} cancelled a task of this run "
                    f"(reason: {reason or 'unknown'}); nothing was written"
                )
        if not self._closed():
            why = "connection closed"
        elif self._timeout is not None:  # our own client: it closed itself
            why = f"connection closed, no reconnect within {self._timeout:g} s"
        else:
            why = "its client is closed"
        return UsageError(
            f"lost the Dask scheduler at {self.address} during the run ({why}); nothing was "
            "written (rerun once it is back, or leave out --scheduler to run on local processes)"
        )

    def close(self) -> None:
        if not self._owned:
            return
        if self._client.status == "running":
            self._client.close()
            return
        # Its scheduler is lost (map said so): closing a client that is still trying to
        # reconnect makes distributed log its own teardown (CancelledError tracebacks).
        with _logs_dropped({"distributed.client": ""}):
            self._client.close()


def make_executor(workers: int | None = None, scheduler: Any = None) -> Executor:
    """Pick the executor: Dask when ``scheduler`` is given, serial for 1 worker, else processes."""
    if isinstance(scheduler, str) and not scheduler.strip():
        # (a shell variable that came out empty: running locally instead would say nothing)
        raise UsageError(
            "--scheduler is empty: give an address, e.g. tcp://10.0.0.5:8786, or leave it "
            "out to run on local processes"
        )
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
