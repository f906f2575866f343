"""BoWFire source: mask regions, merging, area limit, negatives, pairing, errors, patches."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.core.dataset import Mask
from curate.core.errors import (
    AnnotationError,
    ErrorPolicy,
    MalformedFileError,
    MissingFileError,
    OnError,
    UsageError,
)
from curate.formats.base import ReadOptions, SourceOptions
from curate.sources import bowfire as bowfire_module
from curate.sources.bowfire import BowFireSource, mask_regions

# pycocotools' decode (used by Mask.to_bitmap) trips a NumPy 2 DeprecationWarning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

H, W = 60, 80


def _flame(mask: np.ndarray, cx: int, cy: int, size: int) -> None:
    """Draw a flame-like blob: a teardrop (ellipse plus a tapering tip) in white."""
    cv2.ellipse(mask, (cx, cy), (size, int(size * 1.3)), 0, 0, 360, 255, -1)
    tip = np.array([[cx - size, cy], [cx + size, cy], [cx + size // 3, cy - 3 * size]], np.int32)
    cv2.fillPoly(mask, [tip], 255)


def _photo(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def _write(path: Path, image: np.ndarray, *, quality: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality is not None else []
    assert cv2.imwrite(str(path), image, params)
    return path


def _three_region_mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    _flame(mask, 15, 40, 5)  # a flame
    mask[5:10, 50:58] = 255  # a rectangle
    mask[45:52, 60:75] = 255  # another one
    return mask


@pytest.fixture
def root(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A small BoWFire root: 2 fire images with masks, 2 negatives."""
    base = tmp_path / "BoWFire"
    data = base / "dataset"
    _write(data / "img" / "fire000.png", _photo(rng))
    _write(data / "gt" / "fire000_gt.png", _three_region_mask())
    _write(data / "img" / "fire001.png", _photo(rng, 40, 50))
    one = np.zeros((40, 50), np.uint8)
    one[10:20, 10:30] = 255
    _write(data / "gt" / "fire001_gt.png", one)
    for i in range(2):
        _write(data / "img" / f"not_fire00{i}.png", _photo(rng))
        _write(data / "gt" / f"not_fire00{i}_gt.png", np.zeros((H, W), np.uint8))
    return base


def test_regions_become_fire_instances(root: Path) -> None:
    ds = BowFireSource().read(root, ReadOptions())
    assert [c.name for c in ds.categories] == ["fire"]
    by_name = {img.file_name: img for img in ds.images}
    assert sorted(by_name) == ["fire000.png", "fire001.png", "not_fire000.png", "not_fire001.png"]
    fire = by_name["fire000.png"]
    assert (fire.width, fire.height) == (W, H)
    assert len(fire.annotations) == 3
    boxes = sorted(a.bbox for a in fire.annotations)
    assert (50.0, 5.0, 58.0, 10.0) in boxes
    assert (60.0, 45.0, 75.0, 52.0) in boxes
    # The instance masks together are exactly the white pixels, and each box is tight.
    truth = _three_region_mask() >= 128
    union = np.zeros_like(truth)
    for ann in fire.annotations:
        assert ann.mask is not None and ann.mask.kind == "rle"
        bitmap = ann.mask.to_bitmap(H, W)
        assert ann.mask.bbox(H, W) == ann.bbox
        assert not (union & bitmap).any()
        union |= bitmap
    assert (union == truth).all()
    small = by_name["fire001.png"]
    assert [a.bbox for a in small.annotations] == [(10.0, 10.0, 30.0, 20.0)]
    assert all(img.source == "bowfire" and img.group is None for img in ds.images)
    assert fire.attributes["original_path"] == str(root / "dataset" / "img" / "fire000.png")


def test_negatives_have_no_annotations_and_masks_are_not_read(root: Path) -> None:
    # A broken mask for a negative must not matter: negatives never read their mask.
    (root / "dataset" / "gt" / "not_fire000_gt.png").write_bytes(b"not a png")
    ds = BowFireSource().read(root, ReadOptions())
    negatives = [img for img in ds.images if img.file_name.startswith("not_fire")]
    assert len(negatives) == 2
    assert all(img.is_negative and not img.annotations for img in negatives)


def test_only_masks_are_decoded(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    real = bowfire_module.read_image

    def spy(path: Path, **kw: object) -> np.ndarray:
        decoded.append(Path(path).name)
        return real(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(bowfire_module, "read_image", spy)
    BowFireSource().read(root, ReadOptions())
    assert sorted(decoded) == ["fire000_gt.png", "fire001_gt.png"]


@pytest.mark.parametrize(("distance", "expected"), [(0, 2), (5, 2), (6, 1), (20, 1)])
def test_merge_distance_joins_close_fragments(distance: int, expected: int) -> None:
    fg = np.zeros((30, 40), bool)
    fg[10:20, 5:12] = True
    fg[12:18, 17:25] = True  # a gap of 5 empty columns (12..16)
    kept, dropped = mask_regions(fg, merge_distance=distance)
    assert len(kept) == expected and not dropped
    if expected == 1:
        (region,) = kept
        assert region.bbox == (5.0, 10.0, 25.0, 20.0)
        assert region.fragments == 2
        assert region.area == int(fg.sum())  # the mask stays the original pixels


def test_merge_distance_option_sets_fragments(root: Path) -> None:
    ds = BowFireSource().read(root, ReadOptions(source=SourceOptions(merge_distance=60)))
    fire = next(img for img in ds.images if img.file_name == "fire000.png")
    (ann,) = fire.annotations
    assert ann.attributes["fragments"] == 3
    assert ann.mask is not None
    assert ann.mask.area(H, W) == float((_three_region_mask() >= 128).sum())


def test_small_regions_are_dropped_and_recorded(root: Path) -> None:
    mask = _three_region_mask()
    mask[30, 40] = 255  # a 1-pixel speck
    mask[2:4, 2:4] = 255  # a 4-pixel region: kept by the default limit (4)
    _write(root / "dataset" / "gt" / "fire000_gt.png", mask)
    ds = BowFireSource().read(root, ReadOptions())
    fire = next(img for img in ds.images if img.file_name == "fire000.png")
    assert len(fire.annotations) == 4
    (drop,) = ds.info["dropped"]
    assert drop["item"] == "fire000.png" and "min_region_area" in drop["reason"]
    assert drop["area"] == 1 and drop["bbox"] == [40.0, 30.0, 41.0, 31.0]
    ds = BowFireSource().read(root, ReadOptions(source=SourceOptions(min_region_area=100)))
    fire = next(img for img in ds.images if img.file_name == "fire000.png")
    assert len(fire.annotations) == 3 - 1  # the 5x8 rectangle (40 px) goes too
    assert len(ds.info["dropped"]) == 3


def test_fire_image_with_empty_mask_is_unlabeled_not_negative(root: Path) -> None:
    _write(root / "dataset" / "gt" / "fire001_gt.png", np.zeros((40, 50), np.uint8))
    ds = BowFireSource().read(root, ReadOptions())
    img = next(i for i in ds.images if i.file_name == "fire001.png")
    assert not img.annotations and img.attributes["unlabeled"] is True and not img.is_negative
    assert any(c["item"] == "fire001.png" for c in ds.info["changed"])


def test_missing_mask_fails_or_is_skipped(root: Path) -> None:
    (root / "dataset" / "gt" / "fire001_gt.png").unlink()
    with pytest.raises(MissingFileError, match="fire001"):
        BowFireSource().read(root, ReadOptions())
    policy = ErrorPolicy(OnError.skip)
    ds = BowFireSource().read(root, ReadOptions(policy=policy))
    assert "fire001.png" not in {img.file_name for img in ds.images}
    assert len(ds) == 3
    assert [s["kind"] for s in policy.skipped] == ["missing"]
    # The image the missing mask takes with it is named (manifests count it as not read).
    assert Path(policy.skipped[0]["left_out"]).name == "fire001.png"


def test_mask_size_mismatch_is_an_error(root: Path) -> None:
    _write(root / "dataset" / "gt" / "fire001_gt.png", np.zeros((41, 50), np.uint8))
    with pytest.raises(AnnotationError, match=r"mask is 50x41 but image 'fire001.png' is 50x40"):
        BowFireSource().read(root, ReadOptions())
    policy = ErrorPolicy(OnError.skip)
    ds = BowFireSource().read(root, ReadOptions(policy=policy))
    assert len(ds) == 3 and policy.skipped[0]["kind"] == "bad-annotation"


def test_noisy_jpeg_and_rgb_masks(root: Path) -> None:
    gt = root / "dataset" / "gt"
    (gt / "fire000_gt.png").unlink()
    _write(gt / "fire000_gt.jpg", _three_region_mask(), quality=40)
    rgb = np.zeros((40, 50, 3), np.uint8)
    rgb[10:20, 10:30] = (250, 252, 255)
    _write(gt / "fire001_gt.png", rgb)
    ds = BowFireSource().read(root, ReadOptions())
    counts = {img.file_name: len(img.annotations) for img in ds.images}
    assert counts["fire000.png"] == 3 and counts["fire001.png"] == 1


def test_pair_list_is_used_when_present(root: Path) -> None:
    gt = root / "dataset" / "gt"
    (gt / "fire000_gt.png").rename(gt / "mask_a.png")
    # BoWFire's own file: a '#' header, tabs and a comma between the two paths.
    (root / "dataset.csv").write_text(
        "#Image\tGroundTruth\n./dataset/img/fire000.png\t\t,\t./dataset/gt/mask_a.png\n",
        encoding="utf-8",
    )
    ds = BowFireSource().read(root, ReadOptions())
    counts = {img.file_name: len(img.annotations) for img in ds.images}
    # fire000 paired by the list, fire001 (not listed) by name.
    assert counts == {
        "fire000.png": 3,
        "fire001.png": 1,
        "not_fire000.png": 0,
        "not_fire001.png": 0,
    }


def test_pair_list_with_a_bad_line(root: Path) -> None:
    (root / "dataset.csv").write_text("image,mask\nimg/fire000.png,gt/fire000_gt.png,extra\n")
    with pytest.raises(
        MalformedFileError, match="line 2: expected 'image, mask' but found 3 fields"
    ):
        BowFireSource().read(root, ReadOptions())
    policy = ErrorPolicy(OnError.skip)
    ds = BowFireSource().read(root, ReadOptions(policy=policy))
    assert len(ds) == 4 and policy.skipped[0]["kind"] == "malformed"


def test_dataset_folder_itself_and_detect(root: Path, tmp_path: Path) -> None:
    src = BowFireSource()
    assert src.detect(root) == 90
    assert src.detect(root / "dataset") == 90
    assert src.detect(tmp_path / "nothing") == 0
    assert src.detect(root / "dataset" / "img" / "fire000.png") == 0
    (tmp_path / "other" / "img").mkdir(parents=True)
    (tmp_path / "other" / "gt").mkdir()
    assert src.detect(tmp_path / "other") == 0  # no *_gt masks
    assert len(src.read(root / "dataset", ReadOptions())) == 4
    with pytest.raises(UsageError, match="not a BoWFire folder"):
        src.read(tmp_path, ReadOptions())


def test_patches_only_on_request(root: Path, rng: np.random.Generator) -> None:
    for i in range(2):
        _write(root / "train" / "fire" / f"p{i}.png", _photo(rng, 50, 50))
        _write(root / "train" / "not_fire" / f"p{i}.png", _photo(rng, 50, 50))
    _write(root / "train" / "not_fire_extra.png", _photo(rng, 50, 50))
    assert len(BowFireSource().read(root, ReadOptions())) == 4
    ds = BowFireSource().read(root, ReadOptions(source=SourceOptions(include_patches=True)))
    patches = [img for img in ds.images if img.attributes.get("patch")]
    assert len(patches) == 5
    labels = {img.file_name: img.attributes["class_label"] for img in patches}
    assert labels["patches/fire/p0.png"] == "fire"
    assert labels["patches/not_fire/p1.png"] == "not_fire"
    assert labels["patches/not_fire_extra.png"] == "not_fire"
    for img in patches:
        assert (img.width, img.height) == (50, 50) and not img.annotations
        assert img.attributes.get("unlabeled", False) is (img.attributes["class_label"] == "fire")
    with pytest.raises(UsageError, match="no train/ folder"):
        BowFireSource().read(
            root / "dataset", ReadOptions(source=SourceOptions(include_patches=True))
        )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    blobs=st.integers(0, 8),
    distance=st.integers(0, 9),
    min_area=st.integers(0, 30),
)
def test_regions_partition_the_mask(seed: int, blobs: int, distance: int, min_area: int) -> None:
    rng = np.random.default_rng(seed)
    mask = np.zeros((48, 64), np.uint8)
    for _ in range(blobs):
        _flame(mask, int(rng.integers(0, 64)), int(rng.integers(0, 48)), int(rng.integers(1, 6)))
    fg = mask >= 128
    before = fg.copy()
    kept, dropped = mask_regions(fg, merge_distance=distance, min_area=min_area)
    assert (fg == before).all()  # input unchanged
    n_plain = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)[0] - 1
    assert len(kept) + len(dropped) <= n_plain
    assert sum(r.fragments for r in kept + dropped) == n_plain
    assert sum(r.area for r in kept + dropped) == int(fg.sum())
    assert all(r.area >= min_area for r in kept) and all(r.area < min_area for r in dropped)
    for r in kept:
        m = Mask.from_rle(r.rle)
        assert m.area(48, 64) == r.area and m.bbox(48, 64) == r.bbox
