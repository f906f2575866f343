"""train_bridge.evaluate / predict: numbers equal pycocotools', boxes map back, tiles merge back."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.errors import UsageError
from curate.core.imageio import write_image
from train_bridge.evaluate import (
    STAT_NAMES,
    coco_eval,
    coco_gt,
    evaluate,
    image_ids,
    sliced_results,
)
from train_bridge.predict import Predictor, to_coco_results

CATS = [Category(1, "fire"), Category(2, "smoke")]


def synthetic_pair(rng: np.random.Generator) -> tuple[list[ImageItem], list[dict]]:
    """Images with small/medium/large boxes of two classes (one crowd) and noisy detections."""
    images, results = [], []
    for i in range(6):
        anns = []
        for _ in range(int(rng.integers(1, 7))):
            size = float(rng.choice([6.0, 14.0, 40.0, 120.0]))
            x, y = rng.uniform(0, 400, 2)
            anns.append(Annotation((x, y, x + size, y + size * 0.8), int(rng.integers(1, 3))))
        if i == 2:
            anns.append(Annotation((0.0, 0.0, 50.0, 50.0), 1, iscrowd=True))
        images.append(
            ImageItem(f"im{i}.jpg", Path(f"im{i}.jpg"), 640, 480, annotations=anns, id=10 + i)
        )
        for a in anns:
            if rng.random() < 0.8:
                jitter = rng.normal(0, 0.15 * (a.bbox[2] - a.bbox[0]), 4)
                x1, y1, x2, y2 = np.array(a.bbox) + jitter
                cat = a.category_id if rng.random() < 0.9 else 3 - a.category_id
                results.append(
                    {
                        "image_id": 10 + i,
                        "category_id": cat,
                        "bbox": [x1, y1, max(x2 - x1, 1), max(y2 - y1, 1)],
                        "score": float(rng.uniform(0.05, 1)),
                    }
                )
        for _ in range(3):  # false positives
            x, y = rng.uniform(0, 500, 2)
            results.append(
                {
                    "image_id": 10 + i,
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [x, y, 20.0, 20.0],
                    "score": float(rng.uniform(0, 0.6)),
                }
            )
    return images, results


def reference_stats(gt_json: dict, results: list[dict], tmp_path: Path) -> np.ndarray:
    """Plain pycocotools on files, as a user would run it."""
    gt_file = tmp_path / "gt.json"
    res_file = tmp_path / "res.json"
    gt_file.write_text(json.dumps(gt_json))
    res_file.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        dt = gt.loadRes(str(res_file))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_coco_eval_equals_pycocotools(rng, tmp_path):
    images, results = synthetic_pair(rng)
    gt = coco_gt(images, CATS)
    before = copy.deepcopy(results)
    ours = coco_eval(gt, results)
    assert results == before  # loadRes must not have touched the caller's dicts
    ref = reference_stats(gt.dataset, results, tmp_path)
    np.testing.assert_allclose([ours.stats[k] for k in STAT_NAMES], ref, atol=1e-12)
    assert 0 < ours["AP50"] < 1
    assert set(ours.per_class) == {"fire", "smoke"}
    assert ours.images == 6
    assert ours.detections == len(results)


def test_gt_uses_box_area_and_keeps_ids():
    images = [
        ImageItem("a.jpg", Path("a.jpg"), 100, 100, [Annotation((10, 10, 20, 30), 1)], id=7),
        ImageItem("b.jpg", Path("b.jpg"), 100, 100, [], id=3),
    ]
    gt = coco_gt(images, CATS)
    assert sorted(gt.getImgIds()) == [3, 7]
    ann = gt.dataset["annotations"][0]
    assert ann["area"] == 200.0
    assert ann["bbox"] == [10.0, 10.0, 10.0, 20.0]
    # Missing or duplicate ids fall back to positions.
    images[1].id = 7
    assert image_ids(images) == [1, 2]


def test_perfect_and_empty_detections():
    images = [
        ImageItem(
            "a.jpg",
            Path("a.jpg"),
            100,
            100,
            [Annotation((10, 10, 20, 20), 1), Annotation((50, 50, 90, 80), 2)],
        )
    ]
    gt = coco_gt(images, CATS)
    perfect = [
        {
            "image_id": 1,
            "category_id": a.category_id,
            "bbox": [*a.bbox[:2], a.width, a.height],
            "score": 0.9,
        }
        for a in images[0].annotations
    ]
    r = coco_eval(gt, perfect)
    assert r["AP"] == pytest.approx(1.0)
    assert r["AP_small"] == pytest.approx(1.0)
    assert r["AP_large"] == -1.0  # nothing large to score
    empty = coco_eval(gt, [])
    assert empty["AP"] == 0.0
    assert empty.detections == 0
    with pytest.raises(UsageError, match="not in the ground truth"):
        coco_eval(gt, [{**perfect[0], "image_id": 99}])


class FixedModel(nn.Module):
    """Eval-mode stand-in for YOLOX: one box at a fixed place of the letterboxed input."""

    def __init__(self, box: tuple[float, float, float, float], num_classes: int = 2, cls: int = 1):
        super().__init__()
        self.box = torch.tensor(box)
        self.num_classes = num_classes
        self.cls = cls
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        out = torch.zeros(x.shape[0], 2, 5 + self.num_classes)
        out[:, 0, :4] = self.box
        out[:, 0, 4] = 0.9
        out[:, 0, 5 + self.cls] = 1.0
        return out


def test_predictor_maps_boxes_to_the_original_image():
    model = FixedModel((16.0, 8.0, 48.0, 40.0))
    pred = Predictor(model, imgsz=64, device=torch.device("cpu"), conf_thr=0.1)
    # 200x100 image letterboxed into 64: scale 0.32, top-left placement.
    image = np.zeros((100, 200, 3), np.uint8)
    [det] = pred.predict_arrays([image])
    assert model.seen == [(1, 3, 64, 64)]
    np.testing.assert_allclose(det[0, :4], [50.0, 25.0, 150.0, 100.0])  # clipped to the image
    assert det[0, 4] == pytest.approx(0.9)
    assert det[0, 5] == 1
    results = to_coco_results(det, 5, {1: 2})
    assert results == [
        {"image_id": 5, "category_id": 2, "bbox": [50.0, 25.0, 100.0, 75.0], "score": 0.9}
    ]
    assert to_coco_results(det, 5, {0: 1}) == []  # class without a counterpart is left out


def test_evaluate_runs_predictor_over_files(tmp_path):
    img_path = tmp_path / "a.png"
    write_image(img_path, np.zeros((64, 64, 3), np.uint8))
    items = [ImageItem("a.png", img_path, 64, 64, [Annotation((16, 8, 48, 40), 2)])]
    pred = Predictor(FixedModel((16.0, 8.0, 48.0, 40.0)), 64, torch.device("cpu"))
    result, results = evaluate(pred, items, CATS, {0: 1, 1: 2})
    assert result["AP"] == pytest.approx(1.0)
    assert results[0]["image_id"] == 1


def test_sliced_results_merge_tiles_back(tmp_path):
    # Two 64 px tiles of one 128x64 parent; the model finds the same object in each tile
    # at tile-local (16, 8, 48, 40), so the parent gets boxes at x+0 and x+64.
    tiles = Dataset(categories=CATS)
    for k, x in enumerate((0, 64)):
        p = tmp_path / f"t{k}.png"
        write_image(p, np.zeros((64, 64, 3), np.uint8))
        tiles.images.append(
            ImageItem(
                f"t{k}.png",
                p,
                64,
                64,
                attributes={
                    "parent_id": 1,
                    "tile_x": x,
                    "tile_y": 0,
                    "parent_width": 128,
                    "parent_height": 64,
                },
            )
        )
    pred = Predictor(FixedModel((16.0, 8.0, 48.0, 40.0)), 64, torch.device("cpu"))
    results = sliced_results(pred, tiles, {1: 2})
    boxes = sorted(r["bbox"] for r in results)
    assert [r["image_id"] for r in results] == [1, 1]
    np.testing.assert_allclose(boxes, [[16, 8, 32, 32], [80, 8, 32, 32]])
