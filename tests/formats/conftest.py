"""A synthetic dataset with boxes, polygons, RLE masks, crowd regions, negatives, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.core.dataset import Annotation, Category, Dataset, ImageItem, Mask


def make_dataset(
    root: Path, rng: np.random.Generator, *, n: int = 6, masks: bool = True, split: bool = True
) -> Dataset:
    cats = [Category(1, "fire"), Category(2, "smoke")]
    images = []
    for i in range(n):
        w, h = int(rng.integers(120, 300)), int(rng.integers(100, 240))
        path = root / "src" / f"img{i:02d}.{'png' if i % 2 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        anns = []
        for _ in range(int(rng.integers(0, 4)) if i else 0):
            bw, bh = rng.uniform(3, w / 3), rng.uniform(3, h / 3)
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            box = (round(x1, 2), round(y1, 2), round(x1 + bw, 2), round(y1 + bh, 2))
            mask = None
            if masks:
                poly = np.array(
                    [[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]
                )
                mask = Mask("polygons", [poly])
            anns.append(
                Annotation(
                    box,
                    int(rng.integers(1, 3)),
                    mask=mask,
                    attributes={"occluded": bool(rng.integers(0, 2))},
                )
            )
        images.append(
            ImageItem(
                file_name=path.name,
                path=path,
                width=w,
                height=h,
                annotations=anns,
                source="synthetic",
                group=f"clip{i // 2}",
                split=(["train", "val", "test"][i % 3] if split else None),
                attributes={"original_path": str(path)},
            )
        )
    return Dataset(cats, images)


@pytest.fixture
def dataset(tmp_path: Path, rng: np.random.Generator) -> Dataset:
    return make_dataset(tmp_path, rng)
