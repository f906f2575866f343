"""Decoding 16-bit files that hold fewer bits, and reduced reads of EXIF-oriented images.

QA: 20 different photos stored as 16-bit PNGs holding 12-bit data (0..4095) decoded to
0..15, and dedupe dropped half of them; a photo with EXIF orientation 3, 4, 7 or 8 and a
side no multiple of the DCT scale got a thumbnail shifted by part of a pixel (SSIM 0.93
against its upright copy at 128 px, 1.00 for orientation 6).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from numpy.typing import NDArray
from PIL import Image

from curate.core.dataset import Category, Dataset, ImageItem
from curate.core.imageio import read_image, read_reduced, to_rgb8
from curate.dedupe import DedupeOptions, find_duplicates
from curate.dedupe.ssim import ssim

#: What each EXIF orientation does to the upright picture to give the stored one.
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def _picture(rng: np.random.Generator, h: int, w: int) -> NDArray[np.uint8]:
    """A gray picture with detail at several scales, a few shapes and grain, spanning 0..255."""
    img = np.zeros((h, w), np.float32)
    for step in (64, 16, 4):
        field = rng.uniform(-1, 1, (h // step + 2, w // step + 2)).astype(np.float32)
        img += cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC) * step**0.5
    for _ in range(4):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.circle(img, (x, y), int(rng.integers(h // 10, h // 4)), float(rng.uniform(-8, 8)), -1)
    img += rng.normal(0, 0.3, img.shape).astype(np.float32)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return np.round(img).astype(np.uint8)


def _deep(picture: NDArray[np.uint8], bits: int, rng: np.random.Generator) -> NDArray[np.uint16]:
    """``picture`` as ``bits``-bit data (its 8 bits on top, noise below) for a 16-bit file."""
    low = rng.integers(0, 1 << (bits - 8), picture.shape) if bits > 8 else 0
    return ((picture.astype(np.uint16) << (bits - 8)) | low).astype(np.uint16)


def _save16(data: NDArray[np.uint16], path: Path) -> Path:
    Image.fromarray(data).save(path)  # a 16-bit gray file (Pillow's mode I;16)
    with Image.open(path) as im:
        assert im.mode in ("I;16", "I;16B", "I")
    return path


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_twelve_bit_pictures_span_the_8bit_range_and_stay_different(
    tmp_path: Path, rng: np.random.Generator, ext: str
) -> None:
    pictures = [_picture(rng, 240, 320) for _ in range(6)]
    paths = [_save16(_deep(p, 12, rng), tmp_path / f"p{k}{ext}") for k, p in enumerate(pictures)]
    thumbs = []
    for picture, path in zip(pictures, paths, strict=True):
        full = read_image(path)
        assert full.dtype == np.uint8 and full.shape == (240, 320, 3)
        np.testing.assert_array_equal(full[..., 0], picture)  # the top 8 of the 12 bits
        thumb = read_reduced(path, 128, gray=True)
        assert thumb.min() < 20 and thumb.max() > 235
        thumbs.append(thumb)
    for i in range(len(thumbs)):
        for j in range(i):
            assert ssim(thumbs[i], thumbs[j]) < 0.5, (i, j)


@pytest.mark.parametrize("bits", [8, 10, 12, 14, 16])
def test_one_picture_decodes_alike_in_any_sample_depth(
    tmp_path: Path, rng: np.random.Generator, bits: int
) -> None:
    """The top 8 of the bits the data uses, whether or not the container has more."""
    picture = _picture(rng, 150, 200)
    deep = _deep(picture, bits, rng)
    narrow = _save16(deep, tmp_path / "narrow.png")
    wide = _save16(deep << (16 - bits), tmp_path / "wide.png")  # the same scaled to 16 bits
    for read in (read_image, lambda p: read_reduced(p, 128)):
        a, b = read(narrow), read(wide)
        assert a.shape == b.shape
        assert np.abs(a.astype(int) - b).max() <= 1, read
    np.testing.assert_array_equal(read_image(narrow)[..., 1], picture)


def test_a_hot_pixel_does_not_darken_the_picture(tmp_path: Path, rng: np.random.Generator) -> None:
    """QA round 11: one pixel at 65535 in a 12-bit frame (a thermal camera's hot pixel)
    set the range, and the rest decoded nearly black (mean 6.8 instead of 116)."""
    picture = _picture(rng, 150, 200)
    deep = _deep(picture, 12, rng)
    clean = _save16(deep, tmp_path / "clean.png")
    hot = deep.copy()
    hot[10, 10] = 65535
    spot = _save16(hot, tmp_path / "hot.png")
    a, b = read_image(clean), read_image(spot)
    assert b[10, 10].tolist() == [255, 255, 255]
    b[10, 10] = a[10, 10]
    np.testing.assert_array_equal(a, b)


def test_int32_samples_scale_by_the_depth_used() -> None:
    data = np.array([[0, 0, 15, 16], [1000, 2048, 4000, 4095]], np.int32)
    out = to_rgb8(Image.fromarray(data))  # Pillow's mode I
    assert out.shape == (2, 4, 3)
    np.testing.assert_array_equal(out[..., 2], [[0, 0, 0, 1], [62, 128, 250, 255]])


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_signed_samples_start_at_their_coldest(
    tmp_path: Path, rng: np.random.Generator, dtype: type
) -> None:
    """A signed TIFF (a DEM, a thermal frame in degrees) of -1000..1000 decoded its
    negatives black, half the picture; it now spans the 8-bit range, and one stray cold
    pixel clips to 0 instead of shifting the rest."""
    picture = _picture(rng, 150, 200)
    picture[:, 0] = 0  # more than the coldest 0.01 % at the minimum
    signed = (picture.astype(np.int32) * 8 - 1024).astype(dtype)  # -1024..1016
    path = tmp_path / "signed.tif"
    tifffile.imwrite(path, signed)
    got = read_image(path)[..., 0]
    assert got.min() == 0 and got.max() >= 250
    np.testing.assert_array_equal(got, picture)  # 0..2040 keeps its top 8 bits
    cold = signed.copy()
    cold[5, 5] = np.iinfo(dtype).min
    tifffile.imwrite(path, cold)
    out = read_image(path)[..., 0]
    assert out[5, 5] == 0
    out[5, 5] = picture[5, 5]
    np.testing.assert_array_equal(out, picture)


def test_dedupe_keeps_different_twelve_bit_pictures(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Through the public API, on 12-bit PNGs: only the true copy (the same picture in a
    16-bit container) goes. ``find_duplicates`` without a runtime uses no signature cache."""
    pictures = [_picture(rng, 240, 320) for _ in range(8)]
    paths = [_save16(_deep(p, 12, rng), tmp_path / f"p{k}.png") for k, p in enumerate(pictures)]
    paths.append(_save16(_deep(pictures[3], 16, rng), tmp_path / "p3_16bit.png"))
    items = [ImageItem(p.name, p, 320, 240) for p in paths]
    plan = find_duplicates(Dataset([Category(0, "fire")], items), DedupeOptions())
    names = [im.path.name for im in plan.images]
    dropped = {names[i]: names[int(plan.resolution.dup_of[i])] for i in plan.dropped()}
    assert dropped in ({"p3_16bit.png": "p3.png"}, {"p3.png": "p3_16bit.png"})


def _save_oriented(upright: NDArray[np.uint8], orientation: int, path: Path) -> Path:
    """``upright`` stored as a camera with EXIF ``orientation`` stores it."""
    im = Image.fromarray(upright)
    turn = STORED[orientation]
    stored = im if turn is None else im.transpose(turn)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=95, exif=exif.tobytes())
    return path


@pytest.mark.parametrize("ext", [".jpg", ".png"])
@pytest.mark.parametrize(("w", "h"), [(640, 426), (500, 375), (641, 427), (640, 480), (385, 640)])
def test_every_orientation_reduces_like_its_upright_copy(
    tmp_path: Path, rng: np.random.Generator, ext: str, w: int, h: int
) -> None:
    """Same thumbnail (SSIM >= 0.99 at 128 px) for every orientation, whether or not the
    sides are multiples of the DCT scale: the reduction grid starts at the displayed
    top-left corner, as it does for the upright copy."""
    picture = _picture(rng, h, w)
    upright = np.repeat(picture[:, :, None], 3, axis=2)
    ref = read_reduced(_save_oriented(upright, 1, tmp_path / f"up{ext}"), 128, gray=True)
    assert ref.shape == (round(h * 128 / max(w, h)), round(w * 128 / max(w, h)))
    for orientation in range(2, 9):
        path = _save_oriented(upright, orientation, tmp_path / f"o{orientation}{ext}")
        got = read_reduced(path, 128, gray=True)
        assert got.shape == ref.shape, orientation
        assert ssim(got, ref) >= 0.99, (orientation, ssim(got, ref))
        if ext == ".png":  # the same pixels on the same grid: the same thumbnail
            assert np.abs(got.astype(int) - ref).max() <= 1, orientation


def test_a_thin_jpeg_is_reduced_without_a_dark_edge(tmp_path: Path) -> None:
    """A side far shorter than the other (41 of 4000 px) decodes at the DCT scale of the
    longer one; the scale is the decoder's own, not one guessed from rounded sizes."""
    path = tmp_path / "thin.jpg"
    Image.fromarray(np.full((4000, 41, 3), 200, np.uint8)).save(path, quality=95)
    out = read_reduced(path, 128)
    assert out.shape == (128, 1, 3)
    assert out.min() >= 195
