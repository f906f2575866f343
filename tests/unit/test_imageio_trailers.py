"""Data after an image's end is not truncation (QA round 5: good files were refused), and
truncation is still found when the end marker lies elsewhere in the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.core.errors import CorruptImageError
from curate.core.imageio import _jpeg_end, _png_end, probe, read_image


def _photo(rng: np.random.Generator, h: int = 120, w: int = 160) -> np.ndarray:
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def _jpeg(rng: np.random.Generator, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_photo(rng)).save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def _with_thumbnail(rng: np.random.Generator) -> bytes:
    """A JPEG whose APP1 holds a whole JPEG thumbnail, EOI included (as cameras write)."""
    thumb = _jpeg(rng)
    app1 = b"Exif\x00\x00" + thumb
    main = _jpeg(rng)
    segment = b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
    return main[:2] + segment + main[2:]


@pytest.mark.parametrize("trailer", [b"\x00" * 63, b"\x00" * 4096, b"ftypmp42" + bytes(3000)])
def test_jpeg_with_data_after_its_end_is_read(
    tmp_path: Path, rng: np.random.Generator, trailer: bytes
) -> None:
    """Zero padding and a motion photo's video after EOI: probe and decode accept it."""
    data = _jpeg(rng)
    path = tmp_path / "a.jpg"
    path.write_bytes(data + trailer)
    assert _jpeg_end(path) == len(data)
    assert probe(path).width == 160 and read_image(path).shape == (120, 160, 3)


@pytest.mark.parametrize("save", [{}, {"progressive": True}])
def test_jpeg_cut_short_is_truncated_however_its_end_looks(
    tmp_path: Path, rng: np.random.Generator, save: dict[str, object]
) -> None:
    data = _jpeg(rng, **save)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3] + bytes(200))  # zeros where the rest was
    assert _jpeg_end(path) is None
    with pytest.raises(CorruptImageError, match="JPEG is truncated"):
        probe(path)


def test_an_exif_thumbnail_end_marker_does_not_end_the_image(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    data = _with_thumbnail(rng)
    path = tmp_path / "thumb.jpg"
    path.write_bytes(data)
    assert _jpeg_end(path) == len(data)
    path.write_bytes(data[: len(data) - 900] + bytes(100))  # the main image cut short
    assert b"\xff\xd9" in path.read_bytes()  # the thumbnail's own EOI is still there
    with pytest.raises(CorruptImageError, match="JPEG is truncated"):
        probe(path)


def test_restart_markers_and_fill_bytes_are_part_of_the_scan(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A scan with restart markers (as cameras write) runs to its EOI."""
    path = tmp_path / "rst.jpg"
    import cv2

    ok, enc = cv2.imencode(".jpg", _photo(rng), [cv2.IMWRITE_JPEG_RST_INTERVAL, 4])
    assert ok
    data = enc.tobytes()
    assert any(bytes([0xFF, m]) in data for m in range(0xD0, 0xD8))
    path.write_bytes(data + bytes(500))
    assert _jpeg_end(path) == len(data)
    probe(path)


def test_png_with_data_after_iend_is_read_and_a_cut_one_is_not(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    buf = io.BytesIO()
    Image.fromarray(_photo(rng)).save(buf, "PNG")
    data = buf.getvalue()
    path = tmp_path / "a.png"
    path.write_bytes(data + b"\x00" * 1000)
    assert _png_end(path) == len(data)
    assert probe(path).height == 120 and read_image(path).shape == (120, 160, 3)
    path.write_bytes(data[: len(data) // 2] + b"IEND" + bytes(20))  # 'IEND' bytes, no chunk
    assert _png_end(path) is None
    with pytest.raises(CorruptImageError, match="truncated"):
        read_image(path)


def _scan_start(data: bytes) -> int:
    """Offset of the entropy-coded data of a baseline JPEG's scan."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")


def _damaged(data: bytes, how: str, rng: np.random.Generator) -> bytes:
    s, e = _scan_start(data), len(data) - 2  # the scan runs up to EOI
    third = (e - s) // 3
    if how == "cut_middle":  # bytes lost from the middle, the end kept
        return data[: s + third] + data[s + 2 * third :]
    if how == "scrambled":
        junk = rng.integers(0, 256, third, dtype=np.uint8).tobytes()
        return data[: s + third] + junk + data[s + 2 * third :]
    if how == "zeroed":
        return data[: s + third] + bytes(third) + data[s + 2 * third :]
    if how == "no_scan":  # headers and EOI only
        return data[: data.index(b"\xff\xda")] + b"\xff\xd9"
    raise ValueError(how)


@pytest.mark.parametrize("how", ["cut_middle", "scrambled", "zeroed", "no_scan"])
def test_verify_finds_jpeg_damage_that_libjpeg_only_warns_about(
    tmp_path: Path, rng: np.random.Generator, how: str
) -> None:
    """QA round 5: Pillow decodes cut and zeroed data without a word (libjpeg fills the rest
    with gray), so only libjpeg's warnings tell; every kind is an error of verify_image."""
    from curate.core.imageio import verify_image

    path = tmp_path / f"{how}.jpg"
    path.write_bytes(_damaged(_jpeg(rng), how, rng))
    probe(path)  # the structure is intact: the readers' check passes
    if how in ("cut_middle", "zeroed"):
        assert read_image(path).shape == (120, 160, 3)  # what verify_image adds
    with pytest.raises(CorruptImageError, match=r"JPEG data is damaged|cannot decode image"):
        verify_image(path)


def test_verify_passes_good_jpegs_of_every_kind(tmp_path: Path, rng: np.random.Generator) -> None:
    import cv2

    from curate.core.imageio import verify_image

    ok, rst = cv2.imencode(".jpg", _photo(rng), [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])
    assert ok
    gray = io.BytesIO()
    Image.fromarray(_photo(rng)[..., 0]).save(gray, "JPEG")
    files = {
        "plain": _jpeg(rng),
        "progressive": _jpeg(rng, progressive=True),
        "restart": rst.tobytes(),
        "gray": gray.getvalue(),
        "thumbnail": _with_thumbnail(rng),
        "motion_photo": _jpeg(rng) + b"ftypmp42" + bytes(5000),
    }
    for name, data in files.items():
        (tmp_path / f"{name}.jpg").write_bytes(data)
        verify_image(tmp_path / f"{name}.jpg")


def test_verify_passes_a_few_stray_bytes_before_the_end(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """libjpeg warns about 'N extraneous bytes before marker 0xd9' when an intact image has
    padding before its end, as some encoders write: a few such bytes are no damage."""
    from curate.core.imageio import verify_image

    data = _jpeg(rng)
    path = tmp_path / "pad.jpg"
    path.write_bytes(data[:-2] + bytes(4) + data[-2:])
    verify_image(path)
    path.write_bytes(data[:-2] + bytes(400) + data[-2:])
    with pytest.raises(CorruptImageError, match="extraneous bytes before marker 0xd9"):
        verify_image(path)


def test_verify_sees_damage_behind_a_harmless_first_warning(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """libjpeg prints only its first warning: an unknown JFIF revision hid a cut scan
    (QA round 6). The APP segments are left out for a second look."""
    from curate.core.imageio import verify_image

    data = bytearray(_jpeg(rng))
    app0 = data.index(b"JFIF\x00")
    data[app0 + 5] = 2  # JFIF 2.01: 'unknown JFIF revision number'
    path = tmp_path / "jfif2.jpg"
    path.write_bytes(bytes(data))
    verify_image(path)  # intact: the harmless warning alone is no damage
    path.write_bytes(_damaged(bytes(data), "cut_middle", rng))
    with pytest.raises(CorruptImageError, match="JPEG data is damaged"):
        verify_image(path)


def test_verify_checks_the_main_picture_of_an_mpo(tmp_path: Path, rng: np.random.Generator) -> None:
    """Pillow calls a JPEG with more pictures (a phone's depth or gain map) 'MPO'."""
    from curate.core.imageio import verify_image

    buf = io.BytesIO()
    first, second = Image.fromarray(_photo(rng)), Image.fromarray(_photo(rng))
    first.save(buf, "MPO", save_all=True, append_images=[second])
    path = tmp_path / "multi.jpg"
    path.write_bytes(buf.getvalue())
    with Image.open(path) as img:
        assert img.format == "MPO"
    verify_image(path)
    data = buf.getvalue()
    s = _scan_start(data)
    path.write_bytes(data[:s] + bytes(3000) + data[s + 3000 :])  # the main picture zeroed
    with pytest.raises(CorruptImageError, match="JPEG data is damaged"):
        verify_image(path)


def test_a_stray_byte_between_segments_is_neither_truncation_nor_damage(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """libjpeg skips stray bytes between segments and decodes the image whole (QA round 6:
    'truncated' with a trailer, 'damaged' under --verify)."""
    from curate.core.imageio import verify_image

    data = _jpeg(rng)
    dqt = data.index(b"\xff\xdb")
    odd = data[:dqt] + b"\x00" + data[dqt:]
    path = tmp_path / "odd.jpg"
    for trailer in (b"", bytes(4096)):
        path.write_bytes(odd + trailer)
        assert _jpeg_end(path) == len(odd)
        probe(path)
        verify_image(path)
