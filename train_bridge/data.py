"""Training and evaluation data: split selection, class indices, a torch Dataset, collate.

The detector learns contiguous class indices ``0..C-1``; :class:`ClassMap` maps them to
the sodkit dataset's category ids and names. :class:`DetectionDataset` decodes images
with :func:`curate.core.imageio.read_image`, applies the online augmentation of
:mod:`augment.functional` (Mosaic and MixUp with probabilities, switched off for the
no-aug epochs; random zoom/shift, colour and flip jitter), letterboxes to ``imgsz`` and
returns ``(image uint8 (3, S, S), target float32 (M, 5) = [class, x1, y1, x2, y2], index)``.

Randomness: each sample draws from ``numpy.random.default_rng([seed, epoch, index])``, so
results do not depend on the number of loader workers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset as TorchDataset

from augment import functional as AF
from curate.core import boxes as B
from curate.core.dataset import Category, Dataset, ImageItem
from curate.core.errors import UsageError
from curate.core.imageio import DEFAULT_MAX_PIXELS, read_image
from curate.core.progress import NullProgress, Progress
from curate.formats.base import ReadOptions
from curate.io import load_dataset
from train_bridge.config import AugmentConfig

Target = NDArray[np.float32]


def normalize_name(name: str) -> str:
    """Class name key for matching across datasets: lower case, separators unified."""
    return re.sub(r"[\s\-_]+", "_", name.strip().lower())


@dataclass(frozen=True)
class ClassMap:
    """Model class index ``i`` ↔ dataset category ``ids[i]`` named ``names[i]``."""

    ids: tuple[int, ...]
    names: tuple[str, ...]

    @classmethod
    def from_categories(cls, categories: Sequence[Category]) -> ClassMap:
        cats = sorted(categories, key=lambda c: c.id)
        if not cats:
            raise UsageError("the dataset has no categories: nothing to train")
        return cls(tuple(c.id for c in cats), tuple(c.name for c in cats))

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self) -> dict[int, int]:
        """Category id → class index."""
        return {cid: i for i, cid in enumerate(self.ids)}

    def to_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassMap:
        return cls(tuple(int(i) for i in data["ids"]), tuple(str(n) for n in data["names"]))

    def map_to(self, categories: Sequence[Category]) -> dict[int, int]:
        """Class index → id of the category of ``categories`` with the same (normalised) name.

        Classes with no counterpart are left out (their predictions cannot be scored).
        """
        by_name = {normalize_name(c.name): c.id for c in categories}
        return {
            i: by_name[normalize_name(n)]
            for i, n in enumerate(self.names)
            if normalize_name(n) in by_name
        }


def load(spec: str, options: ReadOptions | None = None) -> Dataset:
    """Read a dataset (``PATH`` or ``LAYOUT:PATH``), typically written by ``curate split``."""
    return load_dataset(spec, options)


def split_images(ds: Dataset, split: str, *, required: bool = True) -> list[ImageItem]:
    """Images of ``split`` (``train``/``val``/``test``); a clear error when absent and required."""
    groups = ds.splits()
    images = groups.get(split, [])
    if not images and required:
        have = ", ".join(f"{k} ({len(v)})" for k, v in groups.items()) or "no images"
        where = ds.info.get("path", "the dataset")
        raise UsageError(
            f"'{where}' has no '{split}' split (it has: {have}); "
            "write a split dataset with 'curate split' (YOLO data.yaml with train/val/test, "
            "or COCO annotations/instances_<split>.json)"
        )
    return images


def item_targets(
    item: ImageItem, index_of: dict[int, int]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``(N, 4)`` boxes and ``(N,)`` class indices of an image (crowd regions left out)."""
    anns = [a for a in item.annotations if not a.iscrowd]
    boxes = B.as_boxes([a.bbox for a in anns])
    labels = np.array([index_of[a.category_id] for a in anns], dtype=np.int64)
    return boxes, labels


class DetectionDataset(TorchDataset):
    """Images of one split as training samples (see the module docstring).

    ``augment=None`` gives plain letterboxed samples (validation, no-aug epochs without
    colour jitter). :meth:`set_epoch` changes the random stream; :attr:`mix` turns Mosaic,
    MixUp and the random zoom/shift on or off (the engine turns them off for the no-aug
    epochs; colour and flip jitter stay). ``cache`` keeps
    every decoded image, resized so its longer side is ``imgsz``, in memory; call
    :meth:`fill_cache` before starting loader workers so they share the filled cache.
    """

    def __init__(
        self,
        images: Sequence[ImageItem],
        classes: ClassMap,
        imgsz: int,
        *,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        cache: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.images = list(images)
        self.classes = classes
        self.imgsz = imgsz
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.mix = augment is not None
        self.max_pixels = max_pixels
        self._index_of = classes.index_of()
        self._cache: (
            dict[int, tuple[NDArray[np.uint8], NDArray[np.float64], NDArray[np.int64]]] | None
        ) = {} if cache else None

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def load_resized(
        self, index: int
    ) -> tuple[NDArray[np.uint8], NDArray[np.float64], NDArray[np.int64]]:
        """Image ``index`` decoded and resized so its longer side is ``imgsz``, boxes, labels."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        item = self.images[index]
        image = read_image(item.path, max_pixels=self.max_pixels)
        boxes, labels = item_targets(item, self._index_of)
        h, w = image.shape[:2]
        if item.width and item.height and (w, h) != (item.width, item.height):
            # Labels are in the frame the dataset recorded; follow them if the file differs.
            boxes = B.scale(boxes, w / item.width, h / item.height)
        r = self.imgsz / max(h, w)
        if r != 1:
            nw, nh = max(1, round(w * r)), max(1, round(h * r))
            interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
            image = cv2.resize(image, (nw, nh), interpolation=interp)
            boxes = B.scale(boxes, nw / w, nh / h)
        out = (image, boxes, labels)
        if self._cache is not None:
            self._cache[index] = out
        return out

    def fill_cache(self, progress: Progress | None = None) -> None:
        """Decode every image now (with ``cache``), so loader workers start with a full cache."""
        if self._cache is None:
            return
        progress = progress or NullProgress()
        for i in progress.track(range(len(self)), total=len(self), description="caching images"):
            self.load_resized(i)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def sample(
        self, index: int
    ) -> tuple[NDArray[np.uint8], NDArray[np.float64], NDArray[np.int64]]:
        """``(S, S, 3)`` image, ``(M, 4)`` boxes and ``(M,)`` labels after augmentation."""
        s = self.imgsz
        aug = self.augment
        if aug is None:
            image, boxes, labels = self.load_resized(index)
            image, boxes, _ = AF.letterbox(image, boxes, s)
            return image, boxes, labels
        rng = self._rng(index)
        kw = {"min_area": aug.min_area, "min_visible": aug.min_visible}
        if self.mix and rng.random() < aug.mosaic_prob:
            picks = [index, *(int(i) for i in rng.integers(0, len(self), 3))]
            parts = [self.load_resized(i) for i in picks]
            canvas, boxes, labels = AF.mosaic(
                [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts], s, rng, **kw
            )
            image, boxes, labels = AF.random_affine(
                canvas,
                boxes,
                labels,
                rng,
                out_size=(s, s),
                scale=aug.mosaic_scale,
                translate=aug.translate,
                **kw,
            )
            if rng.random() < aug.mixup_prob:
                other, ob, ol = self.load_resized(int(rng.integers(0, len(self))))
                image, boxes, labels = AF.mixup(
                    image, boxes, labels, other, ob, ol, rng, scale=aug.mixup_scale, **kw
                )
        else:
            image, boxes, labels = self.load_resized(index)
            image, boxes, _ = AF.letterbox(image, boxes, s)
            if self.mix and (aug.affine_scale != (1.0, 1.0) or aug.translate > 0):
                image, boxes, labels = AF.random_affine(
                    image,
                    boxes,
                    labels,
                    rng,
                    scale=aug.affine_scale,
                    translate=aug.translate,
                    **kw,
                )
        if rng.random() < aug.hsv_prob:
            image = AF.hsv_jitter(image, rng)
        if rng.random() < aug.flip_prob:
            image, boxes = AF.hflip(image, boxes)
        return image, boxes, labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, boxes, labels = self.sample(index)
        target = np.concatenate([labels[:, None].astype(np.float32), boxes.astype(np.float32)], 1)
        chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        return chw, torch.from_numpy(target.reshape(-1, 5)), index


def collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, int]],
) -> tuple[torch.Tensor, list[torch.Tensor], list[int]]:
    """Stack images into ``(B, 3, S, S)`` uint8; keep per-image ``(M_b, 5)`` targets as a list."""
    images = torch.stack([b[0] for b in batch])
    return images, [b[1] for b in batch], [b[2] for b in batch]
