"""Generate small shapes, train the cpu-smoke YOLOX on them and score the test split.

About two minutes on 2 CPU cores. The same with the command line::

    train_bridge synth shapes/
    train_bridge train shapes/ --preset cpu-smoke --out runs/shapes
    train_bridge eval shapes/ --weights runs/shapes/best.pt --split test

Usage: python examples/train_bridge_shapes.py OUT_FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from curate.io import load_dataset
from train_bridge import checkpoint as ckpt
from train_bridge.config import make_config
from train_bridge.data import split_images
from train_bridge.engine import prepare_run_dir, train
from train_bridge.evaluate import evaluate
from train_bridge.predict import Predictor
from train_bridge.synthetic import make_shapes_dataset


def main(out: Path) -> None:
    data = out / "shapes"
    if not (data / "data.yaml").is_file():
        make_shapes_dataset(data, seed=0)
    ds = load_dataset(str(data))
    run = prepare_run_dir(out / "run", overwrite=True)
    result = train(
        make_config("cpu-smoke"),
        split_images(ds, "train"),
        split_images(ds, "val"),
        ds.categories,
        run,
        on_epoch=lambda row: print(f"epoch {row['epoch']}: loss {row['loss']:.3f}"),
    )
    loaded = ckpt.load_model(result.best)
    predictor = Predictor(loaded.model, loaded.imgsz, torch.device("cpu"))
    metrics, _ = evaluate(
        predictor, split_images(ds, "test"), ds.categories, dict(enumerate(loaded.classes.ids))
    )
    print({k: round(v, 3) for k, v in metrics.stats.items() if v >= 0})


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "shapes-demo"))
