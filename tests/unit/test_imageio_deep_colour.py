"""Colour PNGs and TIFFs of 16 bits per sample (48-bit RGB, 64-bit RGBA).

QA round 12: Pillow opens these as 8-bit RGB or RGBA keeping each sample's top byte, so
12-bit data (0..4095) decoded to 0..15 (one photo's mean 5.4 against 93.2 for its 8-bit
original) and dedupe kept 11 of 20 different photos. They decode like 16-bit gray now.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from numpy.typing import NDArray
from PIL import Image
from test_imageio_depth_orientation import STORED  # what each orientation does

from curate.core.dataset import Category, Dataset, ImageItem
from curate.core.errors import CorruptImageError, ImageTooLargeError
from curate.core.imageio import read_image, read_reduced, verify_image
from curate.dedupe import DedupeOptions, find_duplicates

Reader = Callable[[Path], NDArray[np.uint8]]

READERS: dict[str, Reader] = {
    "read_image": read_image,
    "read_reduced": lambda p: read_reduced(p, 32),
    "read_reduced(gray)": lambda p: read_reduced(p, 32, gray=True),
    "read_reduced(data)": lambda p: read_reduced(p, 32, data=p.read_bytes()),
}


def _photo(rng: np.random.Generator, h: int, w: int) -> NDArray[np.uint8]:
    """A colour picture with detail at several scales, each channel spanning 0..255."""
    img = np.zeros((h, w, 3), np.float32)
    for step in (32, 8, 2):
        field = rng.uniform(-1, 1, (h // step + 2, w // step + 2, 3)).astype(np.float32)
        img += cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC) * step**0.5
    lo, hi = img.min(axis=(0, 1)), img.max(axis=(0, 1))
    return np.round((img - lo) / (hi - lo) * 255).astype(np.uint8)


def _deep(picture: NDArray[np.uint8], bits: int, rng: np.random.Generator) -> NDArray[np.uint16]:
    """``picture`` as ``bits``-bit data (its 8 bits on top, noise below)."""
    low = rng.integers(0, 1 << (bits - 8), picture.shape)
    return ((picture.astype(np.uint16) << (bits - 8)) | low).astype(np.uint16)


def _write16(path: Path, rgb: NDArray[np.uint16]) -> Path:
    """``rgb`` (H, W, 3 or 4: RGB or RGBA) as a 16-bit-per-sample PNG or TIFF, written by
    OpenCV as QA's files were (BGR order on its side)."""
    bgr = rgb[:, :, [2, 1, 0, 3][: rgb.shape[2]]]
    assert cv2.imwrite(str(path), bgr)
    with Image.open(path) as im:  # what Pillow makes of it: 8-bit colour
        assert im.mode in ("RGB", "RGBA")
    return path


def _png16(
    path: Path,
    samples: NDArray[np.uint16],
    *,
    colour_type: int,
    exif: bytes = b"",
    late: bool = False,
) -> Path:
    """A PNG of 16-bit ``samples`` (H, W, channels) of PNG ``colour_type`` (2 RGB, 4 gray
    and alpha, 6 RGBA), with an eXIf chunk holding ``exif`` (Pillow's ``Exif.tobytes()``)
    before the pixel data or, ``late``, after it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    h, w = samples.shape[:2]
    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(h))
    meta = chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")) if exif else b""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(rows))
    body = header + (pixels + meta if late else meta + pixels)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))
    return path


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("bits", [12, 16])
def test_sixteen_bit_colour_decodes_like_its_eight_bit_copy(
    tmp_path: Path, rng: np.random.Generator, bits: int, ext: str
) -> None:
    """The top 8 of the bits the data uses: 12-bit and 16-bit data, PNG and TIFF, give
    the 8-bit picture exactly, full size and reduced."""
    photo = _photo(rng, 75, 101)
    ref = tmp_path / "ref.png"
    Image.fromarray(photo).save(ref)
    path = _write16(tmp_path / f"deep{ext}", _deep(photo, bits, rng))
    np.testing.assert_array_equal(read_image(path), photo)
    for name, read in READERS.items():
        np.testing.assert_array_equal(read(path), read(ref), err_msg=name)


def test_colour_shares_the_gray_range_rule(tmp_path: Path, rng: np.random.Generator) -> None:
    """Gray data stored as 48-bit colour decodes as the same data stored as 16-bit gray,
    a hot pixel included (it saturates; the rest keeps the 12-bit range)."""
    gray = _deep(_photo(rng, 150, 200)[:, :, 0], 12, rng)
    gray[10, 10] = 65535
    Image.fromarray(gray).save(tmp_path / "gray.png")  # Pillow's mode I;16
    colour = np.repeat(gray[:, :, None], 3, axis=2)
    want = read_image(tmp_path / "gray.png")
    assert want[10, 10].tolist() == [255, 255, 255] and want.mean() > 60
    for path in (_write16(tmp_path / "c.png", colour), _write16(tmp_path / "c.tif", colour)):
        for name, read in READERS.items():
            np.testing.assert_array_equal(read(path), read(tmp_path / "gray.png"), err_msg=name)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_sixty_four_bit_rgba_drops_its_alpha(
    tmp_path: Path, rng: np.random.Generator, ext: str
) -> None:
    """Alpha is dropped, as for 8-bit RGBA, and takes no part in the range (an opaque
    alpha of 65535 beside 12-bit colour does not make the colour 16-bit)."""
    photo = _photo(rng, 60, 80)
    alpha = np.full((60, 80), 65535, np.uint16)
    alpha[:, :40] = 0
    path = _write16(tmp_path / f"rgba{ext}", np.dstack([_deep(photo, 12, rng), alpha]))
    np.testing.assert_array_equal(read_image(path), photo)
    # 16-bit gray with alpha (PNG colour type 4) too
    gray_alpha = np.dstack([_deep(photo[:, :, 1], 12, rng), alpha])
    got = read_image(_png16(tmp_path / "la.png", gray_alpha, colour_type=4))
    np.testing.assert_array_equal(got, np.repeat(photo[:, :, 1:2], 3, axis=2))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applies_once(
    tmp_path: Path, rng: np.random.Generator, orientation: int
) -> None:
    """A PNG's eXIf chunk (before or after the pixel data) and a TIFF's Orientation tag
    turn 16-bit colour as they turn the 8-bit copy, in full and reduced reads."""
    upright = _photo(rng, 75, 101)
    turn = STORED[orientation]
    stored = upright if turn is None else np.asarray(Image.fromarray(upright).transpose(turn))
    ref = tmp_path / "ref.png"
    Image.fromarray(stored).save(ref, exif=_exif(orientation))
    deep = _deep(stored, 12, rng)
    early = _png16(tmp_path / "early.png", deep, colour_type=2, exif=_exif(orientation))
    late = _png16(tmp_path / "late.png", deep, colour_type=2, exif=_exif(orientation), late=True)
    tif = tmp_path / "deep.tif"
    tifffile.imwrite(tif, deep, photometric="rgb", extratags=[(0x0112, "H", 1, orientation, True)])
    for path in (early, late, tif):
        np.testing.assert_array_equal(read_image(path), upright, err_msg=path.name)
        for name, read in READERS.items():
            got, want = read(path).astype(int), read(ref)
            assert got.shape == want.shape, (path.name, name)
            # A TIFF comes upright from the decoder and is area-resized so: within 1 level.
            assert np.abs(got - want).max() <= (1 if path == tif else 0), (path.name, name)
    np.testing.assert_array_equal(read_image(early, exif=False), stored)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_a_cut_or_damaged_sixteen_bit_colour_file_is_a_clear_error(
    tmp_path: Path, rng: np.random.Generator, ext: str
) -> None:
    deep = _deep(_photo(rng, 120, 160), 12, rng)
    whole = tmp_path / f"whole{ext}"
    if ext == ".png":
        _write16(whole, deep)
    else:  # its header first (OpenCV writes it last: a cut one is no TIFF at all)
        tifffile.imwrite(whole, deep, photometric="rgb", compression="zlib")
    data = whole.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) // 2])
    said = "PNG is truncated" if ext == ".png" else r"TIFF is truncated \(its image data ends at"
    for read in (*READERS.values(), verify_image):
        with pytest.raises(CorruptImageError, match=said):
            read(cut)
    if ext == ".tif":  # whole, but its compressed data scrambled: Pillow's decoder says so
        bad = bytearray(data)
        for k in range(len(data) // 2, len(data) // 2 + 64):
            bad[k] ^= 0x5A
        (tmp_path / "bad.tif").write_bytes(bytes(bad))
        with pytest.raises(CorruptImageError, match="cannot decode image"):
            read_image(tmp_path / "bad.tif")


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_the_pixel_limit_holds_before_decoding(
    tmp_path: Path, rng: np.random.Generator, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write16(tmp_path / f"deep{ext}", _deep(_photo(rng, 60, 80), 12, rng))

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded an image over the pixel limit")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(ImageTooLargeError, match="60"):
        read_image(path, max_pixels=4000)
    with pytest.raises(ImageTooLargeError, match="60"):
        read_reduced(path, 32, max_pixels=4000)


def test_eight_bit_and_gray_files_decode_as_before(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only 16-bit colour takes OpenCV's decoder; every other file decodes as it did."""
    photo = _photo(rng, 60, 80)
    files = {
        "rgb.png": (Image.fromarray(photo), photo),
        "rgb.tif": (Image.fromarray(photo), photo),
        "rgba.png": (Image.fromarray(np.dstack([photo, photo[:, :, 0]])), photo),
        "gray.png": (Image.fromarray(photo[:, :, 0]), np.repeat(photo[:, :, :1], 3, axis=2)),
        "gray16.png": (
            Image.fromarray(photo[:, :, 0].astype(np.uint16) << 8),
            np.repeat(photo[:, :, :1], 3, axis=2),
        ),
    }
    for name, (im, _) in files.items():
        im.save(tmp_path / name)

    def no_decode(*args: object) -> None:
        raise AssertionError("OpenCV decoded a file Pillow decodes")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    for name, (_, want) in files.items():
        np.testing.assert_array_equal(read_image(tmp_path / name), want, err_msg=name)
        assert read_reduced(tmp_path / name, 32).shape == (24, 32, 3)


def test_dedupe_keeps_different_twelve_bit_colour_photos(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """Through the public API: only the true copy (the same photo as a 16-bit TIFF) goes.
    ``find_duplicates`` without a runtime uses no signature cache."""
    photos = [_photo(rng, 240, 320) for _ in range(8)]
    paths = [_write16(tmp_path / f"p{k}.png", _deep(p, 12, rng)) for k, p in enumerate(photos)]
    paths.append(_write16(tmp_path / "p3_16bit.tif", _deep(photos[3], 16, rng)))
    items = [ImageItem(p.name, p, 320, 240) for p in paths]
    plan = find_duplicates(Dataset([Category(0, "fire")], items), DedupeOptions())
    names = [im.path.name for im in plan.images]
    dropped = {names[i]: names[int(plan.resolution.dup_of[i])] for i in plan.dropped()}
    assert dropped in ({"p3_16bit.tif": "p3.png"}, {"p3.png": "p3_16bit.tif"})


def test_a_geotiff_decodes_without_libtiff_warnings(
    tmp_path: Path, rng: np.random.Generator, capfd: pytest.CaptureFixture[str]
) -> None:
    """An aerial 16-bit GeoTIFF: libtiff does not know its tags and would warn on stderr
    for every file read (three lines per file, through OpenCV's log)."""
    photo = _photo(rng, 60, 80)
    geo = [
        (33550, "d", 3, (1.0, 1.0, 0.0), False),  # ModelPixelScale
        (33922, "d", 6, (0, 0, 0, 100.0, 200.0, 0), False),  # ModelTiepoint
        (34735, "H", 4, (1, 1, 0, 0), False),  # GeoKeyDirectory
    ]
    path = tmp_path / "tile.tif"
    tifffile.imwrite(path, _deep(photo, 12, rng), photometric="rgb", extratags=geo)
    level = cv2.utils.logging.getLogLevel()
    np.testing.assert_array_equal(read_image(path), photo)
    assert read_reduced(path, 32).shape == (24, 32, 3)
    assert capfd.readouterr().err == ""
    assert cv2.utils.logging.getLogLevel() == level  # OpenCV's own setting is left as it was
