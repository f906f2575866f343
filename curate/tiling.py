"""Slice large images into overlapping tiles, keeping what tiny objects need.

The work is split in two passes so that pixels are decoded once and every decision is
made before any file is written:

1. **Plan** (annotations only, no pixels): :func:`tile_windows` gives the windows of
   each image (a pure function, like SAHI's slicing: they cover the whole image, edge
   windows are shifted inward instead of padded, an image no larger than a tile is one
   window); :func:`assign_boxes` clips every box to every window at once; masks are
   clipped with :func:`clip_mask`; tiles without objects are sampled with the seed.
2. **Write** (pixels): each source image is decoded once, in a worker of the executor
   passed in, and its tiles are cropped and encoded with the source's codec
   (JPEG/WebP at ``quality``, 95 by default). An image that is a single whole-image
   window is copied byte for byte (it passes through unchanged).

Box rules, per window: a box wholly inside is kept unchanged (only shifted by the
offset); a box cut by the window edge is clipped and kept when its visible fraction is
``>= min_visibility`` *and* its visible area is ``>= min_area`` px (a ratio alone keeps
1 px slivers of tiny objects); kept cut boxes get ``truncated=True`` and
``visible_fraction`` attributes. Drops are counted per reason: ``below-min-visibility``
(checked first), ``below-min-area``, and ``mask-outside-tile`` (the box reaches into
the tile but its mask does not). A clipped box is the box ∩ window, also for objects
with masks.

Every tile records where it came from as image attributes: ``parent_image`` (file
name), ``parent_id`` (the parent's image id, or its 1-based position when it has
none), ``parent_width``, ``parent_height``, ``tile_x``, ``tile_y`` (the offset),
``tile_size`` (the scale it was cut at). COCO writes them as image fields, YOLO in
its ``sodkit.json`` sidecar. A tile's ``group`` is its parent's group, or the parent's
file name when it has none, so splits never separate tiles of one image.
"""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from curate.core import boxes as B
from curate.core.dataset import Annotation, Dataset, ImageItem, Mask
from curate.core.errors import (
    CorruptImageError,
    ErrorPolicy,
    ImageTooLargeError,
    ItemError,
    MissingFileError,
    UsageError,
)
from curate.core.files import make_unique_names
from curate.core.imageio import DEFAULT_MAX_PIXELS, read_image, write_image
from curate.core.parallel import Executor, SerialExecutor
from curate.core.progress import NullProgress, Progress
from curate.formats.base import WriteOptions, WriteResult

#: Extensions :func:`curate.core.imageio.write_image` can encode; others become PNG tiles.
ENCODABLE = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DROP_VISIBILITY = "below-min-visibility"
DROP_AREA = "below-min-area"
DROP_MASK = "mask-outside-tile"
TILE_ATTRIBUTES = (
    "parent_image",
    "parent_id",
    "parent_width",
    "parent_height",
    "tile_x",
    "tile_y",
    "tile_size",
)


# -- windows ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, order=True)
class Window:
    """A tile window in pixels of its image: offset ``(x, y)`` and size."""

    x: int
    y: int
    width: int
    height: int

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The window as an XYXY box."""
        return (
            float(self.x),
            float(self.y),
            float(self.x + self.width),
            float(self.y + self.height),
        )


def axis_starts(length: int, size: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``size`` along an axis of ``length`` pixels.

    Consecutive windows overlap by ``int(size * overlap)`` pixels; the last window is
    shifted inward to end at ``length``. An axis no longer than ``size`` has one start, 0.
    """
    if length <= size:
        return [0]
    step = size - int(size * overlap)
    starts = list(range(0, length - size + 1, step))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def tile_windows(width: int, height: int, size: int, overlap: float = 0.2) -> list[Window]:
    """Windows of ``size`` x ``size`` covering a ``width`` x ``height`` image, row by row.

    Windows never reach outside the image: on an axis shorter than ``size`` they span
    the whole axis, so an image no larger than a tile gives one whole-image window.
    """
    _check_size_overlap(size, overlap)
    if width <= 0 or height <= 0:
        return []
    tw, th = min(size, width), min(size, height)
    return [
        Window(x, y, tw, th)
        for y in axis_starts(height, size, overlap)
        for x in axis_starts(width, size, overlap)
    ]


def multiscale_windows(
    width: int, height: int, sizes: Sequence[int], overlap: float = 0.2
) -> list[tuple[int, Window]]:
    """``(size, window)`` for every size in ``sizes``; a window two sizes share is listed once."""
    seen: set[Window] = set()
    out: list[tuple[int, Window]] = []
    for size in sizes:
        for w in tile_windows(width, height, size, overlap):
            if w not in seen:
                seen.add(w)
                out.append((size, w))
    return out


def _check_size_overlap(size: int, overlap: float) -> None:
    if size < 1:
        raise UsageError(f"tile size {size} must be a positive number of pixels")
    if not 0.0 <= overlap < 1.0:
        raise UsageError(f"overlap {overlap} must be in [0, 1): it is a fraction of the tile size")


# -- boxes ----------------------------------------------------------------------------
@dataclass(slots=True)
class WindowBoxes:
    """What one window holds of an image's boxes (indices refer to the input boxes).

    ``kept`` boxes are in tile coordinates; ``whole[i]`` says ``kept[i]`` lies wholly
    inside (and is unchanged but for the offset); ``visible`` is each kept box's
    visible fraction (1 for whole boxes). ``dropped`` lists cut boxes left out, with
    their reasons.
    """

    kept_index: NDArray[np.int64]
    kept: NDArray[np.float64]
    whole: NDArray[np.bool_]
    visible: NDArray[np.float64]
    dropped_index: NDArray[np.int64]
    dropped_reason: list[str]
    dropped_visible: NDArray[np.float64]


def assign_boxes(
    boxes: ArrayLike,
    windows: Sequence[Window],
    *,
    min_visibility: float = 0.3,
    min_area: float = 16.0,
) -> list[WindowBoxes]:
    """Clip XYXY ``boxes`` ``(N, 4)`` to every window at once; one result per window.

    A box is in a window when it lies wholly inside (edges included) or overlaps it with
    positive area. Wholly inside: kept unchanged. Cut: kept clipped when its visible
    fraction is ``>= min_visibility`` and its visible area ``>= min_area``, else dropped
    with the first rule it fails. Never changes ``boxes``.
    """
    b = B.as_boxes(boxes)
    if not windows:
        return []
    wins = B.as_boxes([w.box for w in windows])
    inter = B.intersection(b, wins)  # (N, W)
    area = B.area(b)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        vis = np.where(area > 0, inter / area, 0.0)
    whole = (
        (b[:, None, 0] >= wins[None, :, 0])
        & (b[:, None, 1] >= wins[None, :, 1])
        & (b[:, None, 2] <= wins[None, :, 2])
        & (b[:, None, 3] <= wins[None, :, 3])
    )
    cut = ~whole & (inter > 0)
    ok_vis = vis >= min_visibility
    ok_area = inter >= min_area
    keep = whole | (cut & ok_vis & ok_area)
    drop = cut & ~(ok_vis & ok_area)
    out: list[WindowBoxes] = []
    for j, w in enumerate(windows):
        ki = np.flatnonzero(keep[:, j])
        local = b[ki].copy()
        local[:, [0, 2]] = np.clip(local[:, [0, 2]], w.x, w.x + w.width) - w.x
        local[:, [1, 3]] = np.clip(local[:, [1, 3]], w.y, w.y + w.height) - w.y
        di = np.flatnonzero(drop[:, j])
        reasons = [DROP_VISIBILITY if not ok_vis[i, j] else DROP_AREA for i in di]
        out.append(
            WindowBoxes(
                kept_index=ki,
                kept=local,
                whole=whole[ki, j],
                visible=np.where(whole[ki, j], 1.0, vis[ki, j]),
                dropped_index=di,
                dropped_reason=reasons,
                dropped_visible=vis[di, j],
            )
        )
    return out


# -- polygons and masks ---------------------------------------------------------------
def _clip_half_plane(
    pts: NDArray[np.float64], axis: int, bound: float, keep_above: bool
) -> NDArray[np.float64]:
    """One Sutherland–Hodgman step: keep the side of ``x[axis] = bound`` named by ``keep_above``."""
    nxt = np.roll(pts, -1, axis=0)
    if keep_above:
        c_in, n_in = pts[:, axis] >= bound, nxt[:, axis] >= bound
    else:
        c_in, n_in = pts[:, axis] <= bound, nxt[:, axis] <= bound
    cross = c_in != n_in
    d = nxt[:, axis] - pts[:, axis]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(cross, (bound - pts[:, axis]) / np.where(d == 0, 1.0, d), 0.0)
    inter = pts + t[:, None] * (nxt - pts)
    inter[:, axis] = bound  # exact on the clip line
    # Per edge (cur -> nxt): the crossing point, if any, then nxt if it is inside.
    cand = np.stack([inter, nxt], axis=1)
    emit = np.stack([cross, n_in], axis=1)
    return cand[emit]


def polygon_area(points: ArrayLike) -> float:
    """Unsigned area of a ``(K, 2)`` polygon (shoelace)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def clip_polygon(points: ArrayLike, rect: tuple[float, float, float, float]) -> NDArray[np.float64]:
    """Clip a ``(K, 2)`` polygon to the XYXY ``rect`` (Sutherland–Hodgman); ``(M, 2)``.

    Returns an empty ``(0, 2)`` array when nothing of positive area is left. A concave
    polygon cut into several pieces stays one polygon joined along the rectangle's
    edge (zero-width seams), which rasterises to the right pixels.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    x1, y1, x2, y2 = rect
    inside = (pts[:, 0] >= x1) & (pts[:, 0] <= x2) & (pts[:, 1] >= y1) & (pts[:, 1] <= y2)
    if inside.all():
        return pts.copy() if len(pts) >= 3 and polygon_area(pts) > 0 else np.empty((0, 2))
    for axis, bound, above in ((0, x1, True), (0, x2, False), (1, y1, True), (1, y2, False)):
        if len(pts) == 0:
            break
        pts = _clip_half_plane(pts, axis, bound, above)
    if len(pts):
        # Drop repeated vertices (a vertex on the clip line is emitted once per edge).
        keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
        pts = pts[keep] if keep.any() else pts[:1]
    if len(pts) < 3 or polygon_area(pts) <= 0:
        return np.empty((0, 2), dtype=np.float64)
    return pts


def clip_mask(mask: Mask, window: Window, height: int, width: int) -> Mask | None:
    """``mask`` (of a ``width`` x ``height`` image) cropped to ``window``, in tile pixels.

    Polygons are clipped and shifted; RLE and bitmaps are cropped (RLE is re-encoded at
    the tile size). Returns None when nothing of the mask is inside the window.
    """
    if mask.kind == "polygons":
        polys = [clip_polygon(p, window.box) for p in mask.data]
        shifted = [p - (window.x, window.y) for p in polys if len(p)]
        return Mask("polygons", shifted) if shifted else None
    return crop_bitmap(_to_bitmap(mask, height, width), window, as_rle=mask.kind == "rle")


def _to_bitmap(mask: Mask, height: int, width: int) -> NDArray[np.bool_]:
    # pycocotools' RLE decode trips NumPy 2's copy-keyword DeprecationWarning (harmless);
    # silence only that one so warnings-as-errors callers still work.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*__array__ implementation", category=DeprecationWarning
        )
        return mask.to_bitmap(height, width)


def crop_bitmap(bitmap: NDArray[np.bool_], window: Window, *, as_rle: bool) -> Mask | None:
    """Crop a whole-image bitmap to ``window``; RLE or bitmap mask, None when empty."""
    crop = bitmap[window.y : window.y + window.height, window.x : window.x + window.width]
    if not crop.any():
        return None
    if not as_rle:
        return Mask("bitmap", crop.copy())
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(crop.astype(np.uint8)))
    return Mask(
        "rle",
        {
            "size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": rle["counts"].decode("ascii"),
        },
    )


# -- configuration and plan -----------------------------------------------------------
@dataclass(frozen=True)
class TileConfig:
    """How to tile: tile sizes (several = multi-scale), overlap, box rules, empty tiles.

    ``keep_empty`` is the fraction of tiles without objects that is kept (chosen with
    ``seed``, exactly ``round(keep_empty * n_empty)`` over the whole dataset); an image
    that passes through whole is never dropped for being empty. ``quality`` is the
    JPEG/WebP quality of written tiles. ``max_pixels`` bounds the decoded image size.
    """

    sizes: tuple[int, ...] = (640,)
    overlap: float = 0.2
    min_visibility: float = 0.3
    min_area: float = 16.0
    keep_empty: float = 0.1
    seed: int = 0
    quality: int = 95
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not self.sizes:
            raise UsageError("give at least one tile size")
        for s in self.sizes:
            _check_size_overlap(s, self.overlap)
        if not 0.0 <= self.min_visibility <= 1.0:
            raise UsageError(f"min visibility {self.min_visibility} must be in [0, 1]")
        if self.min_area < 0:
            raise UsageError(f"min area {self.min_area} must be >= 0 pixels")
        if not 0.0 <= self.keep_empty <= 1.0:
            raise UsageError(f"keep-empty ratio {self.keep_empty} must be in [0, 1]")
        if not 1 <= self.quality <= 100:
            raise UsageError(f"quality {self.quality} must be in 1..100")


@dataclass(slots=True)
class PlannedTile:
    """One tile to write: its item (annotations in tile pixels), window, source index."""

    item: ImageItem
    window: Window
    source_index: int
    passthrough: bool


@dataclass
class TilePlan:
    """Every decision of a tiling run, made before any pixel is decoded."""

    sources: list[ImageItem]
    tiles: list[PlannedTile]
    categories: list[Any]
    info: dict[str, Any]
    counts: dict[str, Any]
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def dataset(self) -> Dataset:
        """The tile dataset (shares the planned items)."""
        return Dataset(list(self.categories), [t.item for t in self.tiles], dict(self.info))


def _tile_name(file_name: str, w: Window, passthrough: bool) -> str:
    p = PurePosixPath(file_name)
    if passthrough:
        return file_name
    suffix = p.suffix if p.suffix.lower() in ENCODABLE else ".png"
    return str(p.with_name(f"{p.stem}_{w.x}_{w.y}_{w.x + w.width}_{w.y + w.height}{suffix}"))


def _clip_annotations(
    img: ImageItem, windows: list[Window], wbs: list[WindowBoxes]
) -> tuple[list[list[Annotation]], list[list[int]]]:
    """Annotations of each window (tile pixels) and the source indices lost to empty masks."""
    anns = img.annotations
    per_window: list[list[Annotation]] = [[] for _ in windows]
    mask_lost: list[list[int]] = [[] for _ in windows]
    # Masks are clipped one annotation at a time, so a decoded RLE lives only while it is used.
    clipped_masks: dict[tuple[int, int], Mask | None] = {}
    by_ann: dict[int, list[int]] = {}
    for j, wb in enumerate(wbs):
        for i in wb.kept_index.tolist():
            if anns[i].mask is not None:
                by_ann.setdefault(i, []).append(j)
    for i, js in by_ann.items():
        mask = anns[i].mask
        if mask is None:
            continue
        if mask.kind == "polygons":
            for j in js:
                clipped_masks[(i, j)] = clip_mask(mask, windows[j], img.height, img.width)
        else:
            bitmap = _to_bitmap(mask, img.height, img.width)
            for j in js:
                clipped_masks[(i, j)] = crop_bitmap(bitmap, windows[j], as_rle=mask.kind == "rle")
            del bitmap
    for j, wb in enumerate(wbs):
        for i, box, whole, vis in zip(
            wb.kept_index.tolist(),
            wb.kept.tolist(),
            wb.whole.tolist(),
            wb.visible.tolist(),
            strict=True,
        ):
            src = anns[i]
            mask = None
            if src.mask is not None:
                mask = clipped_masks[(i, j)]
                if mask is None:
                    mask_lost[j].append(i)
                    continue
            attrs = dict(src.attributes)
            if not whole:
                attrs["truncated"] = True
                attrs["visible_fraction"] = round(
                    float(vis) * float(attrs.get("visible_fraction", 1.0)), 6
                )
            per_window[j].append(
                Annotation(
                    bbox=(box[0], box[1], box[2], box[3]),
                    category_id=src.category_id,
                    mask=mask,
                    iscrowd=src.iscrowd,
                    score=src.score,
                    attributes=attrs,
                )
            )
    return per_window, mask_lost


def plan_tiles(
    dataset: Dataset, config: TileConfig, *, progress: Progress | None = None
) -> TilePlan:
    """Decide every tile and its annotations (no pixels read, nothing written).

    Counts (all over every window, before empty tiles are sampled): ``windows``,
    ``boxes_whole`` (box instances kept unchanged), ``boxes_cut`` (kept clipped),
    ``boxes_dropped`` (by reason); per source box: ``source_boxes_whole_somewhere``,
    ``source_boxes_cut_everywhere`` (in some tile, never whole), ``source_boxes_lost``
    (in no tile at all).
    """
    progress = progress or NullProgress()
    tiles: list[PlannedTile] = []
    dropped: list[dict[str, Any]] = []
    c: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    per_size: Counter[int] = Counter()
    empty: list[int] = []  # indices into tiles of candidate empty tiles
    for si, img in enumerate(
        progress.track(dataset.images, total=len(dataset.images), description="planning tiles")
    ):
        scaled = multiscale_windows(img.width, img.height, config.sizes, config.overlap)
        windows = [w for _, w in scaled]
        boxes = img.boxes()
        wbs = assign_boxes(
            boxes, windows, min_visibility=config.min_visibility, min_area=config.min_area
        )
        per_window, mask_lost = _clip_annotations(img, windows, wbs)
        parent_id = img.id if img.id is not None else si + 1
        n = len(img.annotations)
        whole_any = np.zeros(n, dtype=bool)
        kept_any = np.zeros(n, dtype=bool)
        unlabeled = bool(img.attributes.get("unlabeled", False))
        for j, ((size, w), wb) in enumerate(zip(scaled, wbs, strict=True)):
            passthrough = w == Window(0, 0, img.width, img.height)
            name = _tile_name(img.file_name, w, passthrough)
            ok = ~np.isin(wb.kept_index, mask_lost[j])
            kept_idx, kept_whole = wb.kept_index[ok], wb.whole[ok]
            whole_any[kept_idx[kept_whole]] = True
            kept_any[kept_idx] = True
            c["boxes_whole"] += int(kept_whole.sum())
            c["boxes_cut"] += int((~kept_whole).sum())
            for i, reason, vis in zip(
                wb.dropped_index.tolist(),
                wb.dropped_reason,
                wb.dropped_visible.tolist(),
                strict=True,
            ):
                reasons[reason] += 1
                dropped.append(_drop_record(name, img, i, reason, vis))
            for i in mask_lost[j]:
                reasons[DROP_MASK] += 1
                dropped.append(_drop_record(name, img, i, DROP_MASK, None))
            attrs: dict[str, Any] = {
                "parent_image": img.file_name,
                "parent_id": parent_id,
                "parent_width": img.width,
                "parent_height": img.height,
                "tile_x": w.x,
                "tile_y": w.y,
                "tile_size": size,
            }
            if unlabeled:
                attrs["unlabeled"] = True
            item = ImageItem(
                file_name=name,
                path=Path(name),  # set when written
                width=w.width,
                height=w.height,
                annotations=per_window[j],
                source=img.source,
                group=img.group if img.group is not None else img.file_name,
                split=img.split,
                attributes=attrs,
            )
            if not per_window[j] and not unlabeled and not passthrough:
                empty.append(len(tiles))
            tiles.append(PlannedTile(item, w, si, passthrough))
            per_size[size] += 1
            c["windows"] += 1
        c["source_boxes"] += n
        c["source_boxes_whole_somewhere"] += int(whole_any.sum())
        c["source_boxes_cut_everywhere"] += int((kept_any & ~whole_any).sum())
        c["source_boxes_lost"] += int((~kept_any).sum())
    keep_n = round(config.keep_empty * len(empty))
    rng = np.random.default_rng(config.seed)
    chosen = set(rng.choice(len(empty), size=keep_n, replace=False).tolist()) if empty else set()
    drop_tiles = {t for k, t in enumerate(empty) if k not in chosen}
    tiles = [t for k, t in enumerate(tiles) if k not in drop_tiles]
    renamed = make_unique_names(t.item for t in tiles)
    counts: dict[str, Any] = {
        "images": len(dataset.images),
        "windows": c["windows"],
        "windows_by_size": {str(s): per_size[s] for s in config.sizes},
        "tiles": len(tiles),
        "tiles_passthrough": sum(t.passthrough for t in tiles),
        "tiles_empty_candidates": len(empty),
        "tiles_empty_kept": keep_n,
        "tiles_empty_dropped": len(drop_tiles),
        "tiles_renamed": renamed,
        "source_boxes": c["source_boxes"],
        "tile_boxes": sum(len(t.item.annotations) for t in tiles),
        "boxes_whole": c["boxes_whole"],
        "boxes_cut": c["boxes_cut"],
        "boxes_dropped": {
            r: reasons[r] for r in (DROP_VISIBILITY, DROP_AREA, DROP_MASK) if reasons[r]
        },
        "source_boxes_whole_somewhere": c["source_boxes_whole_somewhere"],
        "source_boxes_cut_everywhere": c["source_boxes_cut_everywhere"],
        "source_boxes_lost": c["source_boxes_lost"],
    }
    info = {k: v for k, v in dataset.info.items() if k not in ("changed", "dropped", "notes")}
    return TilePlan(list(dataset.images), tiles, list(dataset.categories), info, counts, dropped)


def _drop_record(
    tile: str, img: ImageItem, i: int, reason: str, vis: float | None
) -> dict[str, Any]:
    ann = img.annotations[i]
    rec: dict[str, Any] = {
        "item": tile,
        "reason": reason,
        "parent_image": img.file_name,
        "annotation": i,
        "category_id": ann.category_id,
        "box": [round(v, 3) for v in ann.bbox],
    }
    if vis is not None:
        rec["visible_fraction"] = round(vis, 4)
    return rec


# -- writing --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _ImageJob:
    """Picklable work for one source image: where to read, what to write."""

    index: int
    source: Path
    tiles: tuple[tuple[str, int, int, int, int, bool], ...]  # dest, x, y, w, h, passthrough
    quality: int
    max_pixels: int | None


_ITEM_ERRORS: dict[str, type[ItemError]] = {
    cls.kind: cls for cls in (CorruptImageError, ImageTooLargeError, MissingFileError)
}


def _write_image_tiles(job: _ImageJob) -> tuple[int, dict[str, Any] | None]:
    """Decode one source image once and write its tiles; an item error comes back as data."""
    try:
        image = None
        for folder in {Path(t[0]).parent for t in job.tiles}:
            folder.mkdir(parents=True, exist_ok=True)
        for dest, x, y, w, h, passthrough in job.tiles:
            out = Path(dest)
            if passthrough:
                if not job.source.is_file():
                    raise MissingFileError(
                        job.source, "image file does not exist", hint="check the path"
                    )
                shutil.copyfile(job.source, out)
                continue
            if image is None:
                image = read_image(job.source, max_pixels=job.max_pixels)
            write_image(out, image[y : y + h, x : x + w], quality=job.quality)
    except ItemError as err:
        # Typed errors are rebuilt in the parent: their keyword-only fields do not pickle.
        return job.index, {"kind": err.kind, "where": err.where, "rule": err.rule, "hint": err.hint}
    return job.index, None


def _rebuild_error(data: dict[str, Any]) -> ItemError:
    cls = _ITEM_ERRORS.get(data["kind"], CorruptImageError)
    return cls(data["where"], data["rule"], hint=data["hint"])


def image_dir(out: Path, split: str | None) -> Path:
    """Where the COCO and YOLO writers expect the images of ``split`` (None: unsplit)."""
    return out / "images" if split is None else out / "images" / split


def write_tiles(
    plan: TilePlan,
    out: Path,
    config: TileConfig,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    policy: ErrorPolicy | None = None,
) -> TilePlan:
    """Write the planned tile images under ``out/images[/split]/``; return the plan of what was written.

    Each source image is decoded once in a worker of ``executor`` (serial when None).
    An image that cannot be decoded goes through ``policy``: under ``skip`` its tiles
    are left out (and counted), under ``fail`` the error is raised.
    """
    executor = executor or SerialExecutor()
    progress = progress or NullProgress()
    policy = policy or ErrorPolicy()
    by_source: dict[int, list[PlannedTile]] = {}
    for t in plan.tiles:
        t.item.path = image_dir(out, t.item.split) / t.item.file_name
        by_source.setdefault(t.source_index, []).append(t)
    jobs = [
        _ImageJob(
            index=si,
            source=plan.sources[si].path,
            tiles=tuple(
                (
                    str(t.item.path),
                    t.window.x,
                    t.window.y,
                    t.window.width,
                    t.window.height,
                    t.passthrough,
                )
                for t in ts
            ),
            quality=config.quality,
            max_pixels=config.max_pixels,
        )
        for si, ts in sorted(by_source.items())
    ]
    failed: set[int] = set()
    results = executor.map(_write_image_tiles, jobs, chunksize=1)
    for si, err in progress.track(results, total=len(jobs), description="writing tiles"):
        if err is not None:
            policy.handle(_rebuild_error(err))
            failed.add(si)
    if not failed:
        return plan
    kept = [t for t in plan.tiles if t.source_index not in failed]
    for t in plan.tiles:
        if t.source_index in failed and t.item.path.exists():
            t.item.path.unlink()
    counts = dict(plan.counts)
    counts["images_failed"] = len(failed)
    counts["tiles"] = len(kept)
    counts["tile_boxes"] = sum(len(t.item.annotations) for t in kept)
    return TilePlan(plan.sources, kept, plan.categories, plan.info, counts, plan.dropped)


@dataclass
class TileResult:
    """What :func:`tile_dataset` did: the plan as written, and the writer's report."""

    plan: TilePlan
    write: WriteResult

    @property
    def counts(self) -> dict[str, Any]:
        return self.plan.counts


def tile_dataset(
    dataset: Dataset,
    out: Path,
    fmt: str,
    config: TileConfig,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    policy: ErrorPolicy | None = None,
) -> TileResult:
    """Tile ``dataset`` into the (empty, temporary) folder ``out`` in format ``fmt``.

    Plans, writes the tile images itself, then the annotations through
    :func:`curate.io.write_dataset` with ``copy_images=False``.
    """
    from curate.io import write_dataset

    progress = progress or NullProgress()
    plan = plan_tiles(dataset, config, progress=progress)
    if fmt == "yolo":
        plan = _without_unlabeled(plan)
    plan = write_tiles(plan, out, config, executor=executor, progress=progress, policy=policy)
    result = write_dataset(
        plan.dataset(), out, fmt, WriteOptions(copy_images=False, progress=progress)
    )
    return TileResult(plan, result)


def _without_unlabeled(plan: TilePlan) -> TilePlan:
    """YOLO reads an image without labels as a negative: leave unlabeled tiles out, and say so."""
    kept = [t for t in plan.tiles if not t.item.attributes.get("unlabeled")]
    if len(kept) == len(plan.tiles):
        return plan
    dropped = list(plan.dropped)
    for t in plan.tiles:
        if t.item.attributes.get("unlabeled"):
            dropped.append(
                {
                    "item": t.item.file_name,
                    "reason": "unlabeled tile: YOLO would read it as a negative",
                }
            )
    counts = dict(plan.counts)
    counts["tiles"] = len(kept)
    counts["tiles_unlabeled_dropped"] = len(plan.tiles) - len(kept)
    return TilePlan(plan.sources, kept, plan.categories, plan.info, counts, dropped)
