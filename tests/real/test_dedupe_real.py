"""Dedupe on the shared real data: the FURG clip, the Roboflow export, COCO photos."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from curate.core.dataset import Category, Dataset, ImageItem
from curate.core.parallel import make_executor
from curate.dedupe import (
    DedupeOptions,
    Runtime,
    SignatureCache,
    build_report,
    find_duplicates,
    find_leaks,
    sweep,
)
from curate.dedupe.signatures import SignatureParams, compute_signature
from curate.dedupe.ssim import ssim
from curate.io import load_dataset

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("dedupe-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SODKIT_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def runtime(cache_root: Path) -> Iterator[Runtime]:
    with make_executor(2) as ex:
        yield Runtime(executor=ex, cache=SignatureCache(cache_root / "signatures"))


@pytest.fixture(scope="module")
def furg(shared_data: Path, cache_root: Path) -> Dataset:
    folder = shared_data / "furg-fire-video"
    if not (folder / "house6.mp4").is_file():
        pytest.skip(f"FURG clip not found in {folder}")
    return load_dataset(f"video:{folder}")


@pytest.fixture(scope="module")
def roboflow(shared_data: Path) -> Dataset:
    folder = shared_data / "roboflow-fire-smoke"
    if not (folder / "data.yaml").is_file():
        pytest.skip(f"Roboflow export not found in {folder}")
    return load_dataset(str(folder))


def test_furg_static_camera_keeps_one_frame_per_image_rule(furg: Dataset, runtime: Runtime) -> None:
    """The trap: every pair of the 899 frames passes SSIM 0.85, so one frame survives."""
    assert len(furg) == 899
    for mode in ("greedy", "connected"):
        plan = find_duplicates(furg, DedupeOptions(cluster=mode), runtime=runtime)
        assert len(plan.kept_new()) == 1
    rep = build_report(plan)
    assert rep["counts"]["clusters"] == 1 and rep["clusters"][0]["size"] == 899
    # Greedy pays about one score per frame, not 403,651.
    greedy = find_duplicates(furg, DedupeOptions(), runtime=runtime)
    assert greedy.stats["pairs_scored"] < 2 * 899


def test_furg_object_mode_keeps_frames_where_fire_changed(furg: Dataset, runtime: Runtime) -> None:
    plan = find_duplicates(furg, DedupeOptions(roi="objects"), runtime=runtime)
    kept = len(plan.kept_new())
    assert 50 < kept < 899
    # Every dropped frame has the same boxes as its survivor and similar fire regions.
    for d in plan.dropped()[:50]:
        s = plan.scorer.get(d, int(plan.resolution.dup_of[d]))
        assert s is not None and s.roi_match and (s.roi_ssim is None or s.roi_ssim > 0.85)
    # A window of 30 frames (1 s) scores a fraction of the pairs; the duplicates are local.
    windowed = find_duplicates(furg, DedupeOptions(roi="objects", frame_window=30), runtime=runtime)
    assert windowed.stats["pairs_scored"] < plan.stats["pairs_scored"] / 2
    assert abs(len(windowed.kept_new()) - kept) <= kept // 20
    frame = [img.attributes["frame"] for img in furg.images]
    for d in windowed.dropped():
        assert abs(frame[d] - frame[int(windowed.resolution.dup_of[d])]) <= 30


def test_furg_sweep_is_monotone(furg: Dataset, runtime: Runtime) -> None:
    rows = sweep(furg, DedupeOptions(), [0.85, 0.92, 0.95], runtime=runtime)
    greedy = [r.kept_greedy for r in rows]
    assert greedy[0] == 1 and greedy == sorted(greedy) and greedy[-1] > 1
    assert all(r.kept_connected <= r.kept_greedy for r in rows)


def test_roboflow_planted_leaks_are_all_found(
    roboflow: Dataset, runtime: Runtime, tmp_path: Path
) -> None:
    """Copies of train images in test (same bytes, or the same pixels as PNG) are all found."""
    train = [img for img in roboflow.images if img.attributes.get("original_split") == "train"]
    planted: dict[str, str] = {}
    extra = []
    for k, img in enumerate(train[::60]):
        if k % 2:
            dst = tmp_path / f"leak_{k}.jpg"
            shutil.copyfile(img.path, dst)
        else:
            dst = tmp_path / f"leak_{k}.png"
            with Image.open(img.path) as im:
                im.convert("RGB").save(dst)
        planted[dst.name] = img.file_name
        extra.append(ImageItem(dst.name, dst, img.width, img.height, split="test"))
    ds = roboflow.subset([*roboflow.images, *extra])
    result = find_leaks(ds, DedupeOptions(exact_only=True), runtime=runtime)
    found: dict[str, set[str]] = {}
    for members in result.leaks:
        names = {result.plan.images[m].file_name for m in members}
        for name in names & planted.keys():
            found[name] = names
    assert set(found) == set(planted)
    assert all(planted[n] in found[n] for n in planted)
    reasons = {result.plan.resolution.link_reason[m] for c in result.leaks for m in c}
    assert {"exact-file", "exact-pixels"} <= reasons


def test_near_duplicates_of_real_photos(shared_data: Path, tmp_path: Path) -> None:
    """Re-encodes, brightness changes and downscales of real photos: precision and recall."""
    src = sorted((shared_data / "coco-seg-sample" / "images").glob("*.jpg"))
    if not src:
        pytest.skip("coco-seg-sample images not found")
    items, group = [], []
    for g, p in enumerate(src):
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB"))
        h, w = rgb.shape[:2]
        variants = {
            "q50": (rgb, 50),
            "q75": (rgb, 75),
            "bright": (np.clip(rgb.astype(int) + 20, 0, 255).astype(np.uint8), 90),
            "gain": (np.clip(rgb * 1.15, 0, 255).astype(np.uint8), 90),
            "half": (cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA), 90),
        }
        shutil.copyfile(p, tmp_path / p.name)
        items.append(ImageItem(p.name, tmp_path / p.name, w, h))
        group.append(g)
        for name, (arr, q) in variants.items():
            f = tmp_path / f"{p.stem}_{name}.jpg"
            Image.fromarray(arr).save(f, quality=q)
            items.append(ImageItem(f.name, f, arr.shape[1], arr.shape[0]))
            group.append(g)
    ds = Dataset([Category(0, "object")], items)
    n = len(items)
    truth = {(a, b) for a, b in itertools.combinations(range(n), 2) if group[a] == group[b]}
    thumbs = [compute_signature(i.path, "-", SignatureParams()).thumb for i in items]
    brute = {
        (a, b) for a, b in itertools.combinations(range(n), 2) if ssim(thumbs[a], thumbs[b]) > 0.85
    }
    for mode in ("greedy", "connected"):
        plan = find_duplicates(ds, DedupeOptions(cluster=mode))
        cl = plan.resolution.cluster
        pred = {(a, b) for a, b in itertools.combinations(range(n), 2) if cl[a] == cl[b]}
        precision = len(pred & truth) / len(pred)
        recall = len(pred & truth) / len(truth)
        assert precision >= 0.99 and recall >= 0.99, (mode, precision, recall)
        # Every pair brute-force SSIM calls a duplicate ends up in one cluster.
        assert len(pred & brute) / len(brute) >= 0.99


@pytest.mark.parametrize("keep", ["most-annotations", "largest", "sharpest"])
def test_copies_of_near_gray_fire_photos_keep_the_original(
    shared_data: Path, tmp_path: Path, keep: str
) -> None:
    """Two near-gray Roboflow photos (QA round 4): JPEG noise saturates a few pixels of
    their quality-50, quarter-size and darker copies, which then counted as colour and
    outranked the original (a quarter-size copy even under --keep sharpest)."""
    folder = shared_data / "roboflow-fire-smoke" / "train" / "images"
    sources = {
        "a": folder / "img_15_jpg.rf.35f3f788771daaa818b92a05c4f9fff6.jpg",
        "b": folder / "img_971_jpg.rf.52a178bbad26821089e2f26216c08371.jpg",
    }
    tree = tmp_path / "tree"
    tree.mkdir()
    for name, src in sources.items():
        shutil.copyfile(src, tree / f"{name}_orig.jpg")
        im = Image.open(src).convert("RGB")
        w, h = im.size
        im.save(tree / f"{name}_q50.jpg", quality=50)
        quarter = im.resize((w // 4, h // 4), Image.Resampling.LANCZOS)
        quarter.save(tree / f"{name}_quarter.jpg", quality=95)
        for d in (-12, -20):
            dark = np.clip(np.asarray(im).astype(np.int16) + d, 0, 255).astype(np.uint8)
            Image.fromarray(dark).save(tree / f"{name}_b{d}.jpg", quality=95)
    ds = load_dataset(str(tree))
    plan = find_duplicates(ds, DedupeOptions(keep=keep))  # type: ignore[arg-type]
    assert sorted(ds.images[i].file_name for i in plan.kept_new()) == ["a_orig.jpg", "b_orig.jpg"]


def test_the_original_survives_edits_that_split_the_first_clustering(
    shared_data: Path, tmp_path: Path
) -> None:
    """QA round 8: on this frame the first greedy run, in dataset order, splits its edited
    copies in two clusters; the member nearest the others in one of them was the gain 1.2
    copy, and the single re-run kept it and the brightness -30 copy, dropping the original
    and its exact copies. The clustering runs again until the original leads."""
    src = shared_data / "roboflow-fire-smoke/train/images"
    src = src / "img_1030_jpg.rf.f545ff48f8cd5ada467d151d77e1ee61.jpg"
    rgb = np.asarray(Image.open(src).convert("RGB"))
    tree = tmp_path / "tree"
    (tree / "zz").mkdir(parents=True)
    f = rgb.astype(np.float32)
    edits = {"bright+30": f + 30, "bright-30": f - 30, "gain0.8": f * 0.8, "gain1.2": f * 1.2}
    for name, arr in edits.items():  # names that sort before the original's
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(
            tree / f"x_{name}.jpg", quality=95
        )
    shutil.copyfile(src, tree / "x_orig.jpg")
    for q in (90, 60, 30):
        Image.fromarray(rgb).save(tree / f"x_q{q}.jpg", quality=q)
    h, w = rgb.shape[:2]
    for k, name in ((2, "half"), (3, "third")):
        small = cv2.resize(rgb, (w // k, h // k), interpolation=cv2.INTER_AREA)
        Image.fromarray(small).save(tree / f"x_{name}.jpg", quality=95)
    shutil.copyfile(src, tree / "zz" / "x_bytecopy.jpg")
    Image.fromarray(rgb).save(tree / "zz" / "x_png.png")
    ds = load_dataset(str(tree))
    for mode in ("greedy", "connected"):
        plan = find_duplicates(ds, DedupeOptions(cluster=mode))  # type: ignore[arg-type]
        assert [ds.images[i].file_name for i in plan.kept_new()] == ["x_orig.jpg"], mode
        (cluster,) = build_report(plan)["clusters"]
        # The reason is that of the final cluster: the original is nearest, its byte copy
        # equally near (its pixels are the same), the rest farther.
        assert "tie broken by size" in cluster["kept_reason"]
        assert (
            "then nearness to the others (its thumbnail differs from theirs by"
            in cluster["kept_reason"]
        )
        assert cluster["kept_reason"].endswith(
            "then dataset order (zz/x_bytecopy.jpg equally near the others)"
        ), cluster["kept_reason"]
    # --keep sharpest: this frame's contrast and brightness edits measure 0.93-1.02x the
    # original (contrast divided out), within 10 %: a tie the nearest member wins.
    plan = find_duplicates(ds, DedupeOptions(keep="sharpest"))
    assert [ds.images[i].file_name for i in plan.kept_new()] == ["x_orig.jpg"]
    (cluster,) = build_report(plan)["clusters"]
    assert "copies within 10% of the sharpest tie, broken by nearness" in cluster["kept_reason"]


def test_sharpest_keeps_a_large_photo_over_its_mildly_blurred_copies(
    shared_data: Path, tmp_path: Path
) -> None:
    """QA round 9: with ties up to 25 % a 3 px motion blur of a 1920 px photo (0.89x at
    512 px) tied with the original, and nearness, blind to blur, kept the blurred copy."""
    rgb = cv2.imread(str(shared_data / "sahi-terrain" / "boats.jpg"))
    tree = tmp_path / "tree"
    tree.mkdir()
    kernel = np.zeros((3, 3), np.float32)
    kernel[1, :] = 1 / 3
    quality = [cv2.IMWRITE_JPEG_QUALITY, 95]
    cv2.imwrite(str(tree / "a_motion3.jpg"), cv2.filter2D(rgb, -1, kernel), quality)
    cv2.imwrite(str(tree / "b_blur1.jpg"), cv2.GaussianBlur(rgb, (0, 0), 1), quality)
    cv2.imwrite(str(tree / "c_orig.jpg"), rgb, quality)
    ds = load_dataset(str(tree))
    plan = find_duplicates(ds, DedupeOptions(keep="sharpest"))
    assert [ds.images[i].file_name for i in plan.kept_new()] == ["c_orig.jpg"]
