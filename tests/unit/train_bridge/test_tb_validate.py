"""train_bridge.validate: ablation grid, leakage guard, tables, and a tiny full ablation run."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from curate.core.dataset import ImageItem
from curate.core.errors import OutputExistsError, UsageError
from train_bridge.config import make_config
from train_bridge.synthetic import ShapesSpec, make_shapes_dataset
from train_bridge.validate import TABLE_FIELDS, ablation_specs, drop_leaks, validate, write_table


def test_ablation_grid_is_the_eight_combinations():
    specs = ablation_specs()
    assert len(specs) == 8
    assert len({(s.cbam, s.mff, s.iou) for s in specs}) == 8
    assert specs[0].name == "curated-base" and (specs[0].cbam, specs[0].mff, specs[0].iou) == (
        False,
        False,
        "iou",
    )
    assert specs[-1].name == "curated-cbam-mff-ciou"
    assert {s.iou for s in specs} == {"iou", "ciou"}


def test_drop_leaks_by_bytes(tmp_path):
    a, b, c = (tmp_path / n for n in ("a.png", "b.png", "c.png"))
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    c.write_bytes(b"other")
    items = [ImageItem(p.name, p, 1, 1) for p in (a, c)]
    kept, dropped = drop_leaks(items, [ImageItem("b.png", b, 1, 1)])
    assert [i.file_name for i in kept] == ["c.png"]
    assert dropped == 1


def test_write_table(tmp_path):
    row = {k: 0 for k in TABLE_FIELDS} | {"run": "raw", "AP": 0.5, "AP_large": -1.0}
    csv_path, md_path = write_table([row], tmp_path / "t")
    [csv_row] = csv.DictReader(csv_path.read_text().splitlines())
    assert csv_row["AP"] == "0.5000"
    md = md_path.read_text()
    assert "| raw |" in md and "| 0.500 |" in md and "| - |" in md


def _tiny_raw_and_curated(tmp_path):
    """A 4-image raw set, a curated one with a 2-image test split, and a one-epoch CPU config."""
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    spec = ShapesSpec(width=32, height=32, min_size=6, max_size=10, max_objects=2)
    cur = tmp_path / "cur"
    make_shapes_dataset(
        cur, ShapesSpec(**{**spec.__dict__, "splits": {"train": 4, "test": 2}}), fmt="coco"
    )
    raw = tmp_path / "raw"
    make_shapes_dataset(raw, ShapesSpec(**{**spec.__dict__, "splits": {"train": 4}}), seed=1)
    return raw, cur, make_config("cpu-smoke", epochs=1, imgsz=32, batch=2)


def test_tiny_ablation_run(tmp_path):
    raw, cur, cfg = _tiny_raw_and_curated(tmp_path)
    out = tmp_path / "out"
    report = validate(str(raw), str(cur), out, cfg, ablation=True)
    assert [r["run"] for r in report.comparison] == ["raw", "curated"]
    assert len(report.ablation) == 8
    # The curated baseline run is shared with the ablation's base row, not retrained.
    assert len(list((out / "runs").iterdir())) == 1 + 8
    assert (out / "ablation.md").is_file() and (out / "ablation.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["runs"] == 9
    with pytest.raises(OutputExistsError):
        validate(str(raw), str(cur), out, cfg)


def test_missing_test_split_is_explained(tmp_path):
    cur = tmp_path / "cur"
    make_shapes_dataset(cur, ShapesSpec(width=32, height=32, splits={"train": 2}))
    with pytest.raises(UsageError, match="no 'test' split"):
        validate(str(cur), str(cur), tmp_path / "o", make_config("cpu-smoke", epochs=1))


def test_resume_reuses_finished_runs_and_continues_the_rest(tmp_path, monkeypatch):
    import train_bridge.validate as V

    raw, cur, cfg = _tiny_raw_and_curated(tmp_path)
    out = tmp_path / "out"
    first = validate(str(raw), str(cur), out, cfg)
    # Interrupt the curated run after training: its result was never written.
    (out / "runs" / "curated" / "result.json").unlink()
    calls = []
    real_train = V.train

    def counting_train(*args, **kwargs):
        calls.append(kwargs.get("resume"))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(V, "train", counting_train)
    # Another configuration on the command line: the stored one is used.
    again = validate(str(raw), str(cur), out, make_config("cpu-smoke", epochs=5), resume=True)
    assert calls == [True]  # only the curated run, continued from its last.pt
    assert again.comparison[0] == first.comparison[0]
    assert [r["run"] for r in again.comparison] == ["raw", "curated"]
    with pytest.raises(UsageError, match="other data"):
        validate(str(cur), str(cur), out, cfg, resume=True)
    with pytest.raises(UsageError, match="does not exist"):
        validate(str(raw), str(cur), tmp_path / "nothing", cfg, resume=True)
