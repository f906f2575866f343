"""Shared fixtures: a seeded generator, the shared real data, per-run FiftyOne settings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def seed() -> int:
    return 1234


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with the reason when it is absent."""
    root = Path(os.environ.get("SODKIT_SHARED_DATA", SHARED_DATA))
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set SODKIT_SHARED_DATA)")
    return root
