"""Merge through a class map; leakage-free, stratified splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from curate.core.dataset import SPLITS, Annotation, Category, Dataset, ImageItem
from curate.core.errors import ClassMapError, UsageError
from curate.merge import ClassMap, merge_datasets, normalize_name
from curate.split import (
    GroupsMatch,
    SplitResult,
    check_no_leaks,
    match_groups,
    parse_ratios,
    split_dataset,
    units,
)


def ds_with(names: list[str], files: list[str], boxes_per: int = 1, source: str = "") -> Dataset:
    cats = [Category(i, n) for i, n in enumerate(names)]
    imgs = [
        ImageItem(
            f,
            Path("/data") / source / f,
            100,
            80,
            [Annotation((1.0, 1.0, 10.0, 10.0), k % len(names)) for k in range(boxes_per)],
            source=source,
        )
        for f in files
    ]
    return Dataset(cats, imgs)


def write_map(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "map.yaml"
    p.write_text(text)
    return p


def test_normalize_name() -> None:
    assert normalize_name("  Fire-Smoke ") == "fire_smoke"
    assert normalize_name("Fire") == "fire"


def test_class_map_synonyms_drop_and_case(tmp_path: Path) -> None:
    cmap = ClassMap.from_file(
        write_map(tmp_path, "classes: [fire, smoke]\nsynonyms: {flame: fire}\ndrop: [default]\n")
    )
    a = ds_with(["Fire", "default", "smoke"], ["a.jpg", "b.jpg"], boxes_per=3, source="rf")
    b = ds_with(["flame"], ["a.jpg"], source="bow")
    merged, report = merge_datasets([("rf", a), ("bow", b)], cmap)
    assert [c.name for c in merged.categories] == ["fire", "smoke"]
    assert merged.class_counts() == Counter({"fire": 3, "smoke": 2})
    assert len(report.dropped) == 2 and "default" in report.dropped[0]["reason"]
    assert report.renamed == 1
    names = sorted(i.file_name for i in merged.images)
    assert names == ["a.jpg", "b.jpg", "bow__a.jpg"]
    assert all(i.attributes["original_path"] for i in merged.images)
    assert {i.source for i in merged.images} == {"rf", "bow"}


def test_unknown_class_lists_it_and_the_map(tmp_path: Path) -> None:
    cmap = ClassMap.from_file(write_map(tmp_path, "classes: [fire, smoke]\n"))
    with pytest.raises(ClassMapError) as err:
        merge_datasets([("rf", ds_with(["Fire", "car"], ["a.jpg"]))], cmap)
    assert "'car' (in rf)" in str(err.value) and "['fire', 'smoke']" in str(err.value)


def test_class_map_file_errors(tmp_path: Path) -> None:
    from curate.core.errors import MalformedFileError

    with pytest.raises(MalformedFileError, match="classes"):
        ClassMap.from_file(write_map(tmp_path, "synonyms: {a: b}\n"))
    with pytest.raises(MalformedFileError, match="not in 'classes'"):
        ClassMap.from_file(write_map(tmp_path, "classes: [fire]\nsynonyms: {flame: flames}\n"))


def test_parse_ratios() -> None:
    assert parse_ratios("8:1:1") == pytest.approx((0.8, 0.1, 0.1))
    assert parse_ratios("0.7,0.3") == pytest.approx((0.7, 0.3, 0.0))
    for bad in ("a:b", "0:1:1", "1:2:3:4", "-1:1:1"):
        with pytest.raises(UsageError):
            parse_ratios(bad)


def clip_dataset(rng: np.random.Generator, clips: int = 40, frames: int = 6) -> Dataset:
    cats = [Category(0, "fire"), Category(1, "smoke")]
    imgs = []
    for c in range(clips):
        cls = c % 2
        for f in range(frames):
            n = int(rng.integers(0, 3)) if c % 5 else 0
            size = 10 if c % 3 == 0 else 60
            anns = [Annotation((5.0, 5.0, 5.0 + size, 5.0 + size), cls) for _ in range(n)]
            imgs.append(
                ImageItem(
                    f"c{c}_f{f}.jpg", Path(f"/x/c{c}_f{f}.jpg"), 200, 200, anns, group=f"clip{c}"
                )
            )
    for k in range(30):  # single images, no group
        imgs.append(
            ImageItem(
                f"single{k}.jpg",
                Path(f"/x/s{k}.jpg"),
                200,
                200,
                [Annotation((1.0, 1.0, 9.0, 9.0), k % 2)],
            )
        )
    return Dataset(cats, imgs)


def test_split_groups_never_straddle_and_ratios_hold(rng: np.random.Generator) -> None:
    ds = clip_dataset(rng)
    res = split_dataset(ds, (0.8, 0.1, 0.1), seed=3)
    assert check_no_leaks(res.dataset) == []
    by = {r["split"]: r for r in res.summary}
    total = len(ds)
    assert abs(by["train"]["images"] / total - 0.8) < 0.06
    assert abs(by["val"]["images"] / total - 0.1) < 0.05
    for s in ("train", "val", "test"):
        assert (
            by[s]["fire"] > 0
            and by[s]["smoke"] > 0
            and by[s]["negatives"] > 0
            and by[s]["small"] > 0
        )
    assert sum(r["images"] for r in res.summary) == total


def test_split_is_deterministic_for_a_seed(rng: np.random.Generator) -> None:
    a = split_dataset(clip_dataset(np.random.default_rng(1)), seed=7)
    b = split_dataset(clip_dataset(np.random.default_rng(1)), seed=7)
    assert [(i.file_name, i.split) for i in a.dataset.images] == [
        (i.file_name, i.split) for i in b.dataset.images
    ]


def test_extra_groups_join_units(rng: np.random.Generator) -> None:
    ds = clip_dataset(rng, clips=4)
    extra = {
        "single0.jpg": "dup1",
        "c0_f0.jpg": "dup1",
        "single1.jpg": "dup2",
        "single2.jpg": "dup2",
    }
    us = units(ds.images, extra)
    together = next(u for u in us if any(i.file_name == "single0.jpg" for i in u))
    assert {i.file_name for i in together} >= {"single0.jpg", "c0_f0.jpg", "c0_f5.jpg"}
    res = split_dataset(ds, seed=0, extra_groups=extra)
    split_of = {i.file_name: i.split for i in res.dataset.images}
    assert split_of["single0.jpg"] == split_of["c0_f3.jpg"]
    assert split_of["single1.jpg"] == split_of["single2.jpg"]


def test_unlabeled_images_are_left_out_with_a_reason() -> None:
    ds = ds_with(["fire"], ["a.jpg", "b.jpg", "c.jpg"])
    ds.images[0].attributes["unlabeled"] = True
    ds.images[0].annotations = []
    res = split_dataset(ds, seed=0)
    assert len(res.dataset) == 2
    assert res.dropped[0]["item"] == "a.jpg" and "unlabeled" in res.dropped[0]["reason"]


def uneven_clips(rng: np.random.Generator) -> Dataset:
    """Clips of very different lengths, 119 single images and one negative."""
    imgs = []
    for c, n in enumerate([60, 45, 30, 22, 15, 12, 10, 8, 6, 5, 4, 3, 3, 2, 2]):
        for f in range(n):
            anns = [
                Annotation((5.0, 5.0, 65.0, 65.0), (c + k) % 2)
                for k in range(int(rng.integers(1, 3)))
            ]
            imgs.append(
                ImageItem(f"c{c}_f{f}.jpg", Path(f"/x/c{c}_f{f}.jpg"), 200, 200, anns, f"clip{c}")
            )
    for k in range(120):
        side = 9.0 if k % 7 == 0 else 60.0  # every 7th box is small
        anns = [] if k == 0 else [Annotation((1.0, 1.0, side, side), k % 2)]
        imgs.append(ImageItem(f"s{k}.jpg", Path(f"/x/s{k}.jpg"), 200, 200, anns))
    return Dataset([Category(0, "fire"), Category(1, "smoke")], imgs)


def shares(res: SplitResult, column: str) -> list[float]:
    total = sum(r[column] for r in res.summary)
    return [r[column] / total for r in res.summary]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ratios_hold_with_uneven_groups(seed: int) -> None:
    ds = uneven_clips(np.random.default_rng(seed))
    res = split_dataset(ds, (0.8, 0.1, 0.1), seed=seed)
    assert check_no_leaks(res.dataset) == []
    assert [r["split"] for r in res.summary] == ["train", "val", "test"]
    # 347 images: the clips allow every split within one percentage point.
    assert shares(res, "images") == pytest.approx([0.8, 0.1, 0.1], abs=0.01)
    achieved = dict(zip(SPLITS, shares(res, "images"), strict=True))
    assert res.ratios["achieved"] == pytest.approx(achieved, abs=1e-4)
    assert res.ratios["requested"] == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1})
    assert res.ratio_warning is None
    for cls in ("fire", "smoke"):  # still stratified by class
        assert shares(res, cls) == pytest.approx([0.8, 0.1, 0.1], abs=0.03)
    assert [r["share"] for r in res.summary] == pytest.approx(shares(res, "images"), abs=1e-4)


def test_swaps_find_the_split_that_largest_first_misses() -> None:
    # Largest first gives 3+2+2 / 3+2; only exchanging a 3 for a 2 reaches 6 / 6.
    imgs = [
        ImageItem(f"g{g}_{k}.jpg", Path(f"/x/g{g}_{k}.jpg"), 50, 50, [], group=f"g{g}")
        for g, n in enumerate([3, 3, 2, 2, 2])
        for k in range(n)
    ]
    res = split_dataset(Dataset([Category(0, "fire")], imgs), parse_ratios("1:1"), seed=0)
    assert [(r["split"], r["images"]) for r in res.summary] == [("train", 6), ("val", 6)]
    assert res.ratio_warning is None


def clip_and_singles(clip: int, singles: int) -> Dataset:
    imgs = [
        ImageItem(
            f"f{k}.jpg",
            Path(f"/x/f{k}.jpg"),
            100,
            100,
            [Annotation((0.0, 0.0, 50.0, 50.0), 0)],
            group="kaggle/export/fire2.mp4",
        )
        for k in range(clip)
    ]
    imgs += [
        ImageItem(
            f"s{k}.jpg", Path(f"/x/s{k}.jpg"), 100, 100, [Annotation((0.0, 0.0, 50.0, 50.0), 0)]
        )
        for k in range(singles)
    ]
    return Dataset([Category(0, "fire")], imgs)


def test_a_group_too_large_for_the_ratios_is_named() -> None:
    res = split_dataset(clip_and_singles(85, 15), (0.8, 0.1, 0.1), seed=0)
    assert res.ratios["achieved"]["train"] == pytest.approx(0.85)
    assert res.ratio_warning is not None
    assert "asked train/val/test 80/10/10 %, got 85/" in res.ratio_warning
    assert "group kaggle/export/fire2.mp4 has 85 images = 85 % of the data" in res.ratio_warning
    assert "train can't be 80 %" in res.ratio_warning


def test_groups_too_large_for_val_and_test_are_named_together() -> None:
    ds = clip_and_singles(85, 15)
    for img in ds.images[:25]:  # a second clip of 25 frames
        img.group = "kaggle/export/smoke1.mp4"
    res = split_dataset(ds, (0.8, 0.1, 0.1), seed=0)
    assert res.ratios["achieved"]["train"] == pytest.approx(0.85)
    assert res.ratio_warning is not None
    assert (
        "group kaggle/export/fire2.mp4 (60 images), group kaggle/export/smoke1.mp4 (25 images) "
        "are each too large for val (10 %) and test (10 %)"
    ) in res.ratio_warning


def test_a_group_that_fits_leaves_no_warning() -> None:
    res = split_dataset(clip_and_singles(171, 829), (0.8, 0.1, 0.1), seed=0)
    assert res.ratios["achieved"] == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1})
    assert res.ratio_warning is None


def test_rounding_to_whole_images_is_no_warning() -> None:
    res = split_dataset(clip_and_singles(0, 15), (0.8, 0.1, 0.1), seed=0)
    assert sorted(r["images"] for r in res.summary) == [1, 2, 12]
    assert res.ratio_warning is None


def test_match_groups_counts_clusters_found_in_the_dataset() -> None:
    ds = ds_with(["fire"], ["a.jpg", "b.jpg", "c.jpg"])
    report = {
        "a.jpg": "dup1",
        "b.jpg": "dup1",
        "c.jpg": "dup2",
        "zz.jpg": "dup3",
        "/elsewhere/q.jpg": "dup4",
    }
    assert match_groups(ds.images, report) == GroupsMatch(
        clusters=4,
        images_matched=3,
        clusters_present=2,
        clusters_joining=1,
        matched_by_name_only=3,  # the report names no path of these images
    )
    res = split_dataset(ds, seed=0, extra_groups={"x.jpg": "dup1", "y.jpg": "dup1"})
    assert res.groups_match == GroupsMatch(1, 0, 0, 0)
    assert split_dataset(ds, seed=0).groups_match is None


def test_rare_classes_do_not_pull_images_out_of_val_and_test() -> None:
    # ten images, each the only one of its class: classes cannot be stratified, images can
    cats = [Category(k, f"class{k}") for k in range(10)]
    imgs = [
        ImageItem(f"i{k}.jpg", Path(f"/x/i{k}.jpg"), 100, 80, [Annotation((1.0, 1.0, 9.0, 9.0), k)])
        for k in range(10)
    ]
    res = split_dataset(Dataset(cats, imgs), (0.8, 0.1, 0.1), seed=0)
    assert [r["images"] for r in res.summary] == [8, 1, 1]
