"""``--overwrite`` on a run folder never loses the last complete run before a new one finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.core.errors import OutputExistsError, UsageError
from train_bridge.engine import finish_run_dir, prepare_run_dir, previous_run_dir


def _run(path: Path, tag: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "best.pt").write_text(tag)
    return path


def test_a_non_empty_run_folder_needs_overwrite(tmp_path: Path) -> None:
    out = _run(tmp_path / "run", "old")
    with pytest.raises(OutputExistsError):
        prepare_run_dir(out)
    assert (out / "best.pt").read_text() == "old"


def test_overwrite_keeps_the_old_run_until_the_new_one_finishes(tmp_path: Path) -> None:
    out = _run(tmp_path / "run", "old")
    target = prepare_run_dir(out, overwrite=True)
    assert target == out and not any(out.iterdir())
    backup = previous_run_dir(out)
    assert (backup / "best.pt").read_text() == "old"
    _run(out, "new")
    finish_run_dir(out)
    assert not backup.exists() and (out / "best.pt").read_text() == "new"


def test_a_failed_replacement_never_costs_the_last_complete_run(tmp_path: Path) -> None:
    out = _run(tmp_path / "run", "complete")
    prepare_run_dir(out, overwrite=True)
    (out / "partial.log").write_text("crashed at epoch 3")  # the new run dies here
    # Overwriting again drops the unfinished run, not the complete one.
    prepare_run_dir(out, overwrite=True)
    assert not any(out.iterdir())
    assert (previous_run_dir(out) / "best.pt").read_text() == "complete"


def test_resume_needs_last_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"last\.pt"):
        prepare_run_dir(tmp_path / "none", resume=True)
