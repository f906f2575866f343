"""New cache records are stored in batches while a pass runs, so an interrupted run keeps
what it computed (the QA saw a Ctrl+C 4 s into a 10,079-image run leave the cache empty)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from dedupe_helpers import make_scene, save

from curate.core.parallel import SerialExecutor
from curate.dedupe import signatures as G

T = TypeVar("T")
R = TypeVar("R")

PARAMS = G.SignatureParams()
N, K = 10, 7  # images; results a run gets before its Ctrl+C


def _rows(db: Path, table: str) -> int:
    """Rows committed to ``table`` of ``db``, as another process would see them."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:  # the table is not made yet
        return 0
    finally:
        conn.close()


class _CtrlC(SerialExecutor):
    """Yields ``k`` results, then raises ``KeyboardInterrupt`` as a Ctrl+C in the pool's map
    does. Just before, it waits (up to 5 s) for ``want`` rows to be committed to ``table``
    of ``db``, what a kill at that moment would leave, and keeps the count in ``stored``."""

    def __init__(self, k: int, db: Path, table: str, want: int) -> None:
        self.k, self.db, self.table, self.want = k, db, table, want
        self.stored = -1

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, chunksize: int | None = None
    ) -> Iterator[R]:
        for n, x in enumerate(items):
            if n == self.k:
                deadline = time.monotonic() + 5
                while _rows(self.db, self.table) < self.want and time.monotonic() < deadline:
                    time.sleep(0.01)
                self.stored = _rows(self.db, self.table)
                raise KeyboardInterrupt
            yield fn(x)


class _Counting(SerialExecutor):
    def __init__(self) -> None:
        self.mapped = 0

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, chunksize: int | None = None
    ) -> Iterator[R]:
        self.mapped += len(items)
        return super().map(fn, items)


def _batches(monkeypatch: pytest.MonkeyPatch, rows: int, seconds: float) -> None:
    """Store every ``rows`` rows or ``seconds``, whichever first (small and exact for tests)."""
    monkeypatch.setattr(G, "STORE_ROWS", rows, raising=False)
    monkeypatch.setattr(G, "STORE_SECONDS", seconds, raising=False)


def _images(tmp_path: Path, rng: np.random.Generator) -> list[Path]:
    return [save(make_scene(rng), tmp_path / f"{k}.png") for k in range(N)]


# (rows per batch, seconds per batch, rows committed after K results): by count, by time.
BATCHES = [(3, 3600.0, K // 3 * 3), (1000, 0.0, K)]


@pytest.mark.parametrize(("rows", "seconds", "committed"), BATCHES)
def test_interrupted_extraction_keeps_its_signatures(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    rows: int,
    seconds: float,
    committed: int,
) -> None:
    _batches(monkeypatch, rows, seconds)
    paths = _images(tmp_path, rng)
    folder = tmp_path / "cache"
    db = folder / f"signatures-{PARAMS.tag}.sqlite"
    cache = G.SignatureCache(folder)
    stop = _CtrlC(K, db, "sig", committed)
    with pytest.raises(KeyboardInterrupt):
        G.extract_signatures(paths, PARAMS, executor=stop, cache=cache)
    # The batches done before the Ctrl+C were committed during the pass (a kill keeps them);
    # the rest of what was computed is stored as the interrupt goes by.
    assert stop.stored == committed
    cache.close()
    assert _rows(db, "sig") == K

    computed: list[str] = []
    real = G.compute_signature

    def counted(path: str | Path, *args: object, **kw: object) -> G.Signature:
        computed.append(Path(path).name)
        return real(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(G, "compute_signature", counted)
    again = G.SignatureCache(folder)
    ext = G.extract_signatures(paths, PARAMS, cache=again)
    again.close()
    assert ext.cache_hits == K  # the rerun resumes where the first one stopped
    assert computed == [p.name for p in paths[K:]]
    assert all(s is not None for s in ext.signatures) and _rows(db, "sig") == N


@pytest.mark.parametrize(
    ("compute", "tag", "table", "get"),
    [
        (G.compute_pixel_hashes, G.PIXELS_TAG, "pix", G.SignatureCache.get_pixel_hashes),
        (G.compute_sharpness, G.SHARPNESS_TAG, "sharp", G.SignatureCache.get_sharpness),
    ],
    ids=["pixel hashes", "sharpness"],
)
def test_interrupted_pixel_hashes_and_sharpness_are_kept(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
    compute: Callable[..., dict[str, object]],
    tag: str,
    table: str,
    get: Callable[[G.SignatureCache, Sequence[str]], dict[str, object]],
) -> None:
    _batches(monkeypatch, 3, 3600.0)
    paths = _images(tmp_path, rng)
    items = [(str(p), G.hash_file(p)) for p in paths]
    folder = tmp_path / "cache"
    db = folder / f"signatures-{tag}.sqlite"
    cache = G.SignatureCache(folder)
    stop = _CtrlC(K, db, table, K // 3 * 3)
    with pytest.raises(KeyboardInterrupt):
        compute(items, executor=stop, cache=cache)
    assert stop.stored == K // 3 * 3
    cache.close()
    again = G.SignatureCache(folder)
    assert sorted(get(again, [h for _, h in items])) == sorted(h for _, h in items[:K])
    counting = _Counting()
    out = compute(items, executor=counting, cache=again)
    again.close()
    assert counting.mapped == N - K and len(out) == N
    assert _rows(db, table) == N


def test_batches_without_a_cache(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _batches(monkeypatch, 2, 0.0)
    paths = _images(tmp_path, rng)
    ext = G.extract_signatures(paths, PARAMS)
    assert all(s is not None for s in ext.signatures) and ext.cache_hits == 0
    items = [(str(p), s.content_hash) for p, s in zip(paths, ext.signatures, strict=True) if s]
    assert len(G.compute_sharpness(items)) == N


class _CtrlCAtRegions(SerialExecutor):
    """Runs every pass, but the object-region pass yields ``k`` results and then raises
    ``KeyboardInterrupt`` (a Ctrl+C while regions are cut)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, chunksize: int | None = None
    ) -> Iterator[R]:
        from curate.dedupe.roi import roi_task

        if fn is not roi_task:
            return super().map(fn, items)

        def cut() -> Iterator[R]:
            for n, x in enumerate(items):
                if n == self.k:
                    raise KeyboardInterrupt
                yield fn(x)

        return cut()


def test_interrupted_region_pass_keeps_its_crops(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dedupe_helpers import dataset, item

    from curate.dedupe import DedupeOptions, Runtime, find_duplicates

    _batches(monkeypatch, 3, 3600.0)
    ds = dataset([item(p, [(10, 10, 40, 30)]) for p in _images(tmp_path, rng)])
    folder = tmp_path / "cache"
    cache = G.SignatureCache(folder)
    with pytest.raises(KeyboardInterrupt):
        find_duplicates(
            ds,
            DedupeOptions(roi="objects"),
            runtime=Runtime(executor=_CtrlCAtRegions(K), cache=cache),
        )
    cache.close()
    assert _rows(folder / "signatures-regions.sqlite", "roi") == K
