"""Tiling: windows, box/polygon/mask clipping, the plan and the written tiles."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from curate.core import boxes as B
from curate.core.dataset import Annotation, Category, Dataset, ImageItem, Mask
from curate.core.errors import (
    CorruptImageError,
    ErrorPolicy,
    ImageTooLargeError,
    OnError,
    UsageError,
)
from curate.core.imageio import read_image, write_image
from curate.core.parallel import ProcessExecutor, make_executor
from curate.io import load_dataset
from curate.tiling import (
    DROP_AREA,
    DROP_MASK,
    DROP_VISIBILITY,
    TileConfig,
    Window,
    assign_boxes,
    axis_starts,
    clip_mask,
    clip_polygon,
    multiscale_windows,
    plan_tiles,
    polygon_area,
    tile_dataset,
    tile_windows,
)

# -- helpers -------------------------------------------------------------------------


def _dataset(images: list[ImageItem]) -> Dataset:
    return Dataset([Category(1, "car"), Category(2, "truck")], images)


def _item(
    w: int,
    h: int,
    boxes: list[tuple[float, float, float, float]],
    name: str = "a.jpg",
    path: Path | None = None,
) -> ImageItem:
    return ImageItem(name, path or Path(name), w, h, [Annotation(b, 1) for b in boxes])


@st.composite
def image_and_boxes(draw: st.DrawFn, max_boxes: int = 40) -> tuple[int, int, np.ndarray]:
    w = draw(st.integers(1, 2500))
    h = draw(st.integers(1, 2500))
    n = draw(st.integers(0, max_boxes))
    rows = []
    for _ in range(n):
        x1 = draw(st.floats(0, w, allow_nan=False, allow_infinity=False))
        y1 = draw(st.floats(0, h, allow_nan=False, allow_infinity=False))
        x2 = draw(st.floats(x1, w, allow_nan=False, allow_infinity=False))
        y2 = draw(st.floats(y1, h, allow_nan=False, allow_infinity=False))
        rows.append((x1, y1, x2, y2))
    return w, h, B.as_boxes(rows)


# -- windows -------------------------------------------------------------------------


def test_axis_starts_shift_the_last_window_inward() -> None:
    assert axis_starts(1280, 640, 0.2) == [0, 512, 640]
    assert axis_starts(1152, 640, 0.2) == [0, 512]  # ends exactly at the edge: no duplicate
    assert axis_starts(640, 640, 0.2) == [0]
    assert axis_starts(100, 640, 0.2) == [0]


def test_small_image_is_one_whole_window() -> None:
    assert tile_windows(500, 300, 640) == [Window(0, 0, 500, 300)]
    assert tile_windows(700, 300, 640, 0.0) == [Window(0, 0, 640, 300), Window(60, 0, 640, 300)]


@pytest.mark.parametrize("bad", [(0, 0.2), (640, 1.0), (640, -0.1)])
def test_bad_size_or_overlap_is_a_usage_error(bad: tuple[int, float]) -> None:
    with pytest.raises(UsageError):
        tile_windows(1000, 1000, *bad)


@settings(max_examples=200, deadline=None)
@given(
    w=st.integers(1, 5000),
    h=st.integers(1, 5000),
    size=st.integers(16, 1500),
    overlap=st.floats(0, 0.9),
)
def test_windows_cover_the_image_and_stay_inside(w: int, h: int, size: int, overlap: float) -> None:
    wins = tile_windows(w, h, size, overlap)
    assert len(set(wins)) == len(wins)
    for win in wins:
        assert 0 <= win.x and 0 <= win.y
        assert win.x + win.width <= w and win.y + win.height <= h
        assert win.width == min(size, w) and win.height == min(size, h)
    for length, starts in ((w, axis_starts(w, size, overlap)), (h, axis_starts(h, size, overlap))):
        ext = min(size, length)
        assert starts[0] == 0 and starts[-1] + ext == length
        # Consecutive windows touch or overlap by at least the requested overlap: no gaps.
        for a, b in itertools.pairwise(starts):
            assert a < b and a + ext - b >= int(size * overlap)


def test_multiscale_windows_list_shared_windows_once() -> None:
    scaled = multiscale_windows(900, 600, (512, 1024), 0.2)
    sizes = [s for s, _ in scaled]
    assert sizes.count(1024) == 1 and scaled[-1][1] == Window(0, 0, 900, 600)
    assert len({w for _, w in scaled}) == len(scaled)


# -- boxes ---------------------------------------------------------------------------


def test_assign_boxes_whole_cut_and_dropped() -> None:
    win = Window(100, 100, 200, 200)
    boxes = [
        (110, 110, 120, 120),  # wholly inside, tiny: kept unchanged despite min_area
        (90, 150, 130, 190),  # 3/4 visible, 1200 px: kept cut
        (290, 150, 330, 190),  # 1/4 visible: dropped by visibility
        (295, 100, 305, 101.4),  # half visible but 7 px: dropped by area
        (400, 400, 410, 410),  # elsewhere
        (300, 100, 310, 110),  # touches the edge only: not in the window
    ]
    src = B.as_boxes(boxes)
    before = src.copy()
    [r] = assign_boxes(src, [win], min_visibility=0.3, min_area=16)
    np.testing.assert_array_equal(src, before)
    assert r.kept_index.tolist() == [0, 1]
    np.testing.assert_array_equal(r.kept, [[10, 10, 20, 20], [0, 50, 30, 90]])
    assert r.whole.tolist() == [True, False]
    assert r.visible.tolist() == pytest.approx([1.0, 0.75])
    assert r.dropped_index.tolist() == [2, 3]
    assert r.dropped_reason == [DROP_VISIBILITY, DROP_AREA]


@settings(max_examples=150, deadline=None)
@given(data=image_and_boxes(), size=st.integers(32, 900), overlap=st.floats(0, 0.6))
def test_whole_boxes_come_back_exactly_and_no_box_leaves_its_tile(
    data: tuple[int, int, np.ndarray], size: int, overlap: float
) -> None:
    w, h, boxes = data
    wins = tile_windows(w, h, size, overlap)
    results = assign_boxes(boxes, wins, min_visibility=0.3, min_area=16)
    for win, r in zip(wins, results, strict=True):
        assert (r.kept >= 0).all()
        assert (r.kept[:, [0, 2]] <= win.width).all() and (r.kept[:, [1, 3]] <= win.height).all()
        wx1, wy1, wx2, wy2 = win.box
        inside = (
            (boxes[:, 0] >= wx1)
            & (boxes[:, 1] >= wy1)
            & (boxes[:, 2] <= wx2)
            & (boxes[:, 3] <= wy2)
        )
        expected = set(np.flatnonzero(inside).tolist())
        got = {int(i) for i, whole in zip(r.kept_index, r.whole, strict=True) if whole}
        assert got == expected
        for i, local, whole, vis in zip(r.kept_index, r.kept, r.whole, r.visible, strict=True):
            back = local + np.array([win.x, win.y, win.x, win.y])
            if whole:
                assert back.tolist() == boxes[i].tolist()  # exactly, not approximately
            else:
                assert vis >= 0.3 and B.area(local)[0] >= 16


# -- polygons and masks --------------------------------------------------------------


def test_clip_polygon_square_and_outside() -> None:
    sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    out = clip_polygon(sq, (5, -1, 20, 20))
    assert polygon_area(out) == pytest.approx(50)
    assert out[:, 0].min() == 5
    assert clip_polygon(sq, (20, 20, 30, 30)).shape == (0, 2)
    np.testing.assert_array_equal(clip_polygon(sq, (-1, -1, 11, 11)), sq)  # inside: unchanged


@st.composite
def star_polygon(draw: st.DrawFn) -> np.ndarray:
    # Star-shaped about its centre with angular gaps < pi: simple, possibly concave.
    n = draw(st.integers(4, 12))
    cx, cy = draw(st.floats(50, 150)), draw(st.floats(50, 150))
    jitter = draw(st.lists(st.floats(0, 0.5), min_size=n, max_size=n))
    angles = [2 * np.pi * (k + j) / n for k, j in enumerate(jitter)]
    radii = draw(st.lists(st.floats(5, 60), min_size=n, max_size=n))
    return np.array(
        [[cx + r * np.cos(a), cy + r * np.sin(a)] for a, r in zip(angles, radii, strict=True)]
    )


@settings(max_examples=150, deadline=None)
@given(poly=star_polygon(), cut_x=st.floats(0, 200), cut_y=st.floats(0, 200))
def test_clipped_pieces_stay_inside_and_partition_the_area(
    poly: np.ndarray, cut_x: float, cut_y: float
) -> None:
    rects = [
        (-10, -10, cut_x, cut_y),
        (cut_x, -10, 250, cut_y),
        (-10, cut_y, cut_x, 250),
        (cut_x, cut_y, 250, 250),
    ]
    total = 0.0
    for r in rects:
        piece = clip_polygon(poly, r)
        if len(piece):
            assert (piece[:, 0] >= r[0]).all() and (piece[:, 0] <= r[2]).all()
            assert (piece[:, 1] >= r[1]).all() and (piece[:, 1] <= r[3]).all()
        total += polygon_area(piece)
    assert total == pytest.approx(polygon_area(poly), rel=1e-6, abs=1e-6)


# pycocotools' RLE decode warns under NumPy 2 (copy keyword); harmless, not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_clip_mask_rle_and_bitmap_crop() -> None:
    bitmap = np.zeros((50, 80), bool)
    bitmap[10:20, 30:45] = True
    win = Window(40, 5, 30, 30)
    for kind in ("rle", "bitmap"):
        mask = (
            Mask.from_bitmap(bitmap)
            if kind == "bitmap"
            else Mask("rle", Mask.from_bitmap(bitmap).to_rle(50, 80))
        )
        out = clip_mask(mask, win, 50, 80)
        assert out is not None and out.kind == kind
        np.testing.assert_array_equal(out.to_bitmap(30, 30), bitmap[5:35, 40:70])
    assert clip_mask(Mask.from_bitmap(bitmap), Window(0, 30, 20, 20), 50, 80) is None


# -- plan ----------------------------------------------------------------------------


def test_plan_records_parents_offsets_and_groups() -> None:
    img = _item(1500, 1000, [(10, 10, 30, 30), (600, 600, 700, 700)])
    img.id = 42
    small = _item(300, 200, [], name="sub/small.png")
    plan = plan_tiles(_dataset([img, small]), TileConfig(keep_empty=1.0))
    tiles = plan.dataset()
    names = [t.file_name for t in tiles]
    assert "a_0_0_640_640.jpg" in names and "sub/small.png" in names
    first = tiles.images[0]
    assert first.attributes == {
        "parent_image": "a.jpg",
        "parent_id": 42,
        "parent_width": 1500,
        "parent_height": 1000,
        "tile_x": 0,
        "tile_y": 0,
        "tile_size": 640,
    }
    assert {t.group for t in tiles.images} == {"a.jpg", "sub/small.png"}
    last = tiles.images[-1]
    assert last.attributes["parent_id"] == 2 and (last.width, last.height) == (300, 200)
    assert plan.counts["tiles_passthrough"] == 1


def test_plan_keeps_clipped_attributes_and_counts_drops() -> None:
    img = _item(1500, 1000, [(600, 600, 700, 700)])  # 0.16 visible in the top-left tile
    plan = plan_tiles(_dataset([img]), TileConfig(keep_empty=1.0, min_visibility=0.3))
    c = plan.counts
    assert c["boxes_dropped"] == {DROP_VISIBILITY: 1}
    assert c["boxes_whole"] == 1 and c["source_boxes_whole_somewhere"] == 1
    cut = [a for t in plan.dataset().images for a in t.annotations if a.attributes.get("truncated")]
    assert cut and all(0.3 <= a.attributes["visible_fraction"] < 1 for a in cut)
    assert (
        plan.dropped[0]["reason"] == DROP_VISIBILITY and plan.dropped[0]["parent_image"] == "a.jpg"
    )


def test_plan_does_not_change_the_input() -> None:
    img = _item(1500, 1000, [(600, 600, 700, 700)])
    img.annotations[0].mask = Mask.from_polygons([[600, 600, 700, 600, 700, 700]])
    ds = _dataset([img])
    before = copy.deepcopy(ds)
    plan_tiles(ds, TileConfig())
    assert ds.images[0].annotations[0].bbox == before.images[0].annotations[0].bbox
    np.testing.assert_array_equal(
        ds.images[0].annotations[0].mask.data[0], before.images[0].annotations[0].mask.data[0]
    )
    assert ds.images[0].attributes == before.images[0].attributes


def test_mask_outside_tile_is_dropped() -> None:
    # An L-shaped object: its box reaches into the top-right tile, its pixels do not.
    poly = [[500, 0], [560, 0], [560, 900], [1400, 900], [1400, 960], [500, 960]]
    img = _item(1500, 1000, [(500, 0, 1400, 960)])
    img.annotations[0].mask = Mask.from_polygons([np.array(poly, float)])
    plan = plan_tiles(_dataset([img]), TileConfig(keep_empty=1.0, min_visibility=0.0, min_area=0))
    assert plan.counts["boxes_dropped"].get(DROP_MASK, 0) >= 1
    for t in plan.dataset().images:
        for a in t.annotations:
            assert a.mask is not None and a.mask.kind == "polygons"
            pts = np.concatenate(a.mask.data)
            assert (
                (pts >= 0).all() and (pts[:, 0] <= t.width).all() and (pts[:, 1] <= t.height).all()
            )


def test_empty_tiles_are_sampled_exactly_and_deterministically() -> None:
    imgs = [_item(3000, 3000, [(5, 5, 20, 20)], name=f"i{k}.jpg") for k in range(4)]
    cfg = TileConfig(keep_empty=0.25, seed=7)
    a = plan_tiles(_dataset(imgs), cfg)
    b = plan_tiles(_dataset(imgs), cfg)
    c = plan_tiles(_dataset(imgs), TileConfig(keep_empty=0.25, seed=8))
    n_empty = a.counts["tiles_empty_candidates"]
    assert a.counts["tiles_empty_kept"] == round(0.25 * n_empty)
    assert [t.item.file_name for t in a.tiles] == [t.item.file_name for t in b.tiles]
    assert [t.item.file_name for t in a.tiles] != [t.item.file_name for t in c.tiles]
    assert a.counts["tiles"] == 4 + round(0.25 * n_empty)


def test_multiscale_plan_counts_each_size() -> None:
    plan = plan_tiles(
        _dataset([_item(2000, 1500, [(10, 10, 40, 40)])]),
        TileConfig(sizes=(512, 1024), keep_empty=1.0),
    )
    by = plan.counts["windows_by_size"]
    assert by["512"] == len(tile_windows(2000, 1500, 512, 0.2))
    assert by["1024"] == len(tile_windows(2000, 1500, 1024, 0.2))
    assert {t.item.attributes["tile_size"] for t in plan.tiles} == {512, 1024}


@settings(max_examples=60, deadline=None)
@given(data=image_and_boxes(max_boxes=25), size=st.integers(64, 700), keep=st.floats(0, 1))
def test_plan_property_whole_boxes_are_in_their_tiles(
    data: tuple[int, int, np.ndarray], size: int, keep: float
) -> None:
    w, h, boxes = data
    img = _item(w, h, [tuple(b) for b in boxes.tolist()])
    plan = plan_tiles(_dataset([img]), TileConfig(sizes=(size,), keep_empty=keep, min_area=0))
    by_window = {t.window: t.item for t in plan.tiles}
    for win in tile_windows(w, h, size, 0.2):
        x1, y1, x2, y2 = win.box
        inside = [
            b for b in boxes.tolist() if b[0] >= x1 and b[1] >= y1 and b[2] <= x2 and b[3] <= y2
        ]
        if not inside:
            continue
        tile = by_window[win]
        back = [
            [a.bbox[0] + win.x, a.bbox[1] + win.y, a.bbox[2] + win.x, a.bbox[3] + win.y]
            for a in tile.annotations
        ]
        for b in inside:
            assert b in back
        for a in tile.annotations:
            assert (
                0 <= a.bbox[0] <= a.bbox[2] <= tile.width
                and 0 <= a.bbox[1] <= a.bbox[3] <= tile.height
            )


# -- written tiles -------------------------------------------------------------------


def _source_images(tmp_path: Path) -> Dataset:
    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    src.mkdir()
    big = rng.integers(0, 255, (1000, 1500, 3), dtype=np.uint8)
    write_image(src / "big.jpg", big)
    png = rng.integers(0, 255, (700, 900, 3), dtype=np.uint8)
    write_image(src / "mid.png", png)
    write_image(src / "small.jpg", rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    imgs = [
        _item(1500, 1000, [(10, 10, 30, 30), (600, 600, 700, 700)], "big.jpg", src / "big.jpg"),
        _item(900, 700, [(100, 100, 150, 140)], "mid.png", src / "mid.png"),
        _item(400, 300, [(1, 1, 50, 50)], "small.jpg", src / "small.jpg"),
    ]
    return _dataset(imgs)


def test_tile_dataset_writes_tiles_with_the_source_codec(tmp_path: Path) -> None:
    ds = _source_images(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    res = tile_dataset(ds, out, "coco", TileConfig(keep_empty=1.0))
    assert res.write.images == res.counts["tiles"] == len(list((out / "images").rglob("*.*")))
    png = read_image(tmp_path / "src" / "mid.png")
    for t in res.plan.tiles:
        path = out / "images" / t.item.file_name
        with Image.open(path) as im:
            assert im.format == ("PNG" if path.suffix == ".png" else "JPEG")
            assert im.size == (t.window.width, t.window.height)
        if path.suffix == ".png":
            w = t.window
            np.testing.assert_array_equal(
                read_image(path), png[w.y : w.y + w.height, w.x : w.x + w.width]
            )
    # The small image passes through byte for byte.
    assert (out / "images" / "small.jpg").read_bytes() == (
        tmp_path / "src" / "small.jpg"
    ).read_bytes()
    back = load_dataset(f"coco:{out}")
    assert len(back) == res.counts["tiles"]
    rec = next(i for i in back if i.file_name == "big_0_0_640_640.jpg")
    assert rec.attributes["parent_image"] == "big.jpg" and rec.attributes["tile_x"] == 0
    assert rec.group == "big.jpg"


def test_tile_dataset_yolo_keeps_parent_records_in_the_sidecar(tmp_path: Path) -> None:
    ds = _source_images(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    res = tile_dataset(ds, out, "yolo", TileConfig(keep_empty=1.0))
    side = json.loads((out / "sodkit.json").read_text())
    attrs = [m["attributes"] for m in side["images"].values()]
    assert len(attrs) == res.counts["tiles"] and all(
        "tile_x" in a and "parent_id" in a for a in attrs
    )
    back = load_dataset(f"yolo:{out}")
    assert {i.attributes["parent_image"] for i in back} == {"big.jpg", "mid.png", "small.jpg"}


def test_process_pool_gives_the_same_output_as_serial(tmp_path: Path) -> None:
    ds = _source_images(tmp_path)
    outs = []
    for name, ex in (("serial", None), ("pool", ProcessExecutor(2))):
        out = tmp_path / name
        out.mkdir()
        try:
            tile_dataset(ds, out, "coco", TileConfig(keep_empty=0.5, seed=1), executor=ex)
        finally:
            if ex is not None:
                ex.close()
        outs.append(out)
    a = json.loads((outs[0] / "annotations.json").read_text())
    b = json.loads((outs[1] / "annotations.json").read_text())
    assert a["images"] == b["images"] and a["annotations"] == b["annotations"]
    for f in (outs[0] / "images").rglob("*.*"):
        assert (
            f.read_bytes() == (outs[1] / "images" / f.relative_to(outs[0] / "images")).read_bytes()
        )


def test_corrupt_source_is_skipped_or_fails(tmp_path: Path) -> None:
    ds = _source_images(tmp_path)
    (tmp_path / "src" / "big.jpg").write_bytes(b"\xff\xd8not a jpeg\xff\xd9")
    out = tmp_path / "fail"
    out.mkdir()
    with pytest.raises(CorruptImageError):
        tile_dataset(ds, out, "coco", TileConfig())
    out = tmp_path / "skip"
    out.mkdir()
    policy = ErrorPolicy(OnError.skip)
    res = tile_dataset(ds, out, "coco", TileConfig(keep_empty=1.0), policy=policy)
    assert len(policy.skipped) == 1 and res.counts["images_failed"] == 1
    assert not any(p.name.startswith("big") for p in (out / "images").rglob("*"))
    names = {i["file_name"] for i in json.loads((out / "annotations.json").read_text())["images"]}
    assert names and not any(n.startswith("big") for n in names)


def test_too_large_image_is_a_clear_error(tmp_path: Path) -> None:
    ds = _source_images(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ImageTooLargeError, match="--max-pixels"):
        tile_dataset(ds, out, "coco", TileConfig(max_pixels=1_000_000))


def test_dask_scheduler_gives_the_same_output_as_serial(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    ds = _source_images(tmp_path)
    serial, dask = tmp_path / "serial", tmp_path / "dask"
    serial.mkdir()
    dask.mkdir()
    tile_dataset(ds, serial, "coco", TileConfig(keep_empty=0.5, seed=1))
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        ex = make_executor(scheduler=client)
        assert ex.name == "dask"
        tile_dataset(ds, dask, "coco", TileConfig(keep_empty=0.5, seed=1), executor=ex)
    assert (serial / "annotations.json").read_text() == (dask / "annotations.json").read_text()
    for f in (serial / "images").rglob("*.*"):
        assert f.read_bytes() == (dask / "images" / f.relative_to(serial / "images")).read_bytes()
