"""A dataset goes into real FiftyOne (its own MongoDB) with every object and split."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.io import load_dataset


@pytest.fixture
def fiftyone_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIFTYONE_DATABASE_DIR", str(tmp_path / "fodb"))
    monkeypatch.setenv("FIFTYONE_DO_NOT_TRACK", "true")
    monkeypatch.setenv("FIFTYONE_DATABASE_VALIDATION", "false")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_roboflow_export_in_fiftyone(shared_data: Path, fiftyone_env: None) -> None:
    from curate.inspect import summary, to_fiftyone

    ds = load_dataset(f"yolo:{shared_data / 'roboflow-fire-smoke'}")
    fods = to_fiftyone(ds, "sodkit-test-roboflow")
    info = summary(fods)
    assert info["samples"] == 979
    assert info["objects"] == 1077
    assert info["per_class"] == {"smoke": 533, "Fire": 384, "default": 160}
    assert info["per_split"] == {"train": 877, "val": 47, "test": 55}
    small = sum(1 for _, a in ds.annotations() if a.box_area < 32**2)
    assert info["small_objects"] == small
    fods.delete()
