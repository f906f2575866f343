"""Synthetic small-object datasets: filled shapes of a few pixels on textured backgrounds.

Used to check that the training pipeline learns (the learning test, ``train_bridge synth``)
without real data. Each class is a shape (circle, square, triangle); colours are drawn
independently of the class, so the detector has to learn shape, not colour. Boxes are
the exact bounds of the drawn pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.imageio import write_image
from curate.formats.base import WriteOptions
from curate.io import write_dataset

SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class ShapesSpec:
    """What to generate: image size, object sizes (px), objects per image, split sizes."""

    width: int = 160
    height: int = 160
    min_size: int = 8
    max_size: int = 24
    max_objects: int = 6
    negative_fraction: float = 0.05
    classes: tuple[str, ...] = SHAPES
    splits: dict[str, int] = field(default_factory=lambda: {"train": 400, "val": 50, "test": 100})


def textured_background(rng: np.random.Generator, height: int, width: int) -> NDArray[np.uint8]:
    """Smooth colour blobs plus fine grain: a ground that is not trivially flat."""
    base = rng.uniform(40, 200, 3)
    coarse = rng.normal(0, 40, (max(2, height // 16), max(2, width // 16), 3))
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 10, (height, width, 3))
    return np.clip(base + smooth + grain, 0, 255).astype(np.uint8)


def shape_mask(kind: str, size: int, rng: np.random.Generator) -> NDArray[np.bool_]:
    """A ``(size, size)`` mask of a filled ``kind`` touching all four sides of its box."""
    m = np.zeros((size, size), dtype=np.uint8)
    if kind == "circle":
        cv2.circle(m, (size // 2, size // 2), size // 2, 1, -1)
    elif kind == "square":
        m[:, :] = 1
    elif kind == "triangle":
        apex = int(rng.integers(0, size))
        pts = np.array([[apex, 0], [0, size - 1], [size - 1, size - 1]], dtype=np.int32)
        cv2.fillPoly(m, [pts], 1)
    else:
        raise ValueError(f"unknown shape {kind!r}; known: {SHAPES}")
    return m.astype(bool)


def generate_image(
    rng: np.random.Generator, spec: ShapesSpec, *, negative: bool = False
) -> tuple[NDArray[np.uint8], NDArray[np.float64], NDArray[np.int64]]:
    """One ``(H, W, 3)`` image, its ``(N, 4)`` XYXY boxes and ``(N,)`` class indices."""
    image = textured_background(rng, spec.height, spec.width)
    boxes: list[list[float]] = []
    labels: list[int] = []
    n = 0 if negative else int(rng.integers(1, spec.max_objects + 1))
    taken = np.zeros((spec.height, spec.width), dtype=bool)
    for _ in range(n * 10):
        if len(boxes) == n:
            break
        cls = int(rng.integers(0, len(spec.classes)))
        size = int(rng.integers(spec.min_size, spec.max_size + 1))
        x = int(rng.integers(0, spec.width - size + 1))
        y = int(rng.integers(0, spec.height - size + 1))
        # Keep a 2 px gap so objects never touch.
        y0, x0 = max(0, y - 2), max(0, x - 2)
        if taken[y0 : y + size + 2, x0 : x + size + 2].any():
            continue
        mask = shape_mask(spec.classes[cls], size, rng)
        colour = rng.uniform(0, 255, 3)
        patch = image[y : y + size, x : x + size]
        # Enough contrast against the local ground: push the colour away from its mean.
        ground = patch.reshape(-1, 3).mean(axis=0)
        if np.abs(colour - ground).sum() < 150:
            colour = np.where(ground > 127, colour * 0.3, 255 - (255 - colour) * 0.3)
        patch[mask] = colour.astype(np.uint8)
        taken[y : y + size, x : x + size] = True
        ys, xs = np.nonzero(mask)
        boxes.append([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1])
        labels.append(cls)
    return image, np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(labels, dtype=np.int64)


def make_shapes_dataset(
    out: Path, spec: ShapesSpec | None = None, *, seed: int = 0, fmt: str = "yolo"
) -> Dataset:
    """Generate the splits of ``spec`` into the (empty) folder ``out`` as ``fmt`` (yolo/coco).

    Returns the in-memory dataset (its image paths point into ``out``).
    """
    spec = spec or ShapesSpec()
    rng = np.random.default_rng(seed)
    ds = Dataset(categories=[Category(i, name) for i, name in enumerate(spec.classes)])
    for split, count in spec.splits.items():
        folder = out / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            negative = rng.random() < spec.negative_fraction
            image, boxes, labels = generate_image(rng, spec, negative=negative)
            name = f"{split}_{i:05d}.png"
            write_image(folder / name, image)
            ds.images.append(
                ImageItem(
                    file_name=name,
                    path=folder / name,
                    width=spec.width,
                    height=spec.height,
                    annotations=[
                        Annotation(tuple(float(v) for v in b), int(c))  # type: ignore[arg-type]
                        for b, c in zip(boxes, labels, strict=True)
                    ],
                    source="synthetic-shapes",
                    split=split,
                )
            )
    write_dataset(ds, out, fmt, WriteOptions(copy_images=False))
    return ds


def split_counts(train: int, val: int, test: int) -> dict[str, int]:
    """Split sizes for :class:`ShapesSpec` (zero-sized splits left out)."""
    return {k: v for k, v in (("train", train), ("val", val), ("test", test)) if v > 0}
