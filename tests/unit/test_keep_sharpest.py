"""``--keep sharpest``: sharpness measured at one common scale (512 px), only when asked for.

QA: at the 128 px working resolution a half-size copy of a photo scored higher than the
original and was kept, and a blur of a few native pixels hardly moved the score.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from curate.cli import app
from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.errors import CorruptImageError, ErrorPolicy, OnError
from curate.dedupe import DedupeOptions, find_duplicates
from curate.dedupe import pipeline as P
from curate.dedupe import signatures as G
from curate.dedupe.report import build_report
from curate.io import write_dataset

SHARPEST = DedupeOptions(keep="sharpest")


def photo(seed: int, h: int, w: int) -> np.ndarray:
    """A photo-like RGB scene: detail at every scale (amplitude falling with frequency, as
    in natural images), anti-aliased outlines and filled shapes, and sensor grain."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w, 3), np.float32)
    for octave in range(1, 9):
        n = 2**octave
        coarse = rng.normal(0, 1, (max(2, n * h // w), n, 3)).astype(np.float32)
        acc += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * (60 / octave**0.5)
    img = acc + 128
    for _ in range(60):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(5, w // 8)), int(rng.integers(5, h // 8)))
        colour = rng.uniform(0, 255, 3).tolist()
        thickness = int(rng.choice([-1, 2, 4]))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(img, centre, axes, angle, 0, 360, colour, thickness, cv2.LINE_AA)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def save_jpeg(rgb: np.ndarray, path: Path, quality: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=quality)
    return path


def downscaled(rgb: np.ndarray, factor: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def motion_blurred(rgb: np.ndarray, length: int) -> np.ndarray:
    """Horizontal motion blur over ``length`` pixels (camera shake during the exposure)."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT)


def with_contrast(rgb: np.ndarray, gain: float) -> np.ndarray:
    """The frame as auto exposure might render it a moment later: contrast times ``gain``."""
    mean = rgb.mean(axis=(0, 1), keepdims=True)
    return np.clip((rgb - mean) * gain + mean, 0, 255).astype(np.uint8)


def as_dataset(paths: list[Path]) -> Dataset:
    items = []
    for p in paths:
        with Image.open(p) as im:
            w, h = im.size
        items.append(ImageItem(p.name, p, w, h))
    return Dataset([Category(0, "fire")], items)


def kept_names(plan: P.DedupePlan) -> list[str]:
    return [plan.images[i].file_name for i in plan.kept_new()]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_downscaled_copies_lose_to_their_original(tmp_path: Path, seed: int) -> None:
    original = photo(seed, 480, 640)
    # The copies come first in dataset order, so only the policy can keep the original.
    paths = [
        save_jpeg(downscaled(original, 2), tmp_path / "half.jpg"),
        save_jpeg(downscaled(original, 4), tmp_path / "quarter.jpg"),
        save_jpeg(original, tmp_path / "original.jpg"),
    ]
    plan = find_duplicates(as_dataset(paths), SHARPEST)
    assert kept_names(plan) == ["original.jpg"]
    assert sorted(plan.images[i].file_name for i in plan.dropped()) == ["half.jpg", "quarter.jpg"]
    sharp = plan.sharpness
    assert sharp is not None and sharp[2] > sharp[0] > sharp[1]  # type: ignore[operator]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_motion_blur_of_three_pixels_loses_to_the_sharp_frame(tmp_path: Path, seed: int) -> None:
    frame = photo(seed, 768, 1024)
    # Two frames of one clip: the later one is shaken (3 px motion blur) and, as auto
    # exposure drifts, 10 % higher in contrast. At 128 px the contrast outweighs the blur
    # (the old measure kept the blurred frame); at 512 px the blur shows.
    blurred = with_contrast(motion_blurred(frame, 3), 1.1)
    paths = [
        save_jpeg(blurred, tmp_path / "frame_0001.jpg"),
        save_jpeg(frame, tmp_path / "frame_0002.jpg"),
    ]
    plan = find_duplicates(as_dataset(paths), SHARPEST)
    assert kept_names(plan) == ["frame_0002.jpg"]
    assert plan.dropped() == [0]


def test_equal_sharpness_keeps_the_larger_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = photo(8, 480, 640)
    paths = [
        save_jpeg(downscaled(original, 2), tmp_path / "half.jpg"),
        save_jpeg(original, tmp_path / "original.jpg"),
    ]
    monkeypatch.setattr(G, "sharpness", lambda path, **kwargs: 100.0)
    plan = find_duplicates(as_dataset(paths), SHARPEST)
    assert kept_names(plan) == ["original.jpg"]
    [cluster] = build_report(plan)["clusters"]
    assert cluster["kept_reason"].endswith("; tie broken by size, then dataset order")


def test_only_keep_sharpest_measures_sharpness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = photo(3, 240, 320)
    paths = [
        save_jpeg(frame, tmp_path / "a.jpg"),
        save_jpeg(motion_blurred(frame, 3), tmp_path / "b.jpg"),
    ]
    ds = as_dataset(paths)
    calls: list[str] = []
    measure = G.sharpness

    def counted(path: str | Path, **kwargs: object) -> float:
        calls.append(str(path))
        return measure(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(G, "sharpness", counted)
    for keep in ("most-annotations", "largest", "first"):
        plan = find_duplicates(ds, DedupeOptions(keep=keep))  # type: ignore[arg-type]
        assert plan.sharpness is None and "sharpness_s" not in plan.stats
    assert calls == []
    plan = find_duplicates(ds, SHARPEST)
    assert sorted(calls) == sorted(str(p) for p in paths)
    assert kept_names(plan) == ["a.jpg"]


def test_sharpness_is_cached_apart_from_signatures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [save_jpeg(photo(k, 240, 320), tmp_path / f"{k}.jpg") for k in range(2)]
    items = [(str(p), G.hash_file(p)) for p in paths]
    cache = G.SignatureCache(tmp_path / "c")
    first = G.compute_sharpness(items, cache=cache)
    assert all(isinstance(v, float) and v > 0 for v in first.values())

    def fail(path: str | Path, **kwargs: object) -> float:
        raise AssertionError(f"{path} was measured again")

    monkeypatch.setattr(G, "sharpness", fail)
    assert G.compute_sharpness(items, cache=cache) == first
    cache.close()
    # In a file of its own: the signatures and their cache files are those of before.
    assert sorted(f.name for f in (tmp_path / "c").glob("*.sqlite")) == [
        f"signatures-{G.SHARPNESS_TAG}.sqlite"
    ]


def test_an_image_that_cannot_be_measured_ranks_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = photo(4, 240, 320)
    paths = [
        save_jpeg(frame, tmp_path / "sharp.jpg"),
        save_jpeg(motion_blurred(frame, 3), tmp_path / "blurred.jpg"),
    ]
    measure = G.sharpness

    def broken_for_sharp(path: str | Path, **kwargs: object) -> float:
        if Path(path).name == "sharp.jpg":
            raise CorruptImageError(path, "cannot decode image (broken data)")
        return measure(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(G, "sharpness", broken_for_sharp)
    skip = P.Runtime(policy=ErrorPolicy(OnError.skip))
    plan = find_duplicates(as_dataset(paths), SHARPEST, runtime=skip)
    assert kept_names(plan) == ["blurred.jpg"]
    assert [s["file"] for s in plan.skipped] == [str(paths[0])]
    with pytest.raises(CorruptImageError, match="broken data"):
        find_duplicates(as_dataset(paths), SHARPEST, runtime=P.Runtime())


def test_cli_keeps_the_sharpest_and_says_why(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    frame = photo(5, 768, 1024)
    blurred = with_contrast(motion_blurred(frame, 3), 1.1)
    files = {
        "copy_quarter.jpg": downscaled(frame, 4),
        "copy_shaken.jpg": blurred,
        "original.jpg": frame,
        "other.jpg": photo(6, 768, 1024),
    }
    items = []
    for name, rgb in files.items():
        save_jpeg(rgb, raw / name)
        h, w = rgb.shape[:2]
        items.append(ImageItem(name, raw / name, w, h, [Annotation((10.0, 10.0, 90.0, 90.0), 0)]))
    data = tmp_path / "yolo"
    data.mkdir()
    write_dataset(Dataset([Category(0, "fire")], items), data, "yolo")
    out = tmp_path / "out"
    # Two workers: the measure runs in the process pool like the signatures do.
    res = CliRunner().invoke(
        app, ["dedupe", str(data), "--out", str(out), "--keep", "sharpest", "-j", "2"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "dedupe_report.json").read_text())
    [cluster] = report["clusters"]
    assert cluster["kept"] == "original.jpg"
    assert {m["file_name"] for m in cluster["members"] if m["role"] == "dropped"} == {
        "copy_quarter.jpg",
        "copy_shaken.jpg",
    }
    reason = cluster["kept_reason"]
    found = re.fullmatch(
        r"sharpest \(Laplacian variance over image variance at 512 px ([\d.]+); "
        r"others up to ([\d.]+)\)",
        reason,
    )
    assert found is not None, reason
    # The shaken copy's contrast, 10 % higher, does not count: the blur alone does.
    assert float(found[1]) * (1 - P.SHARP_TIE) > float(found[2]) > 0
    assert json.loads((out / "manifest.json").read_text())["stats"]["sharpness_s"] >= 0


def test_report_reason_names_the_measure(tmp_path: Path) -> None:
    frame = photo(7, 240, 320)
    paths = [
        save_jpeg(motion_blurred(frame, 5), tmp_path / "a.jpg"),
        save_jpeg(frame, tmp_path / "b.jpg"),
    ]
    plan = find_duplicates(as_dataset(paths), SHARPEST)
    assert plan.sharpness is not None
    blurred, sharp = plan.sharpness
    [cluster] = build_report(plan)["clusters"]
    assert cluster["kept_reason"] == (
        f"sharpest (Laplacian variance over image variance at {G.SHARPNESS_SIDE} px {sharp:.3g}; "
        f"others up to {blurred:.3g})"
    )
