"""CLI helpers: run a Typer app in-process and check it failed cleanly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from curate.cli import app


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SODKIT_DEBUG", raising=False)
    runner = CliRunner()

    def _run(*args: Any, code: int | None = 0):
        result = runner.invoke(app, [str(a) for a in args])
        out = result.output
        if code is not None:
            assert result.exit_code == code, (
                f"exit {result.exit_code}, expected {code}:\n{out}\n{result.exception!r}"
            )
        assert "Traceback" not in out
        return result

    return _run


def manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())
