"""``import fiftyone`` works after ``importlib_metadata`` was imported (Dask and others do).

The backport then answers the standard library's metadata lookups with fields that raise
``KeyError`` when missing, and FiftyOne's ``eta`` reads an ``author`` its wheel lacks: the
whole test suite, run in one process, failed at the FiftyOne test. A fresh process,
because FiftyOne is imported once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys


def test_fiftyone_imports_after_the_metadata_backport(tmp_path) -> None:
    code = (
        "import importlib_metadata, importlib.metadata as m\n"
        "from curate.inspect import import_fiftyone\n"
        "fo = import_fiftyone()\n"
        "print('fiftyone', fo.__version__)\n"
        "try:\n"
        "    m.metadata('voxel51-eta')['author']\n"
        "except KeyError:\n"
        "    print('backport left as it was')\n"
    )
    env = {
        **os.environ,
        "FIFTYONE_DATABASE_DIR": str(tmp_path / "fodb"),
        "FIFTYONE_DO_NOT_TRACK": "true",
    }
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "fiftyone " in res.stdout and "backport left as it was" in res.stdout
