"""Image files: header probes (no decode), checked decodes, reduced-size reads.

Sizes are always reported as displayed, i.e. after the EXIF orientation is applied:
a phone photo stored 4000x3000 with orientation 6 is 3000x4000, and its labels are
read in that frame (as labelling tools show it).

Decoding normalises every input to 8-bit RGB: grayscale is replicated, alpha is
dropped, palettes are expanded, and integer samples wider than 8 bits (16-bit gray PNG
and TIFF, 32-bit "I", 16-bit-per-channel RGB and RGBA PNG and TIFF) keep the top 8 of
the bits the data uses: they are shifted right by ``bit_length(top) - 8``, ``top`` the
99.99th percentile (a hot pixel saturates), so 16-bit data keeps its top byte while
12-bit data (0..4095, as thermal and scientific cameras write it into 16-bit files) is
shifted by 4, not 8, and still spans 0..255 (see :func:`to_rgb8`). Pillow reads colour
files of 16 bits per sample as 8-bit, keeping only each sample's top byte: those are
decoded by OpenCV instead (:func:`_deep_colour`).
"""

from __future__ import annotations

import io
import itertools
import os
import re
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, TiffImagePlugin, UnidentifiedImageError

from curate.core.errors import CorruptImageError, ImageTooLargeError, MissingFileError
from curate.core.output import side_name

#: Default decode limit: Pillow's own error threshold (2 x its warning limit), ~179 Mpx.
DEFAULT_MAX_PIXELS = 178_956_970
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a header says: displayed size, format, mode and EXIF orientation (1 = none)."""

    width: int
    height: int
    format: str
    mode: str
    orientation: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


@contextmanager
def _pillow_limit_off() -> Any:
    """Let Pillow open any size; sodkit checks ``max_pixels`` itself with a clear message.

    Pillow's own warnings are silenced too ("Corrupt EXIF data" from a TIFF header, with a
    path into site-packages): what matters about a file is an error of its item or nothing."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _check_exists(path: Path) -> None:
    if not path.is_file():
        raise MissingFileError(
            path, "image file does not exist", hint="check the path or the label's file name"
        )
    if path.stat().st_size == 0:
        raise CorruptImageError(
            path, "image file is empty (0 bytes)", hint="re-export or remove it"
        )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_truncated(path: Path) -> CorruptImageError:
    return CorruptImageError(
        path, "PNG is truncated (no IEND chunk)", hint="re-download or re-encode it"
    )


def _png_chunks(data: bytes) -> Iterator[tuple[int, bytes, int]]:
    """``(start, type, crc offset)`` of each chunk of the PNG whose first bytes are ``data``,
    in order, up to the first one that runs past the end of ``data``."""
    view = memoryview(data)
    pos, n = len(_PNG_SIGNATURE), len(data)
    while pos + 12 <= n:
        end = pos + 8 + int.from_bytes(view[pos : pos + 4], "big")
        if end + 4 > n:
            return
        yield pos, bytes(view[pos + 4 : pos + 8]), end
        pos = end + 4


def _check_png_chunks(path: Path, data: bytes, *, whole: bool = True) -> None:
    """Check the CRC of every chunk of the PNG whose first bytes are ``data``.

    Pillow checks the CRCs of the chunks before the pixel data only: a damaged IDAT
    decodes to wrong pixels without a word, while libpng (OpenCV, so most trainers)
    refuses the file. ``whole``: ``data`` is the whole file, so a chunk that runs past
    its end, or no IEND chunk, means the file is truncated; otherwise the chunks past
    the end of ``data`` are left unchecked. CRC-32 of bytes in memory runs at about
    4 GB/s: about 1 % of the time a PNG takes to decode.
    """
    view = memoryview(data)
    for pos, kind, end in _png_chunks(data):
        if not kind.isalpha():  # chunk types are 4 ASCII letters
            raise CorruptImageError(
                path,
                f"PNG is damaged: no chunk starts at byte {pos} where one should "
                "(zeros or other bytes: the file was cut short or overwritten)",
                hint="re-download or re-encode it",
            )
        if zlib.crc32(view[pos + 4 : end]) != int.from_bytes(view[end : end + 4], "big"):
            name = kind.decode("ascii")
            raise CorruptImageError(
                path,
                f"PNG is damaged: the CRC of its {name} chunk at byte {pos} does not match",
                hint="re-download or re-encode it",
            )
        if kind == b"IEND":
            return
    if whole:
        raise _png_truncated(path)


def _unidentified(path: Path) -> CorruptImageError:
    """Pillow's 'cannot identify' error, naming the file (Pillow names a BytesIO by its repr)."""
    return CorruptImageError(
        path,
        f"not a readable image (cannot identify image file '{path}')",
        hint="re-export or remove it",
    )


def _decode_source(path: Path, data: bytes | None, max_pixels: int | None) -> Path | io.BytesIO:
    """What Pillow decodes: ``data`` (the file's bytes, when the caller has read them) or
    the file. A PNG is read whole and its chunk CRCs checked first; other formats, and a
    PNG whose header says it exceeds ``max_pixels`` (refused before decoding), are left to
    Pillow's lazy reads, so a huge file meets the pixel limit before it is read."""
    if data is None:
        _check_exists(path)
        try:
            with open(path, "rb") as fh:
                head = fh.read(len(_PNG_SIGNATURE) + 16)
                if not head.startswith(_PNG_SIGNATURE):
                    return path
                # IHDR comes first: width and height are its first 8 bytes.
                w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
                if max_pixels is not None and w * h > max_pixels:
                    return path
                fh.seek(0)
                data = fh.read()
        except OSError as exc:
            raise CorruptImageError(
                path, f"cannot read file ({exc.strerror})", hint="check permissions"
            ) from exc
    if not data:
        raise CorruptImageError(
            path, "image file is empty (0 bytes)", hint="re-export or remove it"
        )
    if data.startswith(_PNG_SIGNATURE):
        _check_png_chunks(path, data)
    return io.BytesIO(data)


def _check_tail_bytes(path: Path, fmt: str, tail: bytes) -> None:
    """Truncation test: a JPEG must end with EOI, a PNG with an IEND chunk.

    The cheap test looks at the file's last bytes. Data after the end is common in good
    files (a phone's motion photo carries its video after the JPEG, encoders pad with
    zeros), so when the end is not there the file's structure is walked to find it
    (:func:`_jpeg_end`, :func:`_png_end`): only a file whose image data really stops
    short is truncated.
    """
    if fmt == "JPEG" and b"\xff\xd9" not in tail and _jpeg_end(path) is None:
        raise CorruptImageError(
            path,
            "JPEG is truncated (no end-of-image marker after its image data)",
            hint="re-download or re-encode it",
        )
    if fmt == "PNG" and b"IEND" not in tail and _png_end(path) is None:
        raise _png_truncated(path)


#: JPEG markers without a length field: SOI, EOI, TEM and the restart markers.
_JPEG_BARE = {0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)}


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(start, marker, end)`` of each marker of the JPEG ``data`` after SOI, in order, as
    libjpeg reads them: stray bytes between segments and fill bytes are skipped, marker
    segments are passed by their lengths (an EXIF thumbnail's own EOI inside APP1 with
    them), and after a scan's header (SOS) its entropy-coded data, where a 0xFF byte is
    followed by 0x00 (stuffing), a restart marker or fill bytes, runs to the next marker.
    Stops where the data does (a file cut short never reaches its EOI)."""
    n, pos = len(data), 2
    while pos + 2 <= n:
        if data[pos] != 0xFF:  # stray bytes between segments: libjpeg skips them too
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_BARE:
            yield pos, marker, pos + 2
            pos += 2
            continue
        if pos + 4 > n:
            return
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        yield pos, marker, end
        pos = end
        if marker != 0xDA:
            continue
        while True:  # the scan's entropy-coded data: up to a marker that is not a restart
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= n:
                return
            nxt = data[pos + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                pos += 2
            elif nxt == 0xFF:
                pos += 1
            else:
                break


def _jpeg_end(path: Path) -> int | None:
    """Offset just past the EOI marker that ends the image data of the JPEG at ``path``,
    or None when the data stops before it (truncated); see :func:`_jpeg_segments`. Reads
    the file."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(b"\xff\xd8"):
        return None
    return next((end for _, marker, end in _jpeg_segments(data) if marker == 0xD9), None)


def _png_end(path: Path) -> int | None:
    """Offset just past the IEND chunk of the PNG at ``path``, or None when a chunk runs
    past the end of the file first (truncated). Reads the file (only when its last bytes
    hold no IEND: data after the end, or a cut file)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return next((end + 4 for _, kind, end in _png_chunks(data) if kind == b"IEND"), None)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}
_HEAD_BYTES = 65536


def _exif_orientation(tiff: bytes) -> int:
    """Orientation tag of IFD0 in a TIFF/EXIF block (1 when absent or unreadable)."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return 1
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    for k in range(count):
        e = ifd + 2 + 12 * k
        if e + 12 > len(tiff):
            break
        if int.from_bytes(tiff[e : e + 2], order) == _EXIF_ORIENTATION:
            value = int.from_bytes(tiff[e + 8 : e + 10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def _fast_header(head: bytes) -> tuple[int, int, str, str, int] | None:
    """``(width, height, format, mode, orientation)`` of a JPEG or PNG from its first bytes.

    About 20x faster than Pillow's open for the common formats; None means "ask Pillow".
    """
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        if len(head) < 26:  # cut inside IHDR: Pillow says what is wrong
            return None
        w = int.from_bytes(head[16:20], "big")
        h = int.from_bytes(head[20:24], "big")
        depth, ctype = head[24], head[25]
        pos = 33
        while pos + 8 <= len(head):  # an eXIf chunk may rotate: let Pillow handle those
            length = int.from_bytes(head[pos : pos + 4], "big")
            kind = head[pos + 4 : pos + 8]
            if kind == b"eXIf":
                return None
            if kind == b"IDAT":
                break
            pos += 12 + length
        mode = "I;16" if depth == 16 and ctype == 0 else _PNG_MODES.get(ctype, "RGB")
        return w, h, "PNG", mode, 1
    if head[:2] != b"\xff\xd8":
        return None
    pos, orientation, n = 2, 1, len(head)
    while pos + 4 <= n:
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        length = int.from_bytes(head[pos + 2 : pos + 4], "big")
        if marker == 0xE1 and head[pos + 4 : pos + 10] == b"Exif\x00\x00":
            orientation = _exif_orientation(head[pos + 10 : pos + 2 + length])
        elif marker in _SOF:
            if pos + 10 > n:
                return None
            h = int.from_bytes(head[pos + 5 : pos + 7], "big")
            w = int.from_bytes(head[pos + 7 : pos + 9], "big")
            comps = head[pos + 9]
            return w, h, "JPEG", {1: "L", 3: "RGB", 4: "CMYK"}.get(comps, "RGB"), orientation
        elif marker == 0xDA:
            return None
        pos += 2 + length
    return None


def probe(path: str | Path, *, check_tail: bool = True, max_pixels: int | None = None) -> ImageInfo:
    """Read the size from the file header without decoding pixels.

    Raises :class:`MissingFileError`, :class:`CorruptImageError` (empty, unreadable or,
    with ``check_tail``, truncated or a PNG with a bad chunk CRC in the bytes read: its
    first 64 KiB) or :class:`ImageTooLargeError` when ``max_pixels`` is given and exceeded.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64))
            tail = fh.read()
    except FileNotFoundError as exc:
        raise MissingFileError(
            p, "image file does not exist", hint="check the path or the label's file name"
        ) from exc
    except IsADirectoryError as exc:
        raise MissingFileError(p, "expected an image file, found a folder") from exc
    if size == 0:
        raise CorruptImageError(p, "image file is empty (0 bytes)", hint="re-export or remove it")
    fast = _fast_header(head)
    if fast is not None:
        w, h, fmt, mode, orientation = fast
    else:
        with _decode_errors(p, "not a readable image"), _pillow_limit_off(), Image.open(p) as img:
            w, h = img.size
            fmt = img.format or ""
            mode = img.mode
            orientation = 1
            if fmt in ("JPEG", "TIFF", "PNG", "WEBP"):
                orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    if check_tail:
        if head.startswith(_PNG_SIGNATURE):
            # The head is in memory already: readers catch a damaged PNG header (or a
            # whole small PNG) here, and decoding checks the rest.
            _check_png_chunks(p, head, whole=size <= len(head))
        _check_tail_bytes(p, fmt, tail)
    if orientation in _TRANSPOSED_ORIENTATIONS:
        w, h = h, w
    info = ImageInfo(w, h, fmt, mode, orientation)
    if max_pixels is not None and info.pixels > max_pixels:
        raise _too_large(p, info, max_pixels)
    return info


def _too_large(path: Path, info: ImageInfo, max_pixels: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        path,
        f"image is {info.width}x{info.height} = {info.pixels / 1e6:.0f} Mpx, over the limit of "
        f"{max_pixels / 1e6:.0f} Mpx",
        hint="raise it with --max-pixels if the file is trusted, or tile it",
    )


def _top_bits(arr: NDArray[Any]) -> NDArray[np.uint8]:
    """Integer samples (any shape; all channels share one range) as uint8: the top 8 of
    the bits the data uses, as :func:`to_rgb8` describes."""
    # Not a fixed >> 8: cameras write 10-, 12- or 14-bit data into 16-bit files, which
    # would decode to 0..3, 0..15 or 0..63 and make all pictures alike (QA: dedupe dropped
    # 10 of 20 different 12-bit photos).
    # The range comes from all but the brightest 0.01 % (QA round 11: one hot pixel at
    # 65535 in a 12-bit thermal frame left the rest of it nearly black); those few
    # saturate at 255.
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        # Signed data (a DEM, a thermal frame in degrees) starts at its coldest 0.01 %,
        # not at 0: its negatives decoded black (half of a -1000..1000 ramp).
        lo = min(0, int(np.percentile(arr, 0.01, method="higher")))
        arr = arr.astype(np.int64) - lo
    top = max(0, int(np.percentile(arr, 99.99, method="lower"))) if arr.size else 0
    shift = max(0, top.bit_length() - 8)
    return np.minimum(np.maximum(arr, 0) >> shift, 255).astype(np.uint8)


def to_rgb8(img: Image.Image) -> NDArray[np.uint8]:
    """Convert any Pillow image (L, LA, P, RGBA, I;16, I, F, CMYK, ...) to ``(H, W, 3)`` uint8.

    Integer samples (I;16*, I) keep the top 8 of the bits the data uses: signed data with
    negatives is first offset by its 0.01th percentile (colder pixels clip to 0), then all
    are shifted right by ``max(0, bit_length(top) - 8)``, ``top`` being the
    99.99th percentile (so a few hot pixels do not darken the rest: they saturate at 255),
    i.e. the smallest power-of-two range holding the data maps to 0..255. 16-bit data
    (``top`` >= 32768) is shifted by 8, 12-bit data (``top`` 2048..4095) by 4, 8-bit data
    in a 16-bit file not at all; one picture stored at 12 bits and scaled to 16 decodes the same. F (float) is
    stretched from its minimum to its maximum.
    """
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
            gray = np.clip(scaled, 0, 255).astype(np.uint8)
        else:
            gray = _top_bits(arr)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        return np.asarray(img, dtype=np.uint8)[:, :, :3].copy()
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


@contextmanager
def _decode_errors(path: Path, what: str = "cannot decode image") -> Iterator[None]:
    """What Pillow raises while opening or decoding ``path``, as sodkit's errors naming the
    file, ``what`` went wrong first (:class:`ImageTooLargeError` passes through)."""
    try:
        yield
    except ImageTooLargeError:
        raise
    except UnidentifiedImageError as exc:
        raise _unidentified(path) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImageError(path, f"{what} ({exc})", hint="re-export or remove it") from exc


#: Pillow's raw modes for samples of 16 bits in colour (or gray with alpha) PNGs and
#: TIFFs, which it decodes to 8-bit RGB or RGBA keeping each sample's top byte.
_DEEP_RAWMODES = frozenset(
    f"{bands};16{order}" for bands in ("RGB", "RGBA", "RGBX", "LA") for order in "BLN"
)
#: PNG chunks that may carry an EXIF orientation: eXIf, and text (XMP or raw EXIF).
_PNG_EXIF_CHUNKS = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")
#: What :func:`_read_deep` gives: RGB pixels and the EXIF orientation still to apply.
_Deep = tuple[NDArray[np.uint8], int]


def _deep_colour(img: Image.Image) -> bool:
    """Whether ``img`` (opened, not decoded) is a PNG or TIFF with 16-bit colour samples
    (48-bit RGB, 64-bit RGBA, gray and alpha of 16 bits each), which Pillow decodes to
    their top bytes only: 12-bit data (0..4095) then spans 0..15. The raw mode Pillow
    picked from the header tells. TIFFs that keep each channel in its own plane, or
    store premultiplied alpha, stay with Pillow: OpenCV decodes the first wrongly and
    does not undo the second."""
    if img.format not in ("PNG", "TIFF") or not isinstance(img, ImageFile.ImageFile):
        return False
    if not img.tile:
        return False
    args = img.tile[0][3]  # a PNG's raw mode, or a TIFF's arguments starting with it
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return rawmode in _DEEP_RAWMODES


def _tiff_data_end(img: Image.Image) -> int:
    """Offset just past the last strip or tile of the TIFF ``img`` (0 when not a TIFF)."""
    if not isinstance(img, TiffImagePlugin.TiffImageFile):
        return 0
    tags = img.tag_v2
    offsets = tags.get(273) or tags.get(324) or ()  # StripOffsets, TileOffsets
    counts = tags.get(279) or tags.get(325) or ()  # their byte counts
    if isinstance(offsets, int):
        offsets, counts = (offsets,), (counts,)
    return max((int(o) + int(c) for o, c in zip(offsets, counts, strict=False)), default=0)


def _png_orientation(img: Image.Image, data: bytes) -> int:
    """EXIF orientation (1 = none) of the PNG ``img`` opened from ``data``, as
    ``img.getexif()`` gives it, without decoding its pixels when that can be avoided:
    Pillow decodes them first only to read the chunks that follow them, so only when
    one of those may hold an orientation is that done here."""
    after = itertools.dropwhile(lambda chunk: chunk[1] != b"IDAT", _png_chunks(data))
    if any(kind in _PNG_EXIF_CHUNKS for _, kind, _ in after):
        exif = img.getexif()
    else:  # the chunks Pillow read on opening are all there is
        exif = Image.Image.getexif(img)  # PngImageFile.getexif without its decode
    return int(exif.get(_EXIF_ORIENTATION, 1) or 1)


def _read_deep(path: Path, img: Image.Image, source: Path | io.BytesIO) -> _Deep:
    """Decode the 16-bit colour samples of ``img`` (see :func:`_deep_colour`) with
    OpenCV, scaled to 8 bits as :func:`to_rgb8` scales 16-bit gray (one range for all
    three channels; alpha dropped). Returns ``(H, W, 3)`` uint8 RGB the size of ``img``
    and the EXIF orientation still to apply: a TIFF comes upright (OpenCV turns it, as
    Pillow does when decoding one, so 1), a PNG as stored (:func:`_png_orientation`).
    Call it inside :func:`_decode_errors`: a file OpenCV cannot decode is decoded by
    Pillow for its error."""
    import cv2  # here: most readers of this module never need OpenCV

    if isinstance(source, io.BytesIO):  # a PNG, or the bytes the caller had read
        data = source.getvalue()
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorruptImageError(
                path, f"cannot read file ({exc.strerror})", hint="check permissions"
            ) from exc
    end = _tiff_data_end(img)
    if end > len(data):  # said here, not in OpenCV's lines on stderr
        raise CorruptImageError(
            path,
            f"TIFF is truncated (its image data ends at byte {end}, the file at {len(data)})",
            hint="re-download or re-encode it",
        )
    # IMREAD_UNCHANGED: 16 bits and every channel kept, and a PNG's EXIF orientation
    # left to the caller, as for any PNG, so it is applied once.
    # libtiff's warnings (GeoTIFF tags it does not know, on every aerial image) would
    # reach the terminal once per file: errors still do, and a failure is said below.
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(min(level, logging.LOG_LEVEL_ERROR))
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    finally:
        logging.setLogLevel(level)
    if (
        bgr is None
        or bgr.dtype != np.uint16
        or bgr.ndim != 3
        or bgr.shape[2] not in (3, 4)
        or bgr.shape[:2] != (img.height, img.width)
    ):
        img.load()  # a damaged file: Pillow says what is wrong
        raise CorruptImageError(
            path,
            f"OpenCV cannot decode this {img.format} of 16-bit {img.mode} samples "
            "(Pillow reads only their top bytes)",
            hint="re-encode it, as a 16-bit PNG or as 8-bit",
        )
    orientation = _png_orientation(img, data) if img.format == "PNG" else 1
    return _top_bits(bgr[:, :, 2::-1]), orientation


@contextmanager
def _decoded(
    path: Path, max_pixels: int | None, data: bytes | None = None
) -> Iterator[tuple[Image.Image, _Deep | None]]:
    """The image at ``path`` (or its bytes ``data``, read already) opened by Pillow and
    decoded in full, for the block: ``(img, None)`` with ``img`` loaded, or for 16-bit
    colour samples ``(img, deep)``, ``deep`` from :func:`_read_deep` and ``img`` not
    loaded. What fails in it, the block included, is a :class:`CorruptImageError` naming
    the file (:class:`ImageTooLargeError` above ``max_pixels``, checked before
    decoding)."""
    source = _decode_source(path, data, max_pixels)
    with _decode_errors(path), _pillow_limit_off(), Image.open(source) as img:
        info = ImageInfo(img.size[0], img.size[1], img.format or "", img.mode)
        if max_pixels is not None and info.pixels > max_pixels:
            raise _too_large(path, info, max_pixels)
        deep = _read_deep(path, img, source) if _deep_colour(img) else None
        if deep is None:
            img.load()
        yield img, deep


def read_image(
    path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, exif: bool = True
) -> NDArray[np.uint8]:
    """Decode ``path`` to ``(H, W, 3)`` uint8 RGB, EXIF orientation applied.

    Raises :class:`CorruptImageError` for empty, truncated, damaged (a PNG chunk CRC) or
    unreadable files and :class:`ImageTooLargeError` above ``max_pixels`` (checked before
    decoding).
    """
    with _decoded(Path(path), max_pixels) as (img, deep):
        if deep is not None:
            pixels, orientation = deep
            return _oriented(pixels, orientation if exif else 1)
        # exif_transpose copies even when there is nothing to do: only call it when needed.
        rotated = exif and int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1) != 1
        out = ImageOps.exif_transpose(img) if rotated else img
        return to_rgb8(out)


#: libjpeg's warnings that mean a JPEG's pixel data is damaged: cut, scrambled or zeroed
#: data, a scan missing. libjpeg goes on and fills what it could not decode with gray or
#: garbage, and Pillow drops its warnings, so such a file decodes "fine" (QA round 5: 8 of
#: 8 damaged Roboflow frames passed). Other warnings (an unknown JFIF revision) are harmless.
_JPEG_DAMAGE = (
    "Corrupt JPEG data",
    "Premature end of JPEG file",
    "Inconsistent progression sequence",
)


#: "Corrupt JPEG data: N extraneous bytes before marker 0xXX": stray bytes before a marker
#: that is not a restart, with every block decoded. A few are common in intact files (some
#: encoders pad before the end or between segments), so up to this many are not damage; cut
#: or zeroed data leaves more (QA: 127 to 19,610). Before a restart marker they mean the
#: data of an interval did not decode as it should.
_EXTRANEOUS = re.compile(r"(\d+) extraneous bytes before marker 0x([0-9a-f]{2})")
_PADDING_BYTES = 32


def _libjpeg_verdict(text: str) -> tuple[str | None, bool]:
    """``(damage, other)`` from what libjpeg wrote: its first damage warning (or None) and
    whether some other, harmless warning was there."""
    other = False
    for line in (raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        stray = _EXTRANEOUS.search(line)
        if (
            stray is not None
            and int(stray.group(1)) <= _PADDING_BYTES
            and not 0xD0 <= int(stray.group(2), 16) <= 0xD7
        ):
            other = True  # padding: the image decoded whole
            continue
        if line.startswith(_JPEG_DAMAGE):
            return line, other
        other = True
    return None, other


def _without_app_segments(data: bytes) -> bytes | None:
    """The JPEG without its APPn and COM segments before the first scan (they do not take
    part in decoding its blocks), or None when it has none or no scan."""
    kept, dropped = [data[:2]], False
    for pos, marker, end in _jpeg_segments(data):
        if marker == 0xDA:
            return b"".join([*kept, data[pos:]]) if dropped else None
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            dropped = True
        else:
            kept.append(data[pos:end])
    return None


@contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """Collect what is written to file descriptor 2 in the block (C libraries write there,
    not to ``sys.stderr``); the list holds the text once the block ends. Only for a process
    where nothing else writes to it meanwhile (a pool worker: see :func:`verify_image`)."""
    got: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield got
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            got.append(buf.read().decode("utf-8", "replace"))


def _jpeg_damage(data: bytes) -> str | None:
    """libjpeg's first warning about damaged data in a JPEG, or None. The JPEG is decoded by
    OpenCV at 1/8 scale: every coefficient is still entropy-decoded (which is where damage
    shows), at about an eighth of a full decode's cost."""
    import cv2  # here: most readers of this module never need OpenCV

    def decode(buf: bytes) -> tuple[bool, str]:
        with _stderr_captured() as text:
            img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        return img is not None, "".join(text)

    decoded, text = decode(data)
    damage, other = _libjpeg_verdict(text)
    if damage is None and other:
        # libjpeg prints only its first warning: a harmless one (an unknown JFIF revision)
        # would hide damage behind it. Without the APP segments it came from, look again.
        bare = _without_app_segments(data)
        if bare is not None:
            damage = _libjpeg_verdict(decode(bare)[1])[0]
    if damage is not None:
        return damage
    return None if decoded else "libjpeg cannot decode it"


def verify_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Decode every byte of ``path`` and keep nothing, for ``--verify``: raises what
    :func:`read_image` would (a damaged PNG chunk anywhere, ...) and, for a JPEG, what
    libjpeg only warns about (:data:`_JPEG_DAMAGE`). Captures file descriptor 2 while
    OpenCV decodes a JPEG: call it in a worker process (:func:`curate.io.verify_images`
    does), not beside threads that write to stderr."""
    p = Path(path)
    _check_exists(p)
    try:
        data = p.read_bytes()  # once, for both decoders
    except OSError as exc:
        raise CorruptImageError(
            p, f"cannot read file ({exc.strerror})", hint="check permissions"
        ) from exc
    with _decoded(p, max_pixels, data) as (img, _):
        fmt = img.format
    if fmt in ("JPEG", "MPO"):  # MPO: a JPEG with more pictures (phones' depth or gain maps)
        problem = _jpeg_damage(data)
        if problem is not None:
            raise CorruptImageError(
                p, f"JPEG data is damaged ({problem})", hint="re-download or re-encode it"
            )


_BOX_MODES = ("RGB", "L", "RGBA", "LA")
#: EXIF orientations that show the stored image's last column first (x reversed) and
#: its last row first (y reversed).
_REVERSES_X = {2, 3, 7, 8}
_REVERSES_Y = {3, 4, 6, 7}


def draft_factor(size: tuple[int, int], target: tuple[int, int]) -> int:
    """The DCT scale divisor (1, 2, 4 or 8) a JPEG decoder uses to reach at least ``target``."""
    scale = min(size[0] // max(1, target[0]), size[1] // max(1, target[1]))
    return next(f for f in (8, 4, 2, 1) if scale >= f)


def _whole_box(size: tuple[int, int], f: int, orientation: int) -> tuple[int, int, int, int]:
    """The stored pixels ``(left, top, right, bottom)`` that the whole pixels of a reduction
    by ``f`` cover, on a grid that starts at the DISPLAYED top-left corner: an axis that
    ``orientation`` reverses leaves its remainder (``side % f``) at its stored start, which
    is shown last, so every orientation of one picture keeps the same part of it."""
    w, h = size
    left = w % f if orientation in _REVERSES_X else 0
    top = h % f if orientation in _REVERSES_Y else 0
    return left, top, left + w // f * f, top + h // f * f


def read_reduced(
    path: str | Path,
    max_side: int,
    *,
    gray: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    data: bytes | None = None,
) -> NDArray[np.uint8]:
    """Decode at reduced size: the longer side becomes about ``max_side`` (never upscaled).

    JPEGs are decoded with DCT scaling (``Image.draft``), which skips most of the work
    of a full decode; other formats are box-reduced by the same power of two
    (:func:`draft_factor`), so both give the same result for the same picture. Only whole
    reduced pixels are kept, on a grid that starts at the displayed top-left corner (see
    :func:`_whole_box`), so each EXIF orientation of a picture gets the thumbnail of its
    upright copy; a JPEG whose DCT grid does not start there (the orientation shows the
    stored end of a side that is no multiple of the scale first) is decoded at the largest
    smaller scale whose grid does, at worst in full, and box-reduced the rest of the way.
    The result is then area-resized to the exact size. Returns
    ``(h, w, 3)`` uint8 RGB or, with ``gray``, ``(h, w)`` uint8 luma: a JPEG's own Y channel
    (decoded alone), else ITU-R 601 luma of the RGB as OpenCV rounds it (equal to within
    about 1 level). ``data``: the file's bytes when
    the caller has already read them (``path`` then only names the image in errors).
    Raises the errors of :func:`read_image`.
    """
    p = Path(path)
    source = _decode_source(p, data, max_pixels)
    with _decode_errors(p), _pillow_limit_off(), Image.open(source) as src:
        w, h = src.size
        if max_pixels is not None and w * h > max_pixels:
            raise _too_large(p, ImageInfo(w, h, src.format or "", src.mode), max_pixels)
        draft = (max(1, w * max_side // max(w, h)), max(1, h * max_side // max(w, h)))
        reduce = max(w, h) > max_side
        deep = _read_deep(p, src, source) if _deep_colour(src) else None
        # Read before decoding: where a JPEG's DCT grid must start depends on it.
        if deep is not None:
            orientation = deep[1]
        else:
            orientation = int(src.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        f = draft_factor((w, h), draft) if reduce else 1
        box = _whole_box((w, h), f, orientation)
        g = 1  # the scale the decoder reduces by
        if src.format == "JPEG":
            # libjpeg's DCT grid starts at the stored top-left: where the box does not,
            # decode at the largest scale whose grid it starts on. Orientation 1, and
            # sides that are multiples of f, decode at f as the draft target asks.
            g = f
            while box[0] % g or box[1] % g:
                g //= 2
            got = src.draft("L" if gray else "RGB", draft if g == f else (w // g, h // g))
            g = 1 if got is None else round(w / got[1][2])  # the scale the decoder took
        img: Image.Image = src
        if deep is None:
            src.load()
        else:
            img = Image.fromarray(deep[0])
        size = None
        if reduce:
            # A side that is no multiple of f ends in a pixel made of fewer source
            # pixels: keep whole pixels only, so the picture is scaled by one factor.
            whole = (box[0] // g, box[1] // g, box[2] // g, box[3] // g)
            if f > g:
                if img.mode not in _BOX_MODES:
                    img = Image.fromarray(to_rgb8(img))
                # Other formats (and a JPEG decoded at a smaller scale) get the power-of-
                # two box reduction a JPEG decoder makes, so one picture gets the same
                # thumbnail whether it is stored as JPEG or not (SSIM 0.999 instead of
                # 0.91-0.98 between the two on COCO photos).
                img = img.reduce(f // g, box=whole)
            elif whole != (0, 0, *img.size):
                img = img.crop(whole)
            scale = max_side / max(w, h)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if gray and img.mode == "L":
            out = np.array(img, dtype=np.uint8)
        else:
            out = to_rgb8(img)
    import cv2  # here: most readers of this module never need OpenCV

    if size is not None and size != (out.shape[1], out.shape[0]):
        # Area averaging (each output pixel the mean of the source area it covers), not
        # Pillow's BOX filter: at factors that are no integer that one averages 1, 2 or 3
        # source pixels by turns, and a photo and its half-size copy then scored SSIM
        # 0.92-0.94 at 128 px instead of 0.99 (QA, COCO photos of 500x375).
        out = np.asarray(cv2.resize(out, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    if gray and out.ndim == 3:
        # As dedupe's thumbnails round it, and ten times faster than a float product.
        out = np.asarray(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    return _oriented(out, orientation)


def _oriented(a: NDArray[np.uint8], orientation: int) -> NDArray[np.uint8]:
    """``a`` (stored pixels) turned upright as EXIF ``orientation`` says (as
    ``ImageOps.exif_transpose`` does; 1 or an unknown value: as stored)."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = np.rot90(a, 2).swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    else:
        return a
    return np.ascontiguousarray(a)


#: The JPEG standard's luminance quantization table (Annex K), which libjpeg scales by quality.
_STD_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
     14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
     18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    np.int64,
)  # fmt: skip


def _luma_table_sums() -> NDArray[np.int64]:
    """Sum of libjpeg's luminance table at each quality 1..100 (decreasing)."""
    q = np.arange(1, 101)
    scale = np.where(q < 50, 5000 // q, 200 - 2 * q)
    tables = np.clip((_STD_LUMA[None, :] * scale[:, None] + 50) // 100, 1, 255)
    return tables.sum(axis=1)


_LUMA_SUMS = _luma_table_sums()


def jpeg_quality(data: bytes) -> int | None:
    """Estimated quality (1-100, libjpeg's scale) of JPEG bytes, from the coarseness of
    their luminance quantization table; None when ``data`` is not a JPEG or has no table.

    The estimate is the libjpeg quality whose scaled standard table has the nearest sum,
    so an encoder with its own tables (cameras) gets the quality of equal coarseness.
    Only the header is read (the markers before the scan).
    """
    if data[:2] != b"\xff\xd8":
        return None
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: no table before it
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        seg = data[pos + 4 : pos + 2 + length]
        if marker == 0xDB:
            k = 0
            while k < len(seg):
                precision, table_id = seg[k] >> 4, seg[k] & 15
                size = 128 if precision else 64
                body = seg[k + 1 : k + 1 + size]
                if len(body) < size:
                    return None
                if table_id == 0:
                    dtype = ">u2" if precision else "u1"
                    total = int(np.frombuffer(body, dtype).astype(np.int64).sum())
                    return int(np.argmin(np.abs(_LUMA_SUMS - total))) + 1
                k += 1 + size
        pos += 2 + length
    return None


def write_image(path: str | Path, image: NDArray[np.uint8], *, quality: int = 95) -> None:
    """Encode ``(H, W, 3)`` RGB (or ``(H, W)`` gray) uint8 to ``path`` by its extension."""
    p = Path(path)
    img = Image.fromarray(image)
    ext = p.suffix.lower()
    tmp = side_name(p, "tmp")
    fmt = {
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".png": "PNG",
        ".bmp": "BMP",
        ".webp": "WEBP",
        ".tif": "TIFF",
        ".tiff": "TIFF",
    }.get(ext)
    if fmt is None:
        raise ValueError(f"unsupported image extension {ext!r} for {p}")
    params: dict[str, Any] = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    try:
        img.save(tmp, format=fmt, **params)
        os.replace(tmp, p)
    finally:  # gone after the rename; a full disk or Ctrl+C leaves no half-written file
        tmp.unlink(missing_ok=True)
