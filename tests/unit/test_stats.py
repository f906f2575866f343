"""curate.stats and curate.report on datasets built in code."""

from __future__ import annotations

import base64
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.errors import UsageError
from curate.report import PLOT_TITLES, make_plots, render_html, write_report
from curate.stats import (
    SIZE_BUCKETS,
    StatsOptions,
    compute_stats,
    double_label_pairs,
)


def _img(name: str, w: int, h: int, boxes: list[tuple[tuple[float, ...], int]]) -> ImageItem:
    return ImageItem(
        file_name=name,
        path=Path(name),
        width=w,
        height=h,
        annotations=[Annotation(bbox=tuple(b), category_id=c) for b, c in boxes],  # type: ignore[arg-type]
    )


def _cats(n: int) -> list[Category]:
    return [Category(i, f"c{i}") for i in range(n)]


def random_dataset(rng: np.random.Generator, n_images: int = 60, n_cls: int = 3) -> Dataset:
    """Boxes of all sizes, a few degenerate/out-of-bounds/unknown-class ones, some negatives."""
    images = []
    for i in range(n_images):
        w, h = (int(v) for v in rng.choice([[640, 480], [1920, 1080], [300, 900], [0, 0]]))
        anns = []
        for _ in range(int(rng.integers(0, 12))):
            side = float(np.exp(rng.uniform(np.log(0.5), np.log(400))))
            ar = float(np.exp(rng.normal(0, 0.5)))
            bw, bh = side * math.sqrt(ar), side / math.sqrt(ar)
            x = float(rng.uniform(-5, max(w, 50)))
            y = float(rng.uniform(-5, max(h, 50)))
            box = (x, y, x + bw, y + bh)
            u = rng.random()
            if u < 0.03:
                box = (x, y, x, y + bh)  # zero width
            elif u < 0.05:
                box = (x, y, x + bw, y + bh)
                cls = n_cls + 5  # unknown class
                anns.append((box, cls))
                continue
            anns.append((box, int(rng.integers(0, n_cls))))
            if rng.random() < 0.05:  # a double label: a jittered copy
                j = 0.01 * bw
                anns.append(((box[0] + j, box[1], box[2] + j, box[3]), anns[-1][1]))
        images.append(_img(f"im{i}.jpg", w, h, anns))
    return Dataset(_cats(n_cls), images)


# -- an independent, per-box computation ----------------------------------------------


def _bucket_name(area: float) -> str:
    side = math.sqrt(area)
    if side < 8:
        return "<8"
    if side < 16:
        return "8-16"
    if side < 32:
        return "16-32"
    if side < 96:
        return "32-96"
    return ">=96"


def _reference(ds: Dataset, imgsz: int) -> dict[str, dict[str, object]]:
    names = {c.id: c.name for c in ds.categories}
    out: dict[str, dict[str, object]] = {}

    def entry(name: str) -> dict[str, object]:
        return out.setdefault(
            name,
            {
                "boxes": 0,
                "images": set(),
                "native": dict.fromkeys(SIZE_BUCKETS, 0),
                "input": dict.fromkeys(SIZE_BUCKETS, 0),
                "ratios": [],
                "wh_below": 0,
                "sqrt_below": 0,
                "sized": 0,
                "heat": np.zeros((32, 32), dtype=np.int64),
            },
        )

    for idx, img in enumerate(ds.images):
        for a in img.annotations:
            name = names.get(a.category_id, f"<unknown id {a.category_id}>")
            for e in (entry(name), entry("all")):
                e["boxes"] += 1  # type: ignore[operator]
                e["images"].add(idx)  # type: ignore[attr-defined]
                x1, y1, x2, y2 = a.bbox
                w, h = x2 - x1, y2 - y1
                if not (w > 0 and h > 0):
                    continue
                e["native"][_bucket_name(w * h)] += 1  # type: ignore[index]
                if img.width > 0 and img.height > 0:
                    s = imgsz / max(img.width, img.height)
                    e["input"][_bucket_name(w * s * h * s)] += 1  # type: ignore[index]
                    r = w * h / (img.width * img.height)
                    e["ratios"].append(r)  # type: ignore[attr-defined]
                    e["sized"] += 1  # type: ignore[operator]
                    e["wh_below"] += int(w < 0.1 * img.width and h < 0.1 * img.height)  # type: ignore[operator]
                    e["sqrt_below"] += int(math.sqrt(r) < 0.03)  # type: ignore[operator]
                    cx = min(max(int((x1 + x2) / 2 / img.width * 32), 0), 31)
                    cy = min(max(int((y1 + y2) / 2 / img.height * 32), 0), 31)
                    e["heat"][cy, cx] += 1  # type: ignore[index]
    return out


@pytest.mark.parametrize("imgsz", [640, 1280])
def test_counts_equal_an_independent_computation(rng: np.random.Generator, imgsz: int) -> None:
    ds = random_dataset(rng, n_images=80)
    st_ = compute_stats(ds, StatsOptions(imgsz=imgsz))
    ref = _reference(ds, imgsz)
    by_name = {c.name: c for c in [*st_.classes, st_.overall]}
    for name, r in ref.items():
        c = by_name[name]
        assert c.boxes == r["boxes"], name
        assert c.buckets_native == r["native"], name
        assert {k: v for k, v in c.buckets_input.items()} == r["input"], name
        assert c.coco_input["small"] == sum(r["input"][k] for k in ("<8", "8-16", "16-32"))  # type: ignore[index]
        assert c.coco_native["medium"] == r["native"]["32-96"]  # type: ignore[index]
        if name != "all":
            assert c.images == len(r["images"])  # type: ignore[arg-type]
        ratios = r["ratios"]
        if ratios:
            assert c.median_area_ratio == pytest.approx(float(np.median(ratios)), rel=1e-12)  # type: ignore[arg-type]
            assert c.share_wh_below == pytest.approx(r["wh_below"] / r["sized"])  # type: ignore[operator]
            assert c.share_sqrt_ratio_below == pytest.approx(r["sqrt_below"] / r["sized"])  # type: ignore[operator]
        np.testing.assert_array_equal(st_.heatmaps[name], r["heat"])
    n_boxes = sum(len(i.annotations) for i in ds.images)
    assert st_.num_boxes == n_boxes
    assert st_.num_negatives == sum(1 for i in ds.images if not i.annotations)


def test_hand_made_dataset() -> None:
    ds = Dataset(
        [*_cats(2), Category(7, "smoke")],
        [
            _img(
                "a.jpg",
                1280,
                640,
                [
                    ((0, 0, 4, 4), 0),  # side 4 native, 2 at input 640
                    ((10, 10, 30, 30), 0),  # side 20 native, 10 at input
                    ((100, 100, 200, 200), 1),  # 100 native, 50 at input
                    ((100.5, 100, 200.5, 200), 1),  # double of the one above
                    ((5, 5, 5, 9), 0),  # degenerate
                    ((1270, 600, 1290, 620), 0),  # out of bounds
                    ((50, 50, 51.5, 60), 9),  # unknown class 9, under 2 px wide
                ],
            ),
            _img("b.jpg", 640, 640, []),
        ],
    )
    s = compute_stats(ds)
    c0, c1, smoke = s.classes[0], s.classes[1], s.classes[2]
    unknown = s.classes[3]
    assert [c.name for c in s.classes] == ["c0", "c1", "smoke", "<unknown id 9>"]
    assert c0.boxes == 4 and c0.valid_boxes == 3
    assert c0.buckets_native == {"<8": 1, "8-16": 0, "16-32": 2, "32-96": 0, ">=96": 0}
    assert c0.buckets_input == {"<8": 1, "8-16": 2, "16-32": 0, "32-96": 0, ">=96": 0}
    assert c1.buckets_native[">=96"] == 2 and c1.buckets_input["32-96"] == 2
    assert smoke.boxes == 0 and smoke.images == 0 and smoke.negatives == 2
    assert unknown.boxes == 1 and unknown.category_id == 9
    assert s.num_negatives == 1
    assert s.overall.images == 2 and s.overall.negatives == 1
    q = s.quality
    assert q.degenerate == 1
    assert q.out_of_bounds == 1
    assert q.under_min_side == 1
    assert q.double_labels == 1 and q.double_label_boxes == 2
    assert q.unknown_class_boxes == 1 and q.unknown_class_images == 1
    assert q.unknown_class_ids == [9]
    assert q.examples["double_labels"][0]["image"] == "a.jpg"
    assert q.examples["double_labels"][0]["iou"] > 0.9
    assert q.by_class["degenerate"] == {"c0": 1}
    assert s.objects_per_image["max"] == 7
    assert s.image_sizes["distinct"] == 2


def test_does_not_change_its_input(rng: np.random.Generator) -> None:
    ds = random_dataset(rng, n_images=20)
    before = copy.deepcopy(ds)
    compute_stats(ds)
    assert ds == before


def test_json_is_strict_and_complete(rng: np.random.Generator) -> None:
    s = compute_stats(random_dataset(rng, n_images=30))
    text = json.dumps(s.to_dict(), allow_nan=False)
    d = json.loads(text)
    assert set(d["heatmaps"]) == {"all", *s.class_names()}
    assert len(d["heatmaps"]["all"]) == 32
    assert d["overall"]["boxes"] == s.num_boxes
    assert "small_input" in d["classes"][0]


def test_heatmap_access(rng: np.random.Generator) -> None:
    s = compute_stats(random_dataset(rng, n_images=30), StatsOptions(heatmap_bins=8))
    hm = s.heatmap("c0", normalize=True)
    assert hm.shape == (8, 8)
    assert hm.sum() == pytest.approx(1.0)
    assert sum(s.heatmaps[n].sum() for n in s.class_names()) == s.heatmaps["all"].sum()
    with pytest.raises(UsageError, match="no heatmap"):
        s.heatmap("nope")


def test_empty_dataset() -> None:
    s = compute_stats(Dataset(_cats(1), []))
    assert s.num_boxes == 0 and s.overall.side_native["p50"] is None
    json.dumps(s.to_dict(), allow_nan=False)
    s2 = compute_stats(Dataset([], [_img("a.jpg", 10, 10, [])]))
    assert s2.num_negatives == 1


def test_unlabeled_images_are_not_negatives() -> None:
    img = _img("u.jpg", 100, 100, [])
    img.attributes["unlabeled"] = True
    s = compute_stats(Dataset(_cats(1), [img, _img("n.jpg", 100, 100, [])]))
    assert s.num_unlabeled == 1 and s.num_negatives == 1


def test_reader_issues_are_reported() -> None:
    ds = Dataset(_cats(1), [_img("a.jpg", 100, 100, [((0, 0, 10, 10), 0)])])
    ds.info["changed"] = [{"item": "a.jpg", "change": "box clipped to image"}]
    skipped = [{"kind": "bad-annotation", "file": "x.json", "error": "degenerate"}]
    s = compute_stats(ds, skipped=skipped)
    assert s.reader["skipped"] == 1 and s.reader["skipped_by_kind"] == {"bad-annotation": 1}
    assert s.reader["changed_by_kind"] == {"box clipped to image": 1}


@pytest.mark.parametrize(
    "kwargs", [{"imgsz": 0}, {"heatmap_bins": 0}, {"double_iou": 1.0}, {"double_iou": 0.0}]
)
def test_bad_options(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        StatsOptions(**kwargs)  # type: ignore[arg-type]


# -- double labels ---------------------------------------------------------------------


def _brute_pairs(boxes: np.ndarray, group: np.ndarray, thr: float) -> set[tuple[int, int]]:
    out = set()
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if group[i] != group[j]:
                continue
            a, b = boxes[i], boxes[j]
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if inter / union > thr:
                out.add((i, j))
    return out


def test_double_labels_match_brute_force(rng: np.random.Generator) -> None:
    n = 600
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(1, 30, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    # many near copies, some stacked in one column (same x1)
    src = rng.integers(0, n, 150)
    jitter = rng.normal(0, 0.3, (150, 4))
    boxes = np.concatenate([boxes, boxes[src] + jitter])
    boxes[:50, 0] = 10.0
    boxes[:50, 2] = np.maximum(boxes[:50, 2], 11.0)
    group = rng.integers(0, 4, len(boxes))
    group[n:] = group[src]
    for thr in (0.5, 0.9):
        a, b, iou = double_label_pairs(boxes, group, thr)
        assert set(zip(a.tolist(), b.tolist(), strict=True)) == _brute_pairs(boxes, group, thr)
        assert (iou > thr).all()


box_st = st.tuples(
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
    st.floats(0.5, 40, allow_nan=False),
    st.floats(0.5, 40, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(box_st, st.integers(0, 2)), min_size=0, max_size=40))
def test_double_labels_property(items: list[tuple[tuple[float, ...], int]]) -> None:
    boxes = np.array([[x, y, x + w, y + h] for (x, y, w, h), _ in items]).reshape(-1, 4)
    group = np.array([g for _, g in items], dtype=np.int64)
    # add exact duplicates of the first few boxes
    boxes = np.concatenate([boxes, boxes[:3]])
    group = np.concatenate([group, group[:3]])
    a, b, _ = double_label_pairs(boxes, group, 0.9)
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == _brute_pairs(boxes, group, 0.9)


def test_double_labels_with_huge_coordinates_fall_back_to_lexsort() -> None:
    boxes = np.array([[0, 0, 10, 10], [1e12, 0, 1e12 + 10, 10], [1e12 + 0.1, 0, 1e12 + 10, 10]])
    group = np.array([0, 10**6, 10**6])
    a, b, _ = double_label_pairs(boxes, group, 0.9)
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == [(1, 2)]


# -- report ----------------------------------------------------------------------------


def test_plots_and_html(rng: np.random.Generator, tmp_path: Path) -> None:
    s = compute_stats(random_dataset(rng, n_images=40))
    plots = make_plots(s, rng=np.random.default_rng(0))
    assert set(plots) == set(PLOT_TITLES)
    for png in plots.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
    page = render_html(s, plots, title="t <&>")
    assert "t &lt;&amp;&gt;" in page
    for png in plots.values():
        assert base64.b64encode(png).decode() in page
    assert "http" not in page.replace("https://", "")  # nothing fetched from elsewhere
    written = write_report(tmp_path, s, plots)
    assert (tmp_path / "report.html").is_file()
    assert {p.name for p in written} >= {"report.html", "heatmaps.png", "scatter.png"}


def test_scatter_subsamples_large_sets(rng: np.random.Generator) -> None:
    n = 30_000
    imgs = [
        _img(
            "a.jpg",
            1000,
            1000,
            [((float(x), float(x), float(x) + 5, float(x) + 7), 0) for x in rng.uniform(0, 900, n)],
        )
    ]
    s = compute_stats(Dataset(_cats(1), imgs))
    plots = make_plots(s)
    assert plots["scatter"].startswith(b"\x89PNG")
