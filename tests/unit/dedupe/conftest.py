"""Fixtures for the dedupe tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dedupe_helpers import make_scene


@pytest.fixture
def scenes(rng: np.random.Generator) -> list[np.ndarray]:
    return [make_scene(rng) for _ in range(6)]


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every signature cache of a test inside its tmp_path."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(root))
    return root
