"""Fixtures for the detector tests: a seeded torch generator and a seeded global torch RNG."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_seed() -> Iterator[None]:
    """Seed torch's global RNG (module initialisers draw from it) for every test."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded generator for the test's own random tensors."""
    return torch.Generator().manual_seed(1234)
