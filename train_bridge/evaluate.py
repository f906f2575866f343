"""COCO box metrics with pycocotools: GT built in memory from a sodkit Dataset, results as JSON.

:func:`coco_gt` turns images of a :class:`~curate.core.dataset.Dataset` into a
``pycocotools.coco.COCO`` object (image ids kept when the dataset has unique ones, else
1..N in order; category ids kept; ``area`` is the box area, so the small/medium/large
ranges are about box size). :func:`coco_eval` scores COCO results entries against it
and returns :class:`EvalResult`: AP, AP50, AP75, AP_small/medium/large, AR1/10/100,
AR_small/medium/large, and AP/AP50 per class.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from curate.core import boxes as B
from curate.core.dataset import Category, Dataset, ImageItem
from curate.core.errors import UsageError
from curate.core.progress import Progress
from curate.merge_preds import MergeConfig, tile_index, untile_predictions
from train_bridge.predict import Predictor, to_coco_results

#: Order of ``COCOeval.stats``.
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)


@dataclass
class EvalResult:
    """COCO metrics (-1 where pycocotools has nothing to score, e.g. no large objects)."""

    stats: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    images: int = 0
    detections: int = 0

    def __getitem__(self, key: str) -> float:
        return self.stats[key]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.stats,
            "per_class": self.per_class,
            "images": self.images,
            "detections": self.detections,
        }


def image_ids(images: Sequence[ImageItem]) -> list[int]:
    """COCO image ids: the images' own when all are set and unique, else 1..N."""
    own = [img.id for img in images]
    if all(isinstance(i, int) for i in own) and len(set(own)) == len(own):
        return [int(i) for i in own]  # type: ignore[arg-type]
    return list(range(1, len(images) + 1))


def coco_gt(
    images: Sequence[ImageItem], categories: Sequence[Category], *, ids: Sequence[int] | None = None
) -> COCO:
    """An in-memory COCO ground truth of ``images`` (ids: ``ids`` or :func:`image_ids`)."""
    ids = list(ids) if ids is not None else image_ids(images)
    coco_images, anns = [], []
    for img_id, img in zip(ids, images, strict=True):
        coco_images.append(
            {"id": img_id, "file_name": img.file_name, "width": img.width, "height": img.height}
        )
        for a in img.annotations:
            (x, y, w, h) = B.xyxy_to_xywh([a.bbox])[0]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": a.category_id,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(max(w, 0.0) * max(h, 0.0)),
                    "iscrowd": int(a.iscrowd),
                }
            )
    cats = [{"id": c.id, "name": c.name} for c in sorted(categories, key=lambda c: c.id)]
    return _coco_from_dict({"images": coco_images, "annotations": anns, "categories": cats})


def _coco_from_dict(data: dict[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


def coco_eval(gt: COCO, results: Sequence[dict[str, Any]]) -> EvalResult:
    """Score COCO ``bbox`` results against ``gt`` with ``COCOeval`` (quietly)."""
    # loadRes adds fields to the dicts it gets: hand it copies.
    results = [dict(r) for r in results]
    unknown = {r.get("image_id") for r in results} - set(gt.getImgIds())
    if unknown:
        raise UsageError(
            f"{len(unknown)} result image id(s) are not in the ground truth "
            f"(e.g. {sorted(unknown, key=str)[:3]}); results and labels must come from the same images"
        )
    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            dt = gt.loadRes(results)
        else:
            dt = _coco_from_dict(
                {
                    "images": gt.dataset["images"],
                    "categories": gt.dataset["categories"],
                    "annotations": [],
                }
            )
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = {name: float(v) for name, v in zip(STAT_NAMES, ev.stats, strict=True)}
    # precision: (iou thresholds, recall points, classes, area ranges, max dets).
    precision = ev.eval["precision"]
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    per_class = {}
    for k, cat_id in enumerate(ev.params.catIds):
        ap = _mean_valid(precision[:, :, k, 0, -1])
        ap50 = _mean_valid(precision[0, :, k, 0, -1])
        per_class[names.get(cat_id, str(cat_id))] = {"AP": ap, "AP50": ap50}
    return EvalResult(stats, per_class, len(gt.getImgIds()), len(results))


def predict_results(
    predictor: Predictor,
    images: Sequence[ImageItem],
    category_of: dict[int, int],
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """COCO results of ``predictor`` on ``images`` (ids as :func:`image_ids` gives them).

    ``category_of`` maps the model's class index to the GT category id
    (:meth:`ClassMap.map_to` when the model was trained on another dataset).
    """
    ids = dict(zip((id(img) for img in images), image_ids(images), strict=True))
    results: list[dict[str, Any]] = []
    for item, det in predictor.predict_items(images, progress):
        results.extend(to_coco_results(det, ids[id(item)], category_of))
    return results


def evaluate(
    predictor: Predictor,
    images: Sequence[ImageItem],
    categories: Sequence[Category],
    category_of: dict[int, int],
    progress: Progress | None = None,
) -> tuple[EvalResult, list[dict[str, Any]]]:
    """Predict on ``images`` and score against their labels; returns metrics and results."""
    results = predict_results(predictor, images, category_of, progress)
    return coco_eval(coco_gt(images, categories), results), results


def fmt_metric(v: float) -> str:
    """Metric for tables: 3 decimals, '-' for pycocotools' -1 (nothing to score)."""
    return "-" if v < 0 or math.isnan(v) else f"{v:.3f}"


def sliced_results(
    predictor: Predictor,
    tiles: Dataset,
    category_of: dict[int, int],
    *,
    parents: Sequence[ImageItem] | None = None,
    parent_ids: Sequence[int] | None = None,
    merge: MergeConfig | None = None,
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Sliced inference: predict on the tiles of ``tiles`` (written by ``curate tile``) and
    map the predictions back to their parent images with :mod:`curate.merge_preds`.

    With ``parents`` (and their COCO ids ``parent_ids``) a full-image pass on the parents
    is merged in too, as SAHI does. Returns COCO results on the parent image ids.
    """
    index = tile_index(tiles)
    tile_preds: list[dict[str, Any]] = []
    for item, det in predictor.predict_items(tiles.images, progress):
        # Tile file names are unique keys of the tile index (ids may be positions).
        tile_preds.extend(to_coco_results(det, item.file_name, category_of))
    full = None
    if parents is not None:
        ids = list(parent_ids) if parent_ids is not None else image_ids(parents)
        full = []
        for pid, (_, det) in zip(ids, predictor.predict_items(parents, progress), strict=True):
            full.extend(to_coco_results(det, pid, category_of))
    return untile_predictions(tile_preds, index, full_results=full, config=merge).results
