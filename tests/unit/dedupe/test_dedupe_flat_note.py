"""Clusters of nearly flat images (sky, water, fog) get a note: plain SSIM cannot tell them apart."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from dedupe_helpers import dataset, item, make_scene, save
from PIL import Image

from curate.dedupe import DedupeOptions, build_report, find_duplicates
from curate.dedupe.report import FLAT_SHARE, flat_share
from curate.dedupe.ssim import to_gray


def sky(rng: np.random.Generator, top: float, bottom: float, size: int) -> np.ndarray:
    """A crop of overcast sky: a faint vertical gradient, a bluish tint, sensor grain."""
    ramp = np.linspace(top, bottom, size, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(ramp, (size, size, 3)) + np.float32([-6, -2, 8])
    img = img + rng.normal(0, 1.5, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def smoke(rng: np.random.Generator) -> np.ndarray:
    """A smoke photo: a soft bright plume on a brownish haze, nearly no edges."""
    h, w = 608, 608
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    plume = 45 * np.exp(-((xx - 200) ** 2 + (yy - 150) ** 2) / (2 * 160.0**2))
    img = np.stack([150 + plume, 140 + plume, 120 + plume], axis=-1)
    img += rng.normal(0, 2, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def crops(tmp_path: Path, rng: np.random.Generator) -> list[Path]:
    """Ten sky crops of three sizes and brightnesses, a smoke photo, four textured scenes
    and a brighter copy of one (a true duplicate)."""
    d = tmp_path / "data"
    paths = []
    for k in range(10):
        top = 170 + 5 * k
        size = (192, 256, 320)[k % 3]
        paths.append(save(sky(rng, top, top + 12, size), d / f"sky_{k}.jpg", quality=90))
    paths.append(save(smoke(rng), d / "smoke.jpg"))
    scenes = [make_scene(rng) for _ in range(4)]
    paths += [save(s, d / f"scene_{k}.jpg") for k, s in enumerate(scenes)]
    bright = np.clip(scenes[0].astype(int) + 20, 0, 255).astype(np.uint8)
    paths.append(save(bright, d / "scene_0_bright.jpg"))
    return paths


def _gray(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    return to_gray(cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_AREA))


def test_flat_share_tells_sky_from_photos(crops: list[Path]) -> None:
    shares = {p.stem: flat_share(_gray(p)) for p in crops}
    assert all(shares[f"sky_{k}"] >= FLAT_SHARE for k in range(10))
    assert shares["smoke"] >= FLAT_SHARE
    assert all(shares[f"scene_{k}"] < FLAT_SHARE for k in range(4))


def test_a_cluster_of_flat_images_gets_a_note(crops: list[Path]) -> None:
    plan = find_duplicates(dataset([item(p) for p in crops]), DedupeOptions(ssim=0.85))
    rep = build_report(plan)
    flat = [c for c in rep["clusters"] if 2 * c["flat_members"] > c["size"]]
    scenes = [c for c in rep["clusters"] if c["kept"].startswith("scene")]
    # Unrelated skies (and the smoke photo) join under plain SSIM; the note says how many.
    assert len(flat) == 1 and flat[0]["size"] >= 10
    assert [c["flat_members"] for c in scenes] == [0]
    (note,) = rep["notes"]
    assert note.startswith(f"1 cluster(s) ({flat[0]['size']} images; largest {flat[0]['id']}")
    assert "--hist 0.9 --combine all" in note and "--roi objects" in note
    # The note changes nothing that is kept.
    assert rep["counts"]["kept"] == len(plan.kept_new())


@pytest.mark.parametrize(
    "options",
    [
        DedupeOptions(ssim=0.85, hist=0.9, combine="all"),  # the remedy: colours must match
        DedupeOptions(exact_only=True),
        DedupeOptions(hist=0.9),
    ],
)
def test_no_note_where_ssim_does_not_decide_alone(
    crops: list[Path], options: DedupeOptions
) -> None:
    plan = find_duplicates(dataset([item(p) for p in crops]), options)
    assert build_report(plan)["notes"] == []


def test_no_note_on_ordinary_photos(tmp_path: Path, rng: np.random.Generator) -> None:
    d = tmp_path / "photos"
    scenes = [make_scene(rng) for _ in range(5)]
    paths = [save(s, d / f"s{k}.jpg") for k, s in enumerate(scenes)]
    paths += [save(s, d / f"s{k}_q50.jpg", quality=50) for k, s in enumerate(scenes)]
    rep = build_report(find_duplicates(dataset([item(p) for p in paths])))
    assert rep["counts"]["clusters"] == 5 and rep["notes"] == []
