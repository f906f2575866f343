"""Fixtures for the detector tests: seeded torch RNGs and single-threaded torch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_seed_and_one_thread() -> Iterator[None]:
    """Seed torch's global RNG (module initialisers draw from it) and run on one thread.

    The models here are tiny: intra-op threads buy nothing and, on a busy machine, their
    spin-waiting made the overfit test ten times slower.
    """
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.random.set_rng_state(state)


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded generator for the test's own random tensors."""
    return torch.Generator().manual_seed(1234)
