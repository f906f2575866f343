"""Inference: letterbox, batch, run, NMS, map boxes back to the original image; COCO results.

Detections are ``(K, 6)`` float arrays ``[x1, y1, x2, y2, score, class_index]`` in pixels
of the original image, sorted by score. :func:`to_coco_results` turns them into COCO
results entries (``bbox`` as ``[x, y, w, h]``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from augment.functional import letterbox
from curate.core import boxes as B
from curate.core.dataset import ImageItem
from curate.core.imageio import DEFAULT_MAX_PIXELS, read_image
from curate.core.progress import NullProgress, Progress
from train_bridge.device import autocast, prepare_images
from train_bridge.models.nms import postprocess

Detections = NDArray[np.float64]


@dataclass
class Predictor:
    """Runs ``model`` (eval mode) on images of any size at ``imgsz`` (letterboxed, square)."""

    model: nn.Module
    imgsz: int
    device: torch.device
    conf_thr: float = 0.001
    nms_thr: float = 0.65
    batch: int = 8
    amp: bool = False
    max_detections: int = 300

    @torch.no_grad()
    def predict_arrays(self, images: Sequence[NDArray[np.uint8]]) -> list[Detections]:
        """``(H, W, 3)`` uint8 RGB images → one ``(K, 6)`` detection array each."""
        out: list[Detections] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(images), self.batch):
                chunk = images[start : start + self.batch]
                boxed = [letterbox(im, np.zeros((0, 4)), self.imgsz) for im in chunk]
                x = torch.from_numpy(np.stack([b[0] for b in boxed]).transpose(0, 3, 1, 2))
                with autocast(self.device, self.amp):
                    preds = self.model(prepare_images(x, self.device))
                dets = postprocess(preds.float(), self.conf_thr, self.nms_thr)
                for (_, _, params), d, im in zip(boxed, dets, chunk, strict=True):
                    d = d[: self.max_detections].cpu().double().numpy()
                    h, w = im.shape[:2]
                    boxes = B.clip(params.unmap(d[:, :4]), w, h)
                    score = d[:, 4] * d[:, 5]
                    out.append(np.concatenate([boxes, score[:, None], d[:, 6:7]], axis=1))
        finally:
            self.model.train(was_training)
        return out

    def predict_items(
        self,
        items: Sequence[ImageItem],
        progress: Progress | None = None,
        *,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Iterator[tuple[ImageItem, Detections]]:
        """Detections for each dataset image (in the recorded frame of its labels)."""
        progress = progress or NullProgress()
        batches = [items[i : i + self.batch] for i in range(0, len(items), self.batch)]
        for chunk in progress.track(batches, total=len(batches), description="predicting"):
            arrays = [read_image(it.path, max_pixels=max_pixels) for it in chunk]
            for it, arr, det in zip(chunk, arrays, self.predict_arrays(arrays), strict=True):
                h, w = arr.shape[:2]
                if it.width and it.height and (w, h) != (it.width, it.height):
                    det = det.copy()
                    det[:, :4] = B.scale(det[:, :4], it.width / w, it.height / h)
                yield it, det

    def predict_paths(
        self,
        paths: Sequence[Path],
        progress: Progress | None = None,
        *,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> Iterator[tuple[Path, Detections]]:
        """Detections for image files."""
        progress = progress or NullProgress()
        batches = [paths[i : i + self.batch] for i in range(0, len(paths), self.batch)]
        for chunk in progress.track(batches, total=len(batches), description="predicting"):
            arrays = [read_image(p, max_pixels=max_pixels) for p in chunk]
            yield from zip(chunk, self.predict_arrays(arrays), strict=True)


def to_coco_results(
    detections: Detections, image_id: int | str, category_of: dict[int, int]
) -> list[dict[str, Any]]:
    """COCO results entries of one image; classes missing from ``category_of`` are left out."""
    out = []
    xywh = B.xyxy_to_xywh(detections[:, :4]) if len(detections) else np.zeros((0, 4))
    for box, det in zip(xywh, detections, strict=True):
        cls = int(det[5])
        if cls not in category_of:
            continue
        out.append(
            {
                "image_id": image_id,
                "category_id": category_of[cls],
                "bbox": [round(float(v), 2) for v in box],
                "score": round(float(det[4]), 5),
            }
        )
    return out
