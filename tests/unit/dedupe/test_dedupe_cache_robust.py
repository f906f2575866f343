"""The signature cache when its files are read-only, not a database, or damaged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dedupe_helpers import make_scene, save

from curate.dedupe import signatures as G

PARAMS = G.SignatureParams()

# A child process that reads the cache with two workers and says what it found.
_CHILD = """
import json, sys
from pathlib import Path
from curate.core.parallel import make_executor
from curate.dedupe import signatures as G
paths = sys.argv[2:]
cache = G.SignatureCache(Path(sys.argv[1]))
with make_executor(2) as ex:
    ext = G.extract_signatures(paths, G.SignatureParams(), executor=ex, cache=cache)
    again = G.extract_signatures(paths, G.SignatureParams(), executor=ex, cache=cache)
cache.close()
print(json.dumps({"hits": [ext.cache_hits, again.cache_hits], "problem": cache.problem,
                  "ok": sum(s is not None for s in ext.signatures)}))
"""


def _images(tmp_path: Path, rng: np.random.Generator, n: int) -> list[Path]:
    return [save(make_scene(rng), tmp_path / f"{k}.png") for k in range(n)]


def _unprivileged() -> list[str]:
    """A command prefix under which permission bits apply (root ignores them): none for a
    normal user; for root, setpriv without the capabilities that override them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a folder read-only")
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr.decode().strip()}")
    return prefix


def _child_in_read_only(folder: Path, paths: list[Path]) -> dict:
    """What :data:`_CHILD` found with ``folder`` read-only (as an unprivileged user)."""
    prefix = _unprivileged()
    folder.chmod(0o555)
    try:
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", _CHILD, str(folder), *map(str, paths)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        )
    finally:
        folder.chmod(0o755)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_read_only_cache_is_read_not_ignored(tmp_path: Path, rng: np.random.Generator) -> None:
    """A shared cache the user may read but not write: hits come from it, nothing is stored
    (the QA saw it ignored, every signature recomputed)."""
    _unprivileged()  # skips before any work where permissions cannot be dropped
    paths = _images(tmp_path, rng, 6)
    folder = tmp_path / "cache"
    cache = G.SignatureCache(folder)
    G.extract_signatures(paths[:4], PARAMS, cache=cache)  # 4 of the 6 are cached
    cache.close()
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"signatures-{PARAMS.tag}.sqlite"]  # no -wal, -shm
    for f in files:
        f.chmod(0o444)
    out = _child_in_read_only(folder, paths)
    assert out["ok"] == 6
    # Read by the pool workers; the 2 new ones were not stored, so the second pass misses too.
    assert out["hits"] == [4, 4]
    assert "read-only" in out["problem"] and "not stored" in out["problem"]
    assert "not usable" not in out["problem"]
    assert sorted(folder.iterdir()) == files


def test_empty_read_only_cache_says_it_holds_nothing(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """QA round 10: an empty read-only folder was said to have its signatures used."""
    paths = _images(tmp_path, rng, 3)
    folder = tmp_path / "cache"
    folder.mkdir()
    out = _child_in_read_only(folder, paths)
    assert out["ok"] == 3 and out["hits"] == [0, 0]
    assert "holds no signatures for these settings" in out["problem"]
    assert "are used" not in out["problem"]
    assert list(folder.iterdir()) == []


def test_garbage_file_is_moved_aside_and_rebuilt(tmp_path: Path, rng: np.random.Generator) -> None:
    paths = _images(tmp_path, rng, 3)
    folder = tmp_path / "cache"
    folder.mkdir()
    db = folder / f"signatures-{PARAMS.tag}.sqlite"
    db.write_text("not a database")
    cache = G.SignatureCache(folder)
    first = G.extract_signatures(paths, PARAMS, cache=cache)
    assert all(s is not None for s in first.signatures)
    assert cache.problem is not None and "moved to" in cache.problem and str(db) in cache.problem
    cache.close()
    (aside,) = (p for p in folder.iterdir() if ".corrupt-" in p.name)
    assert aside.name.startswith(f"{db.name}.corrupt-") and aside.read_text() == "not a database"
    # The fresh file took the new signatures: the next run is all hits, with nothing to say.
    again = G.SignatureCache(folder)
    assert G.extract_signatures(paths, PARAMS, cache=again).cache_hits == 3
    assert again.problem is None
    again.close()


def test_garbage_file_that_cannot_be_moved_is_named_for_deletion(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _images(tmp_path, rng, 2)
    folder = tmp_path / "cache"
    folder.mkdir()
    db = folder / f"signatures-{PARAMS.tag}.sqlite"
    db.write_text("not a database")
    real_replace = os.replace

    def refuse(src: object, dst: object) -> None:
        if Path(str(src)).parent == folder:
            raise PermissionError(13, "Permission denied", str(src))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(G.os, "replace", refuse)
    cache = G.SignatureCache(folder)
    ext = G.extract_signatures(paths, PARAMS, cache=cache)
    cache.close()
    assert all(s is not None for s in ext.signatures)
    assert cache.problem is not None
    assert str(db) in cache.problem and "delete it" in cache.problem
    assert db.read_text() == "not a database"


def _zero_pages(db: Path, first: int, count: int) -> None:
    """Overwrite ``count`` pages of 4 KiB from page ``first`` with zeros, the header kept
    (what a failing disk or an interrupted copy leaves): the file still opens."""
    with db.open("r+b") as f:
        f.seek(first * 4096)
        f.write(b"\0" * (count * 4096))


def test_file_damaged_inside_is_moved_aside_once_a_write_fails(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """QA round 10: with pages zeroed the file opened and most records read, but every
    write failed; each run said 'running without it', stored nothing and never moved the
    file. Now it is moved aside when the damage shows, the run's writes go to a fresh
    file, and the signatures read from the old one are stored there too."""
    paths = _images(tmp_path, rng, 40)
    folder = tmp_path / "cache"
    cache = G.SignatureCache(folder)
    G.extract_signatures(paths[:30], PARAMS, cache=cache)
    cache.close()
    db = folder / f"signatures-{PARAMS.tag}.sqlite"
    assert not db.with_name(db.name + "-wal").exists()  # checkpointed at close
    pages = db.stat().st_size // 4096
    _zero_pages(db, 2, pages // 2)  # the header page and the schema stay
    cache = G.SignatureCache(folder)
    ext = G.extract_signatures(paths, PARAMS, cache=cache)
    cache.close()
    assert all(s is not None for s in ext.signatures)
    assert ext.cache_hits < 30  # some records were in the zeroed pages
    assert cache.problem is not None and "moved to" in cache.problem, cache.problem
    # QA round 11: it said "was not a usable database" right after reading from it.
    assert "is damaged" in cache.problem and "stored again in a fresh file" in cache.problem
    assert "not a usable database" not in cache.problem
    assert "delete it when no longer needed" in cache.problem
    assert "running without it" not in cache.problem
    (aside,) = (p for p in folder.iterdir() if p.name.startswith(f"{db.name}.corrupt-"))
    assert aside.stat().st_size > 0
    # Every signature of the run, read or computed, is in the fresh file.
    again = G.SignatureCache(folder)
    assert G.extract_signatures(paths, PARAMS, cache=again).cache_hits == 40
    assert again.problem is None
    again.close()
