"""The one in-memory dataset model.

A :class:`Dataset` holds :class:`Category` entries and :class:`ImageItem` entries;
each image owns its :class:`Annotation` list. Boxes are absolute-pixel XYXY floats
(see :mod:`curate.core.boxes`). Instance masks are kept in whatever form they were
read (polygons, COCO RLE or a bitmap) and converted on demand by :class:`Mask`.

For vectorised work over all boxes (statistics, anchors, tiling) use
:meth:`Dataset.box_table`, which returns flat NumPy columns.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from curate.core import boxes as B

Box = tuple[float, float, float, float]
MaskKind = Literal["polygons", "rle", "bitmap"]
SPLITS = ("train", "val", "test")
#: Folder and YAML-key names of splits as datasets spell them (compared lower-case).
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def split_name(name: str) -> str | None:
    """The split a folder or YAML key names (``Train``, ``valid``, ``Testing``...), else None."""
    return SPLIT_ALIASES.get(name.lower())


@dataclass(slots=True)
class Category:
    """A class: ``id`` is the dataset's own id, ``name`` the normalised name."""

    id: int
    name: str
    supercategory: str = ""


@dataclass(slots=True)
class Mask:
    """An instance mask in absolute pixels of its image.

    ``kind`` says which form ``data`` has:

    - ``"polygons"``: list of ``(K, 2)`` float arrays of ``x, y`` vertices (K >= 3);
    - ``"rle"``: a COCO RLE dict ``{"size": [h, w], "counts": str | list[int]}``;
    - ``"bitmap"``: a ``(H, W)`` bool array covering the whole image.
    """

    kind: MaskKind
    data: Any

    @classmethod
    def from_polygons(cls, polygons: Iterable[Any]) -> Mask:
        """Build from flat ``[x0, y0, x1, y1, ...]`` lists or ``(K, 2)`` arrays."""
        polys = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
        return cls("polygons", [p for p in polys if len(p) >= 3])

    @classmethod
    def from_bitmap(cls, bitmap: NDArray[Any]) -> Mask:
        return cls("bitmap", np.asarray(bitmap).astype(bool))

    @classmethod
    def from_rle(cls, rle: Mapping[str, Any]) -> Mask:
        return cls("rle", dict(rle))

    def to_rle(self, height: int, width: int) -> dict[str, Any]:
        """Compressed COCO RLE (``counts`` as str) of this mask at ``height x width``."""
        from pycocotools import mask as mask_utils

        if self.kind == "rle":
            rle = dict(self.data)
            if isinstance(rle["counts"], list):
                rle = mask_utils.frPyObjects(rle, *rle["size"])
        elif self.kind == "polygons":
            flat = [p.reshape(-1).tolist() for p in self.data]
            if not flat:
                return self._empty_rle(height, width)
            rle = mask_utils.merge(mask_utils.frPyObjects(flat, height, width))
        else:
            rle = mask_utils.encode(np.asfortranarray(self.data.astype(np.uint8)))
        counts = rle["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode("ascii")
        return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": counts}

    @staticmethod
    def _empty_rle(height: int, width: int) -> dict[str, Any]:
        from pycocotools import mask as mask_utils

        rle = mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
        return {"size": [height, width], "counts": rle["counts"].decode("ascii")}

    def to_bitmap(self, height: int, width: int) -> NDArray[np.bool_]:
        """``(height, width)`` bool array."""
        if self.kind == "bitmap":
            return np.asarray(self.data, dtype=bool)
        from pycocotools import mask as mask_utils

        rle = self.to_rle(height, width)
        with warnings.catch_warnings():
            # pycocotools' Cython decode under NumPy 2 warns about __array__(copy=...); harmless.
            warnings.simplefilter("ignore", DeprecationWarning)
            out = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        return out.astype(bool)

    def to_polygons(self, height: int, width: int) -> list[NDArray[np.float64]]:
        """Outer contours as ``(K, 2)`` float arrays (polygons pass through unchanged)."""
        if self.kind == "polygons":
            return [p.copy() for p in self.data]
        import cv2

        bitmap = self.to_bitmap(height, width).astype(np.uint8)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return [c.reshape(-1, 2).astype(np.float64) for c in contours if len(c) >= 3]

    def area(self, height: int, width: int) -> float:
        """Pixel area (RLE area, as COCO computes it)."""
        if self.kind == "bitmap":
            return float(np.count_nonzero(self.data))
        from pycocotools import mask as mask_utils

        rle = self.to_rle(height, width)
        return float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}))

    def bbox(self, height: int, width: int) -> Box | None:
        """Tight XYXY box of the mask, or None when it is empty."""
        if self.kind == "polygons":
            if not self.data:
                return None
            pts = np.concatenate(self.data)
            return (
                float(pts[:, 0].min()),
                float(pts[:, 1].min()),
                float(pts[:, 0].max()),
                float(pts[:, 1].max()),
            )
        bitmap = self.to_bitmap(height, width)
        ys, xs = np.nonzero(bitmap)
        if len(xs) == 0:
            return None
        return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


@dataclass(slots=True)
class Annotation:
    """One object: XYXY pixel ``bbox``, ``category_id``, optional mask and attributes.

    ``attributes`` holds anything else worth keeping (``occluded``, ``visible_fraction``,
    a COCO field sodkit does not model, ...).
    """

    bbox: Box
    category_id: int
    mask: Mask | None = None
    iscrowd: bool = False
    score: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    @property
    def box_area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


@dataclass(slots=True)
class ImageItem:
    """An image: where it is, its size (as displayed, EXIF orientation applied) and its labels.

    ``file_name`` is the image's name inside the dataset (POSIX, relative); ``path`` the
    file on disk. ``source`` names where it came from, ``group`` what must stay together
    when splitting (a video clip, a duplicate cluster, a parent image of tiles).
    """

    file_name: str
    path: Path
    width: int
    height: int
    annotations: list[Annotation] = field(default_factory=list)
    source: str = ""
    group: str | None = None
    split: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @property
    def is_negative(self) -> bool:
        """True for an image with no objects (and not tagged as unlabelled)."""
        return not self.annotations and not self.attributes.get("unlabeled", False)

    def boxes(self) -> NDArray[np.float64]:
        """``(N, 4)`` XYXY boxes of this image's annotations."""
        return B.as_boxes([a.bbox for a in self.annotations])


@dataclass(slots=True)
class BoxTable:
    """All boxes of a dataset as flat columns (one row per annotation)."""

    image_index: NDArray[np.int64]
    category_id: NDArray[np.int64]
    boxes: NDArray[np.float64]
    iscrowd: NDArray[np.bool_]
    image_width: NDArray[np.float64]
    image_height: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.image_index)


@dataclass
class Dataset:
    """Categories plus images with their annotations."""

    categories: list[Category] = field(default_factory=list)
    images: list[ImageItem] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[ImageItem]:
        return iter(self.images)

    # -- categories ---------------------------------------------------------------
    def category_names(self) -> dict[int, str]:
        """Map category id → name."""
        return {c.id: c.name for c in self.categories}

    def category_ids(self) -> dict[str, int]:
        """Map category name → id."""
        return {c.name: c.id for c in self.categories}

    def add_category(self, name: str, supercategory: str = "") -> int:
        """Return the id of ``name``, adding it with the next free id if new."""
        for c in self.categories:
            if c.name == name:
                return c.id
        new_id = max((c.id for c in self.categories), default=-1) + 1
        self.categories.append(Category(new_id, name, supercategory))
        return new_id

    # -- views --------------------------------------------------------------------
    def annotations(self) -> Iterator[tuple[ImageItem, Annotation]]:
        """Every (image, annotation) pair, in order."""
        for img in self.images:
            for ann in img.annotations:
                yield img, ann

    @property
    def num_annotations(self) -> int:
        return sum(len(img.annotations) for img in self.images)

    def splits(self) -> dict[str, list[ImageItem]]:
        """Images grouped by ``split`` (``None`` becomes ``"all"``), in dataset order."""
        out: dict[str, list[ImageItem]] = {}
        for img in self.images:
            out.setdefault(img.split or "all", []).append(img)
        return out

    def box_table(self) -> BoxTable:
        """Flat NumPy columns over all annotations (see :class:`BoxTable`)."""
        n = self.num_annotations
        image_index = np.empty(n, dtype=np.int64)
        category_id = np.empty(n, dtype=np.int64)
        boxes = np.empty((n, 4), dtype=np.float64)
        iscrowd = np.empty(n, dtype=bool)
        widths = np.empty(n, dtype=np.float64)
        heights = np.empty(n, dtype=np.float64)
        k = 0
        for i, img in enumerate(self.images):
            m = len(img.annotations)
            if not m:
                continue
            image_index[k : k + m] = i
            category_id[k : k + m] = [a.category_id for a in img.annotations]
            boxes[k : k + m] = [a.bbox for a in img.annotations]
            iscrowd[k : k + m] = [a.iscrowd for a in img.annotations]
            widths[k : k + m] = img.width
            heights[k : k + m] = img.height
            k += m
        return BoxTable(image_index, category_id, boxes, iscrowd, widths, heights)

    def class_counts(self) -> Counter[str]:
        """Boxes per category name."""
        names = self.category_names()
        return Counter(names.get(a.category_id, str(a.category_id)) for _, a in self.annotations())

    # -- copies -------------------------------------------------------------------
    def subset(self, images: Iterable[ImageItem]) -> Dataset:
        """A dataset with the same categories and the given images (shared, not copied)."""
        return Dataset(list(self.categories), list(images), dict(self.info))

    def deepcopy(self) -> Dataset:
        return copy.deepcopy(self)

    def assign_ids(self) -> None:
        """Give images ids 1..N in order (COCO ids start at 1)."""
        for i, img in enumerate(self.images, start=1):
            img.id = i

    def used_category_ids(self) -> set[int]:
        return {a.category_id for _, a in self.annotations()}


def images_by_group(images: Iterable[ImageItem]) -> dict[str, list[ImageItem]]:
    """Group images by ``group``; an image without one forms a group of its own."""
    out: dict[str, list[ImageItem]] = {}
    for img in images:
        key = img.group if img.group is not None else f"__image__/{img.source}/{img.file_name}"
        out.setdefault(key, []).append(img)
    return out
