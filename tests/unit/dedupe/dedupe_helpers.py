"""Synthetic scenes and small datasets for the dedupe tests (made in code)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from curate.core.dataset import Annotation, Category, Dataset, ImageItem


def make_scene(rng: np.random.Generator, h: int = 120, w: int = 160) -> np.ndarray:
    """A textured RGB scene: a smooth background, random rectangles and ellipses, grain."""
    base = cv2.resize(rng.uniform(0, 255, (4, 5, 3)).astype(np.float32), (w, h))
    img = base.copy()
    for _ in range(int(rng.integers(6, 12))):
        colour = rng.uniform(0, 255, 3).tolist()
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(
                img,
                (x, y),
                (x + int(rng.integers(8, 50)), y + int(rng.integers(8, 40))),
                colour,
                -1,
            )
        else:
            cv2.ellipse(
                img,
                (x, y),
                (int(rng.integers(5, 30)), int(rng.integers(5, 25))),
                float(rng.uniform(0, 180)),
                0,
                360,
                colour,
                -1,
            )
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_photo(rng: np.random.Generator, h: int = 480, w: int = 640) -> np.ndarray:
    """An RGB image with detail at several scales, as photos have (random fields at 1/128,
    1/64 and 1/32 of the size; coarser ones stronger): thumbnails of its crops align as a
    photo's do, which :func:`make_scene`'s flat shapes and pixel grain do not."""
    img = np.full((h, w, 3), 128.0, np.float32)
    for step in (128, 64, 32):
        field = rng.uniform(-1, 1, (h // step + 1, w // step + 1, 3)).astype(np.float32)
        img += cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC) * 12 * step**0.5
    return np.clip(img, 0, 255).astype(np.uint8)


def save(arr: np.ndarray, path: Path, quality: int = 92) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=quality)
    return path


def item(
    path: Path,
    boxes: Sequence[tuple[float, float, float, float]] = (),
    *,
    split: str | None = None,
    cat: int = 0,
) -> ImageItem:
    with Image.open(path) as im:
        w, h = im.size
    anns = [Annotation(bbox=tuple(map(float, b)), category_id=cat) for b in boxes]  # type: ignore[arg-type]
    return ImageItem(path.name, path, w, h, annotations=anns, split=split)


def dataset(items: list[ImageItem]) -> Dataset:
    return Dataset([Category(0, "fire"), Category(1, "smoke")], items)


def low_rank(rng: np.random.Generator, n: int, dim: int = 256, k: int = 24) -> np.ndarray:
    """Features with few directions of spread (like colour histograms) and copies of some at
    distances 0.3-2.5, half moved along the directions of spread, half anywhere."""
    basis = np.linalg.qr(rng.normal(0, 1, (dim, k)))[0]
    x = rng.normal(0, 1, (n, k)) @ basis.T + rng.normal(0, 0.02, (n, dim))
    m = n // 10
    step = np.concatenate(
        [rng.normal(0, 1, (m // 2, k)) @ basis.T, rng.normal(0, 1, (m - m // 2, dim))]
    )
    step *= rng.uniform(0.3, 2.5, (m, 1)) / np.linalg.norm(step, axis=1, keepdims=True)
    x[:m] = x[rng.integers(m, n, m)] + step
    return x.astype(np.float32)
