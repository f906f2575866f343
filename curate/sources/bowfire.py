"""BoWFire (Chino et al., 2015): fire photos with white-on-black ground-truth masks.

Layout (PATH is the BoWFire root holding ``dataset/``, or the ``dataset/`` folder itself)::

    dataset/img/fire000.png ... fire118.png, not_fire000.png ... not_fire106.png
    dataset/gt/fire000_gt.png ...            white = fire, black = background
    dataset.csv                              optional: "image <tab or comma> mask" per line
    train/fire/*.png, train/not_fire/*.png   50x50 classification patches (optional)

Rules:

- ``dataset.csv`` (in PATH or ``dataset/``), when present, pairs images with masks; its
  paths are resolved against the CSV's folder, then by file name in ``img/`` / ``gt/``.
  Images in ``img/`` that the CSV does not list are paired by name
  (``gt/<stem>_gt.<ext>``). Lines starting with ``#`` and a header line are skipped.
- An image whose name starts with ``not_fire`` (also ``notfire``, ``non_fire``,
  ``nofire``) is a negative: no annotations, its mask is not read. Every other image
  is a fire image and needs a mask; a missing mask is a :class:`MissingFileError`, a
  mask of another size an :class:`AnnotationError`, both routed through the policy
  (``skip`` leaves the image out).
- Masks are thresholded at 128 (gray, after RGB→gray); each 8-connected region becomes
  one ``fire`` instance: the tight pixel-edge box of the region plus its mask as COCO
  RLE. With ``merge_distance`` N > 0, fragments separated by a gap of fewer than N
  pixels (along a row or column; about Euclidean diagonally) form one instance: the
  mask is dilated with an N x N elliptic kernel, labelled, and each dilated component
  takes the original pixels it covers (the instance mask stays the original pixels).
  After merging, instances under ``min_region_area`` pixels are dropped and listed in
  ``dataset.info["dropped"]``.
- A fire image left without any instance (empty mask, or only regions under the area
  limit) is tagged ``unlabeled: True`` rather than read as a negative (it shows fire)
  and listed in ``dataset.info["changed"]``.
- With ``include_patches``, the ``train/`` patches (under PATH) are added as images
  named ``patches/<path under train>``, with ``class_label`` ``fire`` or ``not_fire``
  (from a ``fire``/``not_fire`` folder, else the file-name prefix). Patches carry no
  boxes: ``not_fire`` patches are true negatives, ``fire`` patches are tagged
  ``unlabeled: True`` (they show fire that no box marks).

Image sizes come from file headers; only masks are decoded. Every image stands alone
(``group`` is None); ``source`` is ``"bowfire"``; ``original_path`` is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from curate.core.dataset import Annotation, Box, Dataset, ImageItem, Mask
from curate.core.errors import (
    AnnotationError,
    ItemError,
    MalformedFileError,
    MissingFileError,
    UsageError,
)
from curate.core.files import read_text_file
from curate.core.imageio import IMAGE_EXTENSIONS, is_image_file, probe, read_image
from curate.core.validate import validated
from curate.formats.base import ReadOptions

SOURCE = "bowfire"
FIRE = "fire"
MASK_THRESHOLD = 128
_NEGATIVE_PREFIXES = ("not_fire", "notfire", "non_fire", "nofire", "not-fire", "non-fire")
_CSV_SPLIT = re.compile(r"[\t,;]")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the parts of a BoWFire folder are: ``img``/``gt`` folders, CSV, patches."""

    dataset_dir: Path
    img_dir: Path
    gt_dir: Path
    csv: Path | None
    train_dir: Path | None


@dataclass(frozen=True, slots=True)
class Region:
    """One instance found in a mask: pixel-edge XYXY ``bbox``, pixel ``area``, RLE mask.

    ``fragments`` is how many 8-connected pieces were merged into it (1 without merging).
    ``rle`` is empty for regions dropped by the area limit (they are never encoded).
    """

    bbox: Box
    area: int
    fragments: int
    rle: dict[str, Any]


def find_layout(path: Path) -> Layout | None:
    """The BoWFire parts under ``path`` (root or ``dataset/`` folder), or None."""
    if not path.is_dir():
        return None
    for dataset_dir in (path / "dataset", path):
        img, gt = dataset_dir / "img", dataset_dir / "gt"
        if img.is_dir() and gt.is_dir():
            csv = next(
                (c for c in (path / "dataset.csv", dataset_dir / "dataset.csv") if c.is_file()),
                None,
            )
            train = path / "train"
            return Layout(dataset_dir, img, gt, csv, train if train.is_dir() else None)
    return None


def is_negative_name(name: str) -> bool:
    """True for a BoWFire name that marks an image without fire (``not_fire012.png``)."""
    return Path(name).stem.lower().startswith(_NEGATIVE_PREFIXES)


def mask_to_foreground(mask: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """``(H, W)`` bool foreground of a gray ``(H, W)`` or RGB ``(H, W, 3)`` uint8 mask (>= 128)."""
    gray = cv2.cvtColor(mask, cv2.COLOR_RGB2GRAY) if mask.ndim == 3 else mask
    return np.asarray(gray >= MASK_THRESHOLD)


def mask_regions(
    foreground: NDArray[np.bool_], *, merge_distance: int = 0, min_area: int = 0
) -> tuple[list[Region], list[Region]]:
    """Split a ``(H, W)`` bool mask into instances; return ``(kept, dropped)``.

    Kept regions carry a compressed COCO RLE of the full-size mask; dropped ones
    (fewer than ``min_area`` pixels after merging) carry an empty dict. Regions are ordered by
    their top-left position in the labelling (row-major scan).
    """
    from pycocotools import mask as mask_utils

    fg = np.ascontiguousarray(foreground, dtype=np.uint8)
    height, width = fg.shape
    if merge_distance > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (merge_distance, merge_distance))
        grown = cv2.dilate(fg, kernel)
        _, pieces = cv2.connectedComponents(fg, connectivity=8)
    else:
        grown = fg
        pieces = None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    kept: list[Region] = []
    dropped: list[Region] = []
    # One Fortran-ordered buffer reused for every instance keeps memory at one mask.
    buf = np.zeros((height, width), dtype=np.uint8, order="F")
    for k in range(1, n):
        x, y, w, h = (int(v) for v in stats[k, :4])
        window = (slice(y, y + h), slice(x, x + w))
        own = (labels[window] == k) & (fg[window] > 0)
        ys, xs = np.nonzero(own)
        if len(xs) == 0:
            continue
        bbox = (
            float(x + xs.min()),
            float(y + ys.min()),
            float(x + xs.max() + 1),
            float(y + ys.max() + 1),
        )
        fragments = 1 if pieces is None else len(np.unique(pieces[window][own]))
        area = len(xs)
        if area < min_area:
            dropped.append(Region(bbox, area, fragments, {}))
            continue
        buf[window] = own
        rle = mask_utils.encode(buf)
        buf[window] = 0
        counts = rle["counts"]
        kept.append(
            Region(
                bbox,
                area,
                fragments,
                {
                    "size": [height, width],
                    "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
                },
            )
        )
    return kept, dropped


def read_mask(path: Path, *, max_pixels: int | None) -> NDArray[np.bool_]:
    """Decode a ground-truth mask file (gray or RGB, PNG or JPEG) to ``(H, W)`` bool."""
    return mask_to_foreground(read_image(path, max_pixels=max_pixels))


def read_pair_list(
    csv: Path, layout: Layout
) -> tuple[list[tuple[Path, Path | None]], list[ItemError]]:
    """``(image, mask)`` pairs listed in ``dataset.csv`` and the errors of bad lines."""
    pairs: list[tuple[Path, Path | None]] = []
    errors: list[ItemError] = []
    text = read_text_file(csv, "pair list", encoding="utf-8-sig")
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = [f.strip() for f in _CSV_SPLIT.split(stripped) if f.strip()]
        if not fields:  # separators only (" , ")
            continue
        if not pairs and not errors and not is_image_file(fields[0]):
            continue  # a header line such as "image,mask"
        if len(fields) > 2:
            errors.append(
                MalformedFileError(
                    csv,
                    f"expected 'image, mask' but found {len(fields)} fields",
                    line=lineno,
                    hint="separate the two paths by one tab or comma",
                )
            )
            continue
        image = _resolve_listed(fields[0], csv.parent, layout.img_dir)
        mask = _resolve_listed(fields[1], csv.parent, layout.gt_dir) if len(fields) == 2 else None
        pairs.append((image, mask))
    return pairs, errors


def _resolve_listed(entry: str, base: Path, fallback_dir: Path) -> Path:
    """A listed path relative to ``base``; else the same file name in ``fallback_dir``."""
    p = Path(entry)
    cand = p if p.is_absolute() else base / p
    if cand.is_file():
        return cand
    by_name = fallback_dir / PurePosixPath(entry.replace("\\", "/")).name
    return by_name if by_name.is_file() else cand


def mask_for(image: Path, gt_dir: Path) -> Path | None:
    """``gt/<stem>_gt.<ext>`` of an image (PNG preferred), or None."""
    for ext in (".png", *IMAGE_EXTENSIONS):
        for cand in (gt_dir / f"{image.stem}_gt{ext}", gt_dir / f"{image.stem}_gt{ext.upper()}"):
            if cand.is_file():
                return cand
    return None


class BowFireSource:
    """BoWFire: fire/not-fire photos with ground-truth masks, plus optional 50x50 patches."""

    name = "bowfire"
    description = "BoWFire (dataset/img + dataset/gt fire masks; optional train/ patches)"

    def detect(self, path: Path) -> int:
        layout = find_layout(path)
        if layout is None:
            return 0
        has_masks = any(
            f.stem.lower().endswith("_gt") and is_image_file(f) for f in layout.gt_dir.iterdir()
        )
        return 90 if has_masks else 0

    def read(self, path: Path, options: ReadOptions) -> Dataset:
        layout = find_layout(path)
        if layout is None:
            raise UsageError(
                f"'{path}' is not a BoWFire folder: expected dataset/img and dataset/gt "
                "(or img and gt) inside it"
            )
        if options.source.merge_distance < 0 or options.source.min_region_area < 0:
            raise UsageError("merge_distance and min_region_area must be >= 0")
        ds = Dataset(info={"dropped": [], "changed": []})
        fire_id = ds.add_category(FIRE)
        pairs = self._pairs(layout, options)
        for image, mask in options.progress.track(
            pairs, total=len(pairs), description="BoWFire images"
        ):
            try:
                item, dropped = self._read_item(
                    image, mask, layout, fire_id, options, ds.info["changed"]
                )
            except ItemError as err:
                options.policy.handle(err, left_out=image)
                continue
            ds.images.append(item)
            ds.info["dropped"].extend(dropped)
        if options.source.include_patches:
            if layout.train_dir is None:
                raise UsageError(
                    f"include_patches: no train/ folder in '{path}'; pass the BoWFire root "
                    "(the folder holding dataset/ and train/)"
                )
            ds.images.extend(self._read_patches(layout.train_dir, options))
        return ds

    # -- images and masks ----------------------------------------------------------
    def _pairs(self, layout: Layout, options: ReadOptions) -> list[tuple[Path, Path | None]]:
        """Every ``(image, mask)`` to read, sorted by image name; CSV pairs take priority."""
        listed: dict[Path, Path | None] = {}
        if layout.csv is not None:
            try:
                pairs, errors = read_pair_list(layout.csv, layout)
            except MalformedFileError as err:
                options.policy.handle(err)
                pairs, errors = [], []
            for err in errors:
                options.policy.handle(err)
            for image, mask in pairs:
                listed.setdefault(image, mask)
        known = {p.resolve() for p in listed}
        for image in sorted(
            f for f in layout.img_dir.iterdir() if f.is_file() and is_image_file(f)
        ):
            if image.resolve() not in known:
                listed[image] = mask_for(image, layout.gt_dir)
        return sorted(listed.items(), key=lambda kv: (kv[0].name, str(kv[0])))

    def _read_item(
        self,
        image: Path,
        mask: Path | None,
        layout: Layout,
        fire_id: int,
        options: ReadOptions,
        changed: list[dict[str, Any]],
    ) -> tuple[ImageItem, list[dict[str, Any]]]:
        info = probe(image, check_tail=options.check_images, max_pixels=options.max_pixels)
        item = ImageItem(
            file_name=_name_in(image, layout),
            path=image,
            width=info.width,
            height=info.height,
            source=SOURCE,
            attributes={"original_path": str(image)},
        )
        if is_negative_name(image.name):
            return item, []
        if mask is None or not mask.is_file():
            expected = mask if mask is not None else layout.gt_dir / f"{image.stem}_gt.png"
            raise MissingFileError(
                expected,
                f"fire image '{image.name}' has no ground-truth mask",
                hint="add the mask, or pass --on-error skip to leave the image out",
            )
        fg = read_mask(mask, max_pixels=options.max_pixels)
        if fg.shape != (item.height, item.width):
            raise AnnotationError(
                mask,
                f"mask is {fg.shape[1]}x{fg.shape[0]} but image '{image.name}' is "
                f"{item.width}x{item.height}",
                hint="a mask must have its image's size; check the pairing in dataset.csv",
            )
        src = options.source
        kept, small = mask_regions(
            fg, merge_distance=src.merge_distance, min_area=src.min_region_area
        )
        raw: list[tuple[Annotation, int | None]] = []
        for region in kept:
            attrs = {"fragments": region.fragments} if src.merge_distance > 0 else {}
            raw.append(
                (
                    Annotation(
                        region.bbox, fire_id, mask=Mask.from_rle(region.rle), attributes=attrs
                    ),
                    None,
                )
            )
        item.annotations = validated(item, raw, {fire_id}, where=str(mask), changed=changed)
        dropped = [
            {
                "item": item.file_name,
                "reason": f"mask region smaller than min_region_area ({src.min_region_area} px)",
                "file": str(mask),
                "area": r.area,
                "bbox": list(r.bbox),
            }
            for r in small
        ]
        if not item.annotations:
            item.attributes["unlabeled"] = True
            changed.append(
                {
                    "item": item.file_name,
                    "change": "fire image without any mask region tagged unlabeled",
                    "file": str(mask),
                }
            )
        return item, dropped

    # -- classification patches ----------------------------------------------------
    def _read_patches(self, train_dir: Path, options: ReadOptions) -> list[ImageItem]:
        files = sorted(f for f in train_dir.rglob("*") if f.is_file() and is_image_file(f))
        out: list[ImageItem] = []
        for f in options.progress.track(files, total=len(files), description="BoWFire patches"):
            rel = f.relative_to(train_dir).as_posix()
            label = _patch_class(f.relative_to(train_dir))
            if label is None:
                options.policy.handle(
                    MalformedFileError(
                        f,
                        "cannot tell whether this patch is fire or not_fire",
                        hint="put it in train/fire/ or train/not_fire/, or name it fire*/not_fire*",
                    ),
                    left_out=f,
                )
                continue
            try:
                info = probe(f, check_tail=options.check_images, max_pixels=options.max_pixels)
            except ItemError as err:
                options.policy.handle(err, left_out=f)
                continue
            attrs: dict[str, Any] = {"original_path": str(f), "class_label": label, "patch": True}
            if label == FIRE:
                attrs["unlabeled"] = True
            out.append(
                ImageItem(
                    file_name=f"patches/{rel}",
                    path=f,
                    width=info.width,
                    height=info.height,
                    source=SOURCE,
                    attributes=attrs,
                )
            )
        return out


def _patch_class(rel: Path) -> str | None:
    """``fire`` / ``not_fire`` from a patch's folder names, else its file name."""
    for part in (*rel.parts[:-1], rel.name):
        low = part.lower()
        if low.startswith(_NEGATIVE_PREFIXES):
            return "not_fire"
        if low.startswith(FIRE):
            return FIRE
    return None


def _name_in(image: Path, layout: Layout) -> str:
    """The image's name inside the dataset: relative to ``img/``, else to ``dataset/``."""
    for base in (layout.img_dir, layout.dataset_dir):
        try:
            return image.relative_to(base).as_posix()
        except ValueError:
            continue
    return image.name
