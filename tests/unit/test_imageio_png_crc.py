"""A damaged PNG (bad chunk CRC, truncation) is a CorruptImageError on every read path."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.core.errors import CorruptImageError
from curate.core.imageio import probe, read_image, read_reduced

Reader = Callable[[Path], object]

READERS: dict[str, Reader] = {
    "read_image": read_image,
    "read_reduced": lambda p: read_reduced(p, 32),
    "read_reduced(data)": lambda p: read_reduced(p, 32, data=p.read_bytes()),
}


def _chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    """``(offset, length, type)`` of each chunk of a PNG."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        out.append((pos, length, data[pos + 4 : pos + 8]))
        pos += 12 + length
    return out


def _png(path: Path, rng: np.random.Generator, side: int = 40) -> bytes:
    """A valid RGB PNG of noise (``side`` 400: about 480 kB in several IDAT chunks)."""
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side + 8, 3), dtype=np.uint8)).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _flip_crc(path: Path, kind: bytes, *, last: bool = False) -> int:
    """Flip one bit of the CRC of the first (or ``last``) ``kind`` chunk; its offset."""
    data = bytearray(path.read_bytes())
    pos, length, _ = [c for c in _chunks(bytes(data)) if c[2] == kind][-1 if last else 0]
    data[pos + 8 + length] ^= 0x01
    path.write_bytes(bytes(data))
    return pos


def test_valid_png_decodes_to_its_pixels(tmp_path: Path, rng: np.random.Generator) -> None:
    _png(tmp_path / "ok.png", rng)
    expected = np.asarray(Image.open(tmp_path / "ok.png").convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "ok.png"), expected)
    assert read_reduced(tmp_path / "ok.png", 32).shape == (27, 32, 3)
    assert probe(tmp_path / "ok.png").width == 48


@pytest.mark.parametrize("reader", READERS)
def test_bad_idat_crc_is_corrupt(tmp_path: Path, rng: np.random.Generator, reader: str) -> None:
    p = tmp_path / "idat.png"
    _png(p, rng)
    pos = _flip_crc(p, b"IDAT")
    with pytest.raises(CorruptImageError) as info:
        READERS[reader](p)
    assert info.value.where == str(p)
    assert f"CRC of its IDAT chunk at byte {pos} does not match" in info.value.rule


def test_probe_checks_the_crcs_of_the_bytes_it_reads(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A small PNG lies whole in the bytes probe reads: its readers leave it out."""
    p = tmp_path / "idat.png"
    _png(p, rng)
    _flip_crc(p, b"IDAT")
    with pytest.raises(CorruptImageError, match="CRC of its IDAT chunk"):
        probe(p)
    assert probe(p, check_tail=False).width == 48  # reading annotations only: no check


def test_damage_past_the_header_bytes_is_found_when_decoding(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    p = tmp_path / "big.png"
    assert len(_png(p, rng, side=400)) > 4 * 65536
    pos = _flip_crc(p, b"IDAT", last=True)
    assert pos > 65536
    for read in READERS.values():
        with pytest.raises(CorruptImageError, match=f"IDAT chunk at byte {pos}"):
            read(p)


@pytest.mark.parametrize("reader", [*READERS, "probe"])
def test_bad_ihdr_crc_names_the_file(tmp_path: Path, rng: np.random.Generator, reader: str) -> None:
    """Not Pillow's 'cannot identify image file <_io.BytesIO object at 0x...>'."""
    p = tmp_path / "ihdr.png"
    _png(p, rng)
    _flip_crc(p, b"IHDR")
    with pytest.raises(CorruptImageError) as info:
        probe(p) if reader == "probe" else READERS[reader](p)
    assert "CRC of its IHDR chunk at byte 8" in info.value.rule
    assert str(p) in info.value.message and "BytesIO" not in info.value.message


@pytest.mark.parametrize("reader", READERS)
def test_unidentified_bytes_name_the_file(tmp_path: Path, reader: str) -> None:
    p = tmp_path / "x.png"
    p.write_bytes(b"not an image at all")
    with pytest.raises(CorruptImageError) as info:
        READERS[reader](p)
    assert info.value.rule == f"not a readable image (cannot identify image file '{p}')"
    with pytest.raises(CorruptImageError) as probed:
        probe(p)
    assert probed.value.rule == info.value.rule  # the same words on every path


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("cut", [12, 1000])
def test_truncated_png_is_corrupt(
    tmp_path: Path, rng: np.random.Generator, reader: str, cut: int
) -> None:
    """Without its IEND chunk (12 bytes) OpenCV refuses a PNG; so does every reader."""
    p = tmp_path / "trunc.png"
    p.write_bytes(_png(tmp_path / "ok.png", rng)[:-cut])
    with pytest.raises(CorruptImageError, match="truncated"):
        probe(p)
    with pytest.raises(CorruptImageError, match="truncated"):
        READERS[reader](p)


@pytest.mark.parametrize("name", ["read_image", "read_reduced"])
def test_png_over_the_pixel_limit_is_refused_before_it_is_read_whole(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A huge PNG meets the pixel limit from its header: the CRC check does not read
    the whole file into memory first."""
    from curate.core import imageio
    from curate.core.errors import ImageTooLargeError

    path = tmp_path / "big.png"
    _png(path, rng, side=400)
    reads: list[int] = []
    real_open = open

    class Counting(io.FileIO):
        def read(self, size: int = -1) -> bytes:
            reads.append(size)
            return super().read(size)

    def counting_open(file: object, mode: str = "r", *args: object, **kw: object) -> object:
        if Path(str(file)) == path and mode == "rb":
            return Counting(str(file), "rb")
        return real_open(file, mode, *args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(imageio, "open", counting_open, raising=False)
    read = read_image if name == "read_image" else lambda p, **kw: read_reduced(p, 32, **kw)
    with pytest.raises(ImageTooLargeError):
        read(path, max_pixels=1000)
    assert -1 not in reads  # never read to the end
    reads.clear()
    assert read(path, max_pixels=None).shape[2] == 3
    assert -1 in reads  # a PNG within the limit is read whole (its CRCs checked)


def test_png_cut_inside_its_header_is_corrupt_not_a_crash(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """QA round 6: 16 to 25 bytes of a PNG raised IndexError in the fast header reader,
    which stopped a whole run even under --on-error skip."""
    data = _png(tmp_path / "whole.png", rng)
    for n in range(9, 34):
        path = tmp_path / f"cut{n}.png"
        path.write_bytes(data[:n])
        with pytest.raises(CorruptImageError):
            probe(path)


def test_bytes_where_a_chunk_should_start_are_named_as_such(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """QA round 6: a PNG whose end was overwritten with zeros read as a bad CRC of a chunk
    with a blank name, and a chunk type holding an escape code printed it raw to the
    terminal."""
    data = _png(tmp_path / "whole.png", rng, side=400)
    (pos, length, _kind), *_ = [c for c in _chunks(data) if c[2] == b"IDAT"]
    zeroed = data[: pos + 12 + length] + bytes(len(data) - pos - 12 - length)
    escaped = bytearray(data)
    escaped[pos + 4 : pos + 8] = b"\x1b[8m"
    for name, raw in (("zeroed", zeroed), ("escaped", bytes(escaped))):
        path = tmp_path / f"{name}.png"
        path.write_bytes(raw)
        with pytest.raises(CorruptImageError, match="no chunk starts at byte") as err:
            read_image(path)
        assert "\x1b" not in str(err.value)
