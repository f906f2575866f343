"""CLI helpers: run a Typer app in-process and check it failed cleanly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
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


def scene(rng: np.random.Generator) -> np.ndarray:
    """A 160x120 RGB scene: a smooth background, 8 coloured rectangles, grain."""
    img = cv2.resize(rng.uniform(0, 255, (4, 5, 3)).astype(np.float32), (160, 120))
    for _ in range(8):
        x, y = int(rng.integers(0, 140)), int(rng.integers(0, 100))
        cv2.rectangle(img, (x, y), (x + 25, y + 18), rng.uniform(0, 255, 3).tolist(), -1)
    return np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
