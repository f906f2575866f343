"""Tiling on real aerial images (``../shared/data/sahi-terrain``), checked against an
independent count: windows from a SAHI-style loop and one box at a time in plain Python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curate.core import boxes as B
from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.errors import ErrorPolicy, OnError
from curate.core.imageio import probe, read_image
from curate.formats.base import ReadOptions
from curate.io import load_dataset
from curate.merge_preds import MergeConfig, tile_index, untile_predictions
from curate.tiling import (
    DROP_AREA,
    DROP_MASK,
    DROP_VISIBILITY,
    TileConfig,
    plan_tiles,
    tile_dataset,
)

pytestmark = pytest.mark.real

SIZE, OVERLAP, MIN_VIS, MIN_AREA = 640, 0.2, 0.3, 16.0


@pytest.fixture(scope="module")
def terrain(shared_data: Path) -> Path:
    root = shared_data / "sahi-terrain"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    return root


def _coco_datasets(root: Path) -> list[tuple[str, Dataset]]:
    """Every COCO file under ``root`` with at least one image present (absent images skipped)."""
    out = []
    for f in sorted(root.rglob("*.json")):
        head = f.read_text(encoding="utf-8", errors="replace")[:4096]
        if '"images"' not in head and '"annotations"' not in head:
            continue
        data = json.loads(f.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not data.get("images"):
            continue
        ds = load_dataset(f"coco:{f}", ReadOptions(policy=ErrorPolicy(OnError.skip)))
        if len(ds):
            out.append((str(f.relative_to(root)), ds))
    return out


def _dense_dataset(root: Path, rng: np.random.Generator) -> Dataset:
    """The real large photos with hundreds of small car-sized boxes each."""
    images = []
    for name in ("boats.jpg", "small-vehicles1.jpeg", "coco_utils/terrain1.jpg"):
        path = root / name
        if not path.is_file():
            continue
        info = probe(path)
        n = 400
        wh = rng.uniform(6, 48, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([info.width, info.height]) - wh)
        anns = [
            Annotation((float(x), float(y), float(x + w), float(y + h)), 1)
            for (x, y), (w, h) in zip(xy, wh, strict=True)
        ]
        images.append(ImageItem(name, path, info.width, info.height, anns))
    return Dataset([Category(1, "car")], images)


def _starts(length: int, size: int, overlap: float) -> list[int]:
    """SAHI's loop: step by size - overlap px, the last window pulled back inside."""
    if length <= size:
        return [0]
    step = size - int(size * overlap)
    out, s = [], 0
    while True:
        if s + size >= length:
            out.append(length - size)
            break
        out.append(s)
        s += step
    return sorted(set(out))


def independent_counts(
    ds: Dataset, size: int, overlap: float, min_vis: float, min_area: float
) -> dict[str, Any]:
    c = {
        "windows": 0,
        "whole": 0,
        "cut": 0,
        DROP_VISIBILITY: 0,
        DROP_AREA: 0,
        "empty": 0,
        "cut_everywhere": 0,
        "lost": 0,
    }
    for img in ds.images:
        wins = [
            (x, y, x + min(size, img.width), y + min(size, img.height))
            for y in _starts(img.height, size, overlap)
            for x in _starts(img.width, size, overlap)
        ]
        c["windows"] += len(wins)
        whole_somewhere = [False] * len(img.annotations)
        kept_somewhere = [False] * len(img.annotations)
        for wx1, wy1, wx2, wy2 in wins:
            kept_here = 0
            for k, a in enumerate(img.annotations):
                x1, y1, x2, y2 = a.bbox
                if x1 >= wx1 and y1 >= wy1 and x2 <= wx2 and y2 <= wy2:
                    c["whole"] += 1
                    kept_here += 1
                    whole_somewhere[k] = kept_somewhere[k] = True
                    continue
                iw = min(x2, wx2) - max(x1, wx1)
                ih = min(y2, wy2) - max(y1, wy1)
                if iw <= 0 or ih <= 0:
                    continue
                inter = iw * ih
                vis = inter / ((x2 - x1) * (y2 - y1))
                if vis < min_vis:
                    c[DROP_VISIBILITY] += 1
                elif inter < min_area:
                    c[DROP_AREA] += 1
                else:
                    c["cut"] += 1
                    kept_here += 1
                    kept_somewhere[k] = True
            c["empty"] += kept_here == 0
        c["cut_everywhere"] += sum(
            k and not w for k, w in zip(kept_somewhere, whole_somewhere, strict=True)
        )
        c["lost"] += sum(not k for k in kept_somewhere)
    return c


def _check(plan_counts: dict[str, Any], ind: dict[str, Any]) -> None:
    dropped = plan_counts["boxes_dropped"]
    assert plan_counts["windows"] == ind["windows"]
    assert dropped.get(DROP_VISIBILITY, 0) == ind[DROP_VISIBILITY]
    assert dropped.get(DROP_AREA, 0) == ind[DROP_AREA]
    mask_drops = dropped.get(DROP_MASK, 0)
    assert (
        plan_counts["boxes_whole"] + plan_counts["boxes_cut"] + mask_drops
        == ind["whole"] + ind["cut"]
    )
    if mask_drops == 0:
        assert plan_counts["boxes_whole"] == ind["whole"]
        assert plan_counts["boxes_cut"] == ind["cut"]
        assert plan_counts["source_boxes_cut_everywhere"] == ind["cut_everywhere"]
        assert plan_counts["source_boxes_lost"] == ind["lost"]


def test_counts_on_the_coco_files_match_an_independent_count(terrain: Path) -> None:
    found = _coco_datasets(terrain)
    assert found, "no COCO file with its images under sahi-terrain"
    for _name, ds in found:
        plan = plan_tiles(
            ds,
            TileConfig(
                sizes=(SIZE,),
                overlap=OVERLAP,
                min_visibility=MIN_VIS,
                min_area=MIN_AREA,
                keep_empty=1.0,
            ),
        )
        _check(plan.counts, independent_counts(ds, SIZE, OVERLAP, MIN_VIS, MIN_AREA))
        assert plan.counts["tiles"] == plan.counts["windows"]


@pytest.mark.parametrize(
    ("size", "overlap", "min_vis", "min_area"),
    [(640, 0.2, 0.3, 16.0), (512, 0.1, 0.5, 64.0), (256, 0.25, 0.0, 0.0)],
)
def test_dense_small_boxes_match_an_independent_count(
    terrain: Path, size: int, overlap: float, min_vis: float, min_area: float
) -> None:
    ds = _dense_dataset(terrain, np.random.default_rng(11))
    assert len(ds) >= 2
    plan = plan_tiles(
        ds,
        TileConfig(
            sizes=(size,),
            overlap=overlap,
            min_visibility=min_vis,
            min_area=min_area,
            keep_empty=0.25,
            seed=3,
        ),
    )
    ind = independent_counts(ds, size, overlap, min_vis, min_area)
    _check(plan.counts, ind)
    assert plan.counts["tiles_empty_candidates"] == ind["empty"] - plan.counts["tiles_passthrough"]
    assert plan.counts["tiles"] == ind["windows"] - ind["empty"] + round(0.25 * ind["empty"])


def test_written_tiles_hold_the_source_pixels(terrain: Path, tmp_path: Path) -> None:
    ds = dict(_coco_datasets(terrain)).get("coco_utils/combined_coco.json")
    if ds is None:
        pytest.skip("combined_coco.json or its images are absent")
    out = tmp_path / "tiles"
    out.mkdir()
    res = tile_dataset(ds, out, "coco", TileConfig(keep_empty=1.0))
    sources = {img.file_name: read_image(img.path) for img in ds.images}
    for t in res.plan.tiles:
        w = t.window
        crop = sources[t.item.attributes["parent_image"]][w.y : w.y + w.height, w.x : w.x + w.width]
        tile = read_image(t.item.path)
        assert tile.shape == crop.shape
        if t.item.path.suffix == ".png":
            np.testing.assert_array_equal(tile, crop)
        else:  # JPEG at quality 95: close, not equal
            assert np.abs(tile.astype(int) - crop).mean() < 3.0
    back = load_dataset(f"coco:{out}")
    assert sum(len(i.annotations) for i in back) == res.counts["tile_boxes"]


def test_untile_of_real_ground_truth_gives_back_the_boxes(terrain: Path) -> None:
    ds = _dense_dataset(terrain, np.random.default_rng(5))
    plan = plan_tiles(ds, TileConfig(keep_empty=0.0))
    tiles = plan.dataset()
    tiles.assign_ids()
    preds = [
        {
            "image_id": t.id,
            "category_id": 1,
            "bbox": B.xyxy_to_xywh([a.bbox])[0].tolist(),
            "score": 1.0,
        }
        for t in tiles.images
        for a in t.annotations
    ]
    res = untile_predictions(preds, tile_index(tiles), config=MergeConfig("greedy_nmm", "ios", 0.5))
    for pid, img in enumerate(ds.images, start=1):
        got = B.xywh_to_xyxy([r["bbox"] for r in res.results if r["image_id"] == pid])
        best = B.iou(img.boxes(), got).max(axis=1)
        # Boxes that overlap another box may merge with it (IoS); isolated ones come back exactly.
        isolated = (B.intersection(img.boxes(), img.boxes()) > 0).sum(axis=1) == 1
        assert (best[isolated] > 0.99).all()
