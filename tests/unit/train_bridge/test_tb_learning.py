"""The learning test: --preset cpu-smoke learns small shapes on 2 CPU cores in minutes.

Generates 8-24 px circles, squares and triangles (random colours, textured grounds),
trains the cpu-smoke preset on 400 images and scores 100 held-out images with COCO
metrics. Prints AP50 and the wall time (run with ``-s`` to see them).
"""

from __future__ import annotations

import time

import pytest
import torch

from curate.io import load_dataset
from train_bridge import checkpoint as ckpt
from train_bridge.config import make_config
from train_bridge.data import split_images
from train_bridge.engine import train
from train_bridge.evaluate import evaluate
from train_bridge.predict import Predictor
from train_bridge.synthetic import ShapesSpec, make_shapes_dataset


@pytest.mark.slow
def test_cpu_smoke_preset_learns_small_shapes(tmp_path, record_property):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        started = time.perf_counter()
        spec = ShapesSpec(splits={"train": 400, "val": 50, "test": 100})
        make_shapes_dataset(tmp_path / "shapes", spec, seed=0)
        ds = load_dataset(str(tmp_path / "shapes"))
        run = tmp_path / "run"
        run.mkdir()
        cfg = make_config("cpu-smoke")
        result = train(cfg, split_images(ds, "train"), split_images(ds, "val"), ds.categories, run)
        loaded = ckpt.load_model(result.best)
        predictor = Predictor(loaded.model, loaded.imgsz, torch.device("cpu"), batch=32)
        metrics, _ = evaluate(
            predictor, split_images(ds, "test"), ds.categories, dict(enumerate(loaded.classes.ids))
        )
        wall = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    record_property("test_AP50", metrics["AP50"])
    record_property("wall_seconds", round(wall, 1))
    print(
        f"\ncpu-smoke: test AP50 {metrics['AP50']:.3f}, AP {metrics['AP']:.3f}, "
        f"best val AP50 {result.best_ap50:.3f}; train {result.seconds:.0f}s, total {wall:.0f}s"
    )
    assert metrics["AP50"] >= 0.5
