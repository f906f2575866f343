"""Per-image signatures: computed once from a reduced-size decode, cached by file content.

A :class:`Signature` holds what every later step needs, so no step decodes an image twice:

- ``content_hash``: BLAKE2b-128 of the file bytes (exact copies; the cache key);
- ``width``/``height``: the displayed size (EXIF orientation applied);
- ``thumb``: ``(h, w)`` uint8 grayscale (ITU-R 601 luma) with the longer side ``size``
  (default 128, the SSIM working resolution; never upscaled), decoded by
  :func:`curate.core.imageio.read_reduced` (JPEG DCT scaling, other formats box-reduced
  by the same power of two, then box resize: one picture gets one thumbnail whatever
  its format);
- ``hist``: ``(256,)`` float32 HSV colour histogram (see :mod:`curate.dedupe.hist`);
- ``feature``: ``(2 * side**2,)`` float16 structure feature for the candidate index
  (see :func:`curate.dedupe.index.structure_feature`);
- ``jpeg``: whether the file is a JPEG (its reduced decode takes another path);
- ``quality``: the JPEG quality estimated from the quantization table (100 for other
  formats), which breaks keep-policy ties in favour of the less compressed copy.

Sharpness (``--keep sharpest``) is not part of a signature: the thumbnail is too small to
show it (a downscaled copy scores as high as its original there, and a blur of a few
native pixels barely changes it). :func:`sharpness` measures it at :data:`SHARPNESS_SIDE`
from a decode of its own, and only the runs that ask for it pay for it
(:func:`compute_sharpness`).

The cache is one SQLite file per parameter set under the cache folder (default
``$SODKIT_CACHE_DIR/signatures``, else ``$XDG_CACHE_HOME/sodkit/signatures``, else
``~/.cache/sodkit/signatures``), keyed by content hash, so renamed or copied files hit it
and an edited file misses it. Values are plain bytes (no pickle). Full-decode pixel hashes
(exact copies with different bytes), sharpness values and the object-region crops of
``--roi objects`` (keyed by content, boxes and decode size: :func:`crops_key`) are cached
in their own tables.

New records are stored while a pass runs, one transaction per :data:`STORE_ROWS` rows or
:data:`STORE_SECONDS` (whichever comes first), and what is left when the pass ends, even
when a Ctrl+C or an error ends it: a stopped run resumes where it stopped, a killed one
from its last batch.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

import cv2
import numpy as np
from numpy.typing import NDArray

from curate.core.errors import CorruptImageError, ItemError, ItemFailure, MissingFileError
from curate.core.imageio import DEFAULT_MAX_PIXELS, jpeg_quality, read_image, read_reduced
from curate.core.parallel import Executor, SerialExecutor
from curate.core.progress import NullProgress, Progress
from curate.dedupe.hist import NUM_BINS, hsv_histogram
from curate.dedupe.index import FEATURE_SIDE, structure_feature
from curate.dedupe.ssim import to_gray

#: 5: thumbnails area-averaged from whole pixels (read_reduced); 6: PNGs whose chunk CRCs
#: fail are unreadable (earlier versions cached signatures of damaged PNGs); 7: samples
#: wider than 8 bits scaled by the bits the data uses, and EXIF-oriented images reduced on
#: a grid from the displayed top-left (both changed thumbnails); 8: colour PNGs and TIFFs
#: of 16 bits per sample decoded in full, not as their top bytes, and signed samples
#: offset by their coldest, not clipped at 0.
SIGNATURE_VERSION = 8
CACHE_ENV = "SODKIT_CACHE_DIR"
#: Longer side (px) at which :func:`sharpness` compares images.
SHARPNESS_SIDE = 512
#: Names the sharpness measure in its cache: change it when :func:`sharpness` changes
#: (v5: read_reduced's sample-depth and orientation changes of signature version 7; v6:
#: 16-bit colour decoded in full, signature version 8).
SHARPNESS_TAG = f"sharpness-v6-s{SHARPNESS_SIDE}"
#: Names the pixel hashes' cache file (v2: samples wider than 8 bits decode differently;
#: v3: so does 16-bit colour).
PIXELS_TAG = "pixels-v3"
_HEADER = struct.Struct("<4sHIIHHIB")
_MAGIC = b"SDKS"
_V = TypeVar("_V")
#: New cache records are stored in batches of this many rows, or of what came in this many
#: seconds, whichever is fewer (see :class:`StoreBatches`).
STORE_ROWS = 256
STORE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class SignatureParams:
    """How signatures are computed: working size (longer side, px) and feature grid side."""

    size: int = 128
    feature_side: int = FEATURE_SIDE
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    @property
    def tag(self) -> str:
        """Names the parameter set in cache keys: results differ when any of these differ."""
        return f"v{SIGNATURE_VERSION}-s{self.size}-f{self.feature_side}"


@dataclass(slots=True)
class Signature:
    """What dedupe knows about one image (see the module docstring)."""

    content_hash: str
    width: int
    height: int
    thumb: NDArray[np.uint8]
    hist: NDArray[np.float32]
    feature: NDArray[np.float16]
    jpeg: bool
    #: Estimated JPEG quality 1-100 (:func:`curate.core.imageio.jpeg_quality`); 100 for
    #: other formats and JPEGs without a readable table.
    quality: int = 100

    def to_bytes(self) -> bytes:
        th, tw = self.thumb.shape
        head = _HEADER.pack(
            _MAGIC,
            SIGNATURE_VERSION,
            self.width,
            self.height,
            th,
            tw,
            len(self.feature) | (int(self.jpeg) << 31),
            self.quality,
        )
        return b"".join(
            (
                head,
                np.ascontiguousarray(self.thumb, dtype=np.uint8).tobytes(),
                np.asarray(self.hist, dtype="<f4").tobytes(),
                np.asarray(self.feature, dtype="<f2").tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, content_hash: str, data: bytes) -> Signature:
        """Rebuild from :meth:`to_bytes`; raises ``ValueError`` for bytes it did not write."""
        if len(data) < _HEADER.size:
            raise ValueError("signature record too short")
        magic, version, width, height, th, tw, nfeat, quality = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != SIGNATURE_VERSION:
            raise ValueError("not a signature record of this version")
        jpeg = bool(nfeat >> 31)
        nfeat &= 0x7FFFFFFF
        off = _HEADER.size
        need = off + th * tw + 4 * NUM_BINS + 2 * nfeat
        if len(data) != need:
            raise ValueError("signature record has the wrong length")
        thumb = np.frombuffer(data, np.uint8, th * tw, off).reshape(th, tw)
        off += th * tw
        hist = np.frombuffer(data, "<f4", NUM_BINS, off).astype(np.float32)
        off += 4 * NUM_BINS
        feature = np.frombuffer(data, "<f2", nfeat, off).astype(np.float16)
        return cls(content_hash, width, height, thumb, hist, feature, jpeg, quality)


def quality_step(quality: int) -> int:
    """How heavily a copy was compressed, from its estimated JPEG quality (other formats
    count as 100): 0 below 40, 1 below 70, else 2. Keep policies break ties with it: a
    quality-50 re-encode ranks below its quality-75 original, while copies at 70 and above
    (PIL's default is 75, OpenCV's 95) stay in dataset order, since a finer rank would
    prefer an edited copy saved at 95 to its original at 75."""
    return 0 if quality < 40 else 1 if quality < 70 else 2


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise MissingFileError(path, "image file does not exist", hint="check the path") from exc
    except OSError as exc:
        raise CorruptImageError(
            path, f"cannot read file ({exc})", hint="check permissions"
        ) from exc


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_file(path: str | Path) -> str:
    """BLAKE2b-128 hex digest of a file's bytes; :class:`MissingFileError` if it is absent."""
    return _digest(_read_bytes(Path(path)))


def compute_signature(
    path: str | Path,
    content_hash: str,
    params: SignatureParams,
    size: tuple[int, int] | None = None,
    data: bytes | None = None,
) -> Signature:
    """Decode ``path`` at reduced size and summarise it (raises :class:`ItemError` subclasses).

    ``size``: the displayed ``(width, height)`` when the caller knows it (a dataset's
    reader does); otherwise it is read from the header. ``data``: the file's bytes when
    the caller has read them already (the file is then not opened again).
    """
    p = Path(path)
    if data is None:
        data = _read_bytes(p)
    rgb = read_reduced(p, params.size, max_pixels=params.max_pixels, data=data)
    h, w = rgb.shape[:2]
    if size is None:
        size = (w, h) if max(w, h) < params.size else _header_size(p)
    gray = to_gray(rgb)
    return Signature(
        content_hash=content_hash,
        width=int(size[0]),
        height=int(size[1]),
        thumb=gray,
        hist=hsv_histogram(rgb),
        feature=structure_feature(gray, params.feature_side),
        jpeg=data[:2] == b"\xff\xd8",
        quality=jpeg_quality(data) or 100,
    )


def _header_size(path: Path) -> tuple[int, int]:
    from curate.core.imageio import probe

    info = probe(path, check_tail=False)
    return info.width, info.height


def sharpness(
    path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, data: bytes | None = None
) -> float:
    """Variance of the Laplacian of the grayscale image with its longer side at
    :data:`SHARPNESS_SIDE` px, divided by the variance of the image itself (higher:
    sharper; raises :class:`ItemError` subclasses).

    The division makes it blind to contrast: the Laplacian's variance grows with the
    square of a gain, so a copy with its contrast raised by 20 % scored 1.26-1.43x its
    original and won ``--keep sharpest`` in every cluster that held one (QA round 8, COCO
    and Roboflow photos); divided, such copies score 0.93-1.24x (more where tones clip),
    and brightness edits 0.88-1.29x.

    Every image is measured at that one scale: larger ones are reduced by
    :func:`curate.core.imageio.read_reduced` (JPEG DCT scaling, EXIF orientation applied),
    smaller ones enlarged (bilinear). A copy downscaled below that side lacks its
    original's finest detail and scores several times lower (COCO photos at 640 px: their
    half-size copies 5-12x lower). A 3 px motion blur lowers the score by about a third on
    a 1024 px frame, by half on a 426 px one (at 128 px: by 1-5 %). Copies both larger
    than that side do not score alike: the reduction blurs by its ratio (a 1920 px photo's
    copies at 1600, 1200, 1024 and 800 px: 0.84, 0.68, 1.23 and 0.84x; exact halvings
    highest).
    """
    gray = read_reduced(path, SHARPNESS_SIDE, gray=True, max_pixels=max_pixels, data=data)
    h, w = gray.shape
    if max(h, w) < SHARPNESS_SIDE:
        scale = SHARPNESS_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR)  # type: ignore[assignment]
    contrast = float(cv2.meanStdDev(gray)[1][0, 0]) ** 2
    return float(cv2.Laplacian(gray, cv2.CV_32F).var()) / max(contrast, 1.0)


def pixel_hash(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> str:
    """BLAKE2b-128 of the fully decoded RGB pixels and their shape (exact copies re-encoded)."""
    rgb = read_image(path, max_pixels=max_pixels)
    h = hashlib.blake2b(digest_size=16)
    h.update(np.array(rgb.shape, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


# -- worker tasks (module level: picklable for process pools and Dask) -------------------


#: Read-only cache connections of this worker process, by database path.
_WORKER_CACHE: dict[str, sqlite3.Connection] = {}


def _worker_lookup(db: str | None, content_hash: str) -> bytes | None:
    """A cached signature record, read by the worker itself (None on any miss or problem).

    ``db``: the ``file:`` URI from :meth:`SignatureCache.db_path`. On a Dask worker of
    another machine the path usually does not exist: that is a miss.
    """
    if db is None:
        return None
    conn = _WORKER_CACHE.get(db)
    if conn is None:
        try:
            conn = sqlite3.connect(db, uri=True, timeout=30)
        except (sqlite3.Error, ValueError):
            return None
        _WORKER_CACHE[db] = conn
    try:
        row = conn.execute("SELECT data FROM sig WHERE hash = ?", (content_hash,)).fetchone()
    except sqlite3.Error:
        return None
    return bytes(row[0]) if row else None


@dataclass(frozen=True, slots=True)
class SignatureJob:
    """One image for :func:`_signature_task`; ``db``: the cache to look in first (a ``file:``
    URI from :meth:`SignatureCache.db_path`, see :func:`_worker_lookup`)."""

    path: str
    params: SignatureParams
    size: tuple[int, int] | None
    db: str | None


def _signature_task(job: SignatureJob) -> tuple[str, bytes, bool] | ItemFailure:
    """Read the file once: hash its bytes, take the cached signature or decode those bytes.

    Returns ``(content_hash, signature record, from_cache)``.
    """
    p = Path(job.path)
    try:
        data = _read_bytes(p)
        content_hash = _digest(data)
        cached = _worker_lookup(job.db, content_hash)
        if cached is not None:
            return content_hash, cached, True
        sig = compute_signature(p, content_hash, job.params, job.size, data=data)
        return content_hash, sig.to_bytes(), False
    except ItemError as err:
        return ItemFailure.of(err)


def _pixel_task(job: tuple[str, int | None]) -> str | ItemFailure:
    path, max_pixels = job
    try:
        return pixel_hash(path, max_pixels)
    except ItemError as err:
        return ItemFailure.of(err)


def _sharpness_task(job: tuple[str, int | None]) -> float | ItemFailure:
    path, max_pixels = job
    try:
        return sharpness(path, max_pixels=max_pixels)
    except ItemError as err:
        return ItemFailure.of(err)


# -- cache --------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$SODKIT_CACHE_DIR/signatures``, else the XDG cache, else ``~/.cache/sodkit/signatures``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "signatures"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sodkit" / "signatures"


def _sqlite_code(exc: sqlite3.Error) -> int:
    """The primary SQLite result code of an error (``SQLITE_READONLY``...), 0 if unknown."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _file_id(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of a file, None when absent: tells a file from its replacement."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class SignatureCache:
    """Signatures, pixel hashes and object-region crops, one SQLite file per parameter set.

    Nothing is opened until the first lookup; the folder is created then. Caching only
    ever saves time, so nothing here is fatal; what went wrong is said in :attr:`problem`:

    * a folder that cannot be made or used: the run goes on without the cache;
    * files that can be read but not written (a shared, read-only team cache): they are
      opened read-only (``?mode=ro``; with ``immutable=1`` when there is no ``-wal`` file,
      as SQLite cannot otherwise read a WAL database in a folder it cannot write), their
      records are used and new ones are not stored;
    * a file that is not a database, or is damaged: it is moved aside with its ``-wal``
      and ``-shm`` files (``NAME.corrupt-YYYYmmdd-HHMMSS``) and a fresh one is made; when it
      cannot be moved, that file is left out and :attr:`problem` names it for deletion.
      Damage that shows only once the file is in use (zeroed pages: its header opens and
      most records read, a write or a lookup fails) is handled the same way from then on:
      the failed write goes to the fresh file, and :func:`extract_signatures` stores there
      again every signature it read from the damaged one (:meth:`replaced`).

    New signatures are written by a background thread (the run goes on meanwhile); every
    other call, and :meth:`close`, waits for it first.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._notes: dict[str, str] = {}
        self._disabled = False
        self._conns: dict[str, sqlite3.Connection | None] = {}
        self._read_only: dict[str, str] = {}  # tag -> URI its file was opened with
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._ids: dict[str, tuple[int, int] | None] = {}  # tag -> its file when opened
        self._replaced: set[str] = set()  # tags whose file was found damaged in use

    @property
    def problem(self) -> str | None:
        """What to warn about (each thing once), or None when the cache is fine."""
        return "; ".join(self._notes.values()) or None

    def _note(self, key: str, message: str) -> None:
        self._notes.setdefault(key, message)

    def _give_up(self, message: str) -> None:
        self._disabled = True
        self._note("off", f"{message}; running without it")

    def _file(self, tag: str) -> Path:
        return self.folder / f"signatures-{tag}.sqlite"

    def _wait(self) -> None:
        pending, self._pending = self._pending, []
        for fut in pending:
            fut.result()

    def _conn(self, tag: str) -> sqlite3.Connection | None:
        self._wait()
        if self._disabled:
            return None
        if tag not in self._conns:
            self._conns[tag] = self._open(tag)
        return self._conns[tag]

    def _open(self, tag: str) -> sqlite3.Connection | None:
        path = self._file(tag)
        seen = _file_id(path)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            conn = self._open_writable(path)
            self._ids[tag] = _file_id(path)
            return conn
        except sqlite3.Error as exc:
            code = _sqlite_code(exc)
            if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                return self._replace_damaged(path, exc, seen)
            if code == sqlite3.SQLITE_READONLY or (
                code == sqlite3.SQLITE_CANTOPEN and not os.access(self.folder, os.W_OK)
            ):
                return self._open_read_only(tag, path, exc)
            self._give_up(f"signature cache at '{self.folder}' is not usable ({exc})")
        except OSError as exc:
            self._give_up(f"signature cache at '{self.folder}' is not usable ({exc})")
        return None

    @staticmethod
    def _open_writable(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # A cache may lose its last writes in a power cut; it must not cost an fsync each.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS sig (hash TEXT PRIMARY KEY, data BLOB)")
            conn.execute("CREATE TABLE IF NOT EXISTS pix (hash TEXT PRIMARY KEY, pixels TEXT)")
            conn.execute("CREATE TABLE IF NOT EXISTS roi (hash TEXT PRIMARY KEY, data BLOB)")
            conn.execute("CREATE TABLE IF NOT EXISTS sharp (hash TEXT PRIMARY KEY, value REAL)")
            conn.commit()
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _open_read_only(
        self, tag: str, path: Path, why: sqlite3.Error
    ) -> sqlite3.Connection | None:
        if not path.is_file():
            # Nothing stored for these parameters (QA round 10: the note said the
            # signatures stored there were used).
            self._note(
                "read-only",
                f"signature cache at '{self.folder}' is read-only ({why}) and holds no "
                "signatures for these settings: none are stored",
            )
            return None
        self._note_read_only(why)
        modes = ["mode=ro"]
        if not path.with_name(f"{path.name}-wal").exists():  # no writer has it open
            modes.append("mode=ro&immutable=1")
        for mode in modes:
            uri = f"{path.resolve().as_uri()}?{mode}"
            try:
                conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
            except sqlite3.Error:
                continue
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error as exc:
                conn.close()
                if _sqlite_code(exc) in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                    self._note_damaged(path, exc, " and the cache is read-only")
                    return None
                continue
            self._read_only[tag] = uri
            return conn
        return None

    def _ro_uri(self, tag: str) -> str:
        """The read-only ``file:`` URI of the cache file of ``tag``."""
        return f"{self._file(tag).resolve().as_uri()}?mode=ro"

    def _note_read_only(self, why: sqlite3.Error) -> None:
        self._note(
            "read-only",
            f"signature cache at '{self.folder}' is read-only ({why}): the signatures stored "
            "there are used, new ones are not stored",
        )

    def _note_damaged(self, path: Path, exc: sqlite3.Error, kept: str = "") -> None:
        self._note(
            f"damaged {path.name}",
            f"signature cache file '{path}' is not a usable database ({exc}){kept}; "
            "running without it: delete it to rebuild it",
        )

    def _note_unmovable(self, path: Path, exc: sqlite3.Error, move_exc: OSError) -> None:
        self._note_damaged(
            path, exc, f" and cannot be moved aside ({move_exc.strerror or move_exc})"
        )

    def _damaged_in_use(self, tag: str, conn: sqlite3.Connection, exc: sqlite3.Error) -> None:
        """A file that opened as a database turned out damaged: closed, moved aside and
        replaced by a fresh one for the rest of the run (see the class docstring)."""
        conn.close()
        self._conns[tag] = None
        path = self._file(tag)
        if tag in self._read_only:
            self._note_damaged(path, exc, " and the cache is read-only")
            return
        fresh = self._replace_damaged(path, exc, self._ids.get(tag), in_use=True)
        self._conns[tag] = fresh
        if fresh is not None:
            self._ids[tag] = _file_id(path)
            self._replaced.add(tag)

    def replaced(self, tag: str) -> bool:
        """Whether the file of ``tag`` was found damaged in use during this run and a
        fresh one took its place (what was read from the old one is not in the new one)."""
        self._wait()
        return tag in self._replaced

    def _replace_damaged(
        self,
        path: Path,
        exc: sqlite3.Error,
        seen: tuple[int, int] | None,
        *,
        in_use: bool = False,
    ) -> sqlite3.Connection | None:
        """Move the damaged file aside and start a fresh one; ``seen``: the file's
        :func:`_file_id` when it was opened (another run may have replaced it since);
        ``in_use``: records were read from it before the damage showed."""
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            if _file_id(path) != seen:
                raise FileNotFoundError(path)
            os.replace(path, aside)
        except FileNotFoundError:
            pass  # another run moved it aside first (and may have started afresh)
        except OSError as move_exc:
            self._note_unmovable(path, exc, move_exc)
            return None
        else:
            for suffix in ("-wal", "-shm"):  # a stale log must not be applied to the new file
                side = path.with_name(path.name + suffix)
                try:
                    os.replace(side, aside.with_name(aside.name + suffix))
                except FileNotFoundError:
                    continue
                except OSError as move_exc:
                    self._note_unmovable(side, exc, move_exc)
                    return None
            # QA round 11: "was not a usable database" read oddly right after hundreds of
            # signatures had been read from it.
            what = (
                "is damaged ({exc}): the signatures still readable from it were used and "
                "are stored again in a fresh file"
                if in_use
                else "was not a usable database ({exc}): started afresh"
            ).format(exc=exc)
            self._note(
                f"damaged {path.name}",
                f"signature cache file '{path}' {what}; the damaged file was moved to "
                f"'{aside.name}' (with its -wal/-shm files if any): delete it when no "
                "longer needed",
            )
        try:
            return self._open_writable(path)
        except (OSError, sqlite3.Error) as again:
            self._give_up(f"signature cache at '{self.folder}' is not usable ({again})")
            return None

    def _select(self, tag: str, table: str, col: str, keys: Sequence[str]) -> dict[str, object]:
        conn = self._conn(tag)
        out: dict[str, object] = {}
        if conn is None:
            return out
        try:
            for i in range(0, len(keys), 500):
                part = list(keys[i : i + 500])
                marks = ",".join("?" * len(part))
                rows = conn.execute(
                    f"SELECT hash, {col} FROM {table} WHERE hash IN ({marks})", part
                ).fetchall()
                out.update(rows)
        except sqlite3.Error as exc:
            if _sqlite_code(exc) in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                self._damaged_in_use(tag, conn, exc)
            else:
                self._give_up(f"signature cache read failed ({exc})")
            return {}
        return out

    def _insert(self, tag: str, table: str, rows: Iterable[tuple[str, object]]) -> None:
        if self._conn(tag) is not None:
            self._insert_on(tag, table, list(rows))

    def db_path(self, tag: str) -> str | None:
        """The ``file:`` URI workers read the cache file of ``tag`` with (read-only), or
        None when it holds nothing yet."""
        conn = self._conn(tag)
        if conn is None:
            return None
        try:
            if conn.execute("SELECT 1 FROM sig LIMIT 1").fetchone() is None:
                return None
        except sqlite3.Error:
            return None
        return self._read_only.get(tag) or self._ro_uri(tag)

    def get_signatures(self, tag: str, hashes: Sequence[str]) -> dict[str, Signature]:
        out: dict[str, Signature] = {}
        for key, data in self._select(tag, "sig", "data", hashes).items():
            try:
                out[key] = Signature.from_bytes(key, bytes(data))  # type: ignore[call-overload]
            except ValueError:
                continue
        return out

    def put_records(self, tag: str, rows: list[tuple[str, bytes]]) -> None:
        """Store ``(content hash, Signature.to_bytes())`` rows in the background (see the
        class docstring)."""
        conn = self._conn(tag)
        if conn is None or tag in self._read_only:
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sodkit-cache")
        self._pending.append(self._writer.submit(self._insert_on, tag, "sig", rows))

    def _insert_on(
        self, tag: str, table: str, rows: Sequence[tuple[str, object]], retry: bool = True
    ) -> None:
        """Write ``rows`` to the file of ``tag`` as it is now (a write queued before its
        file was replaced goes to the fresh one)."""
        conn = self._conns.get(tag)
        if conn is None or tag in self._read_only:
            return
        try:
            with conn:
                conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            code = _sqlite_code(exc)
            if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                self._damaged_in_use(tag, conn, exc)
                if retry:
                    self._insert_on(tag, table, rows, retry=False)
            elif code == sqlite3.SQLITE_READONLY:
                # Opened for writing, yet the file or its folder is write-protected.
                self._read_only[tag] = self._ro_uri(tag)
                self._note_read_only(exc)
            else:
                self._give_up(f"signature cache write failed ({exc})")

    def get_pixel_hashes(self, hashes: Sequence[str]) -> dict[str, str]:
        return {k: str(v) for k, v in self._select(PIXELS_TAG, "pix", "pixels", hashes).items()}

    def put_pixel_hashes(self, rows: Iterable[tuple[str, str]]) -> None:
        self._insert(PIXELS_TAG, "pix", rows)

    def get_sharpness(self, hashes: Sequence[str]) -> dict[str, float]:
        """:func:`sharpness` values by content hash (in their own file, :data:`SHARPNESS_TAG`)."""
        return {
            k: float(v)  # type: ignore[arg-type]
            for k, v in self._select(SHARPNESS_TAG, "sharp", "value", hashes).items()
        }

    def put_sharpness(self, rows: Iterable[tuple[str, float]]) -> None:
        self._insert(SHARPNESS_TAG, "sharp", rows)

    def get_crops(self, keys: Sequence[str]) -> dict[str, tuple[NDArray[np.uint8], ...]]:
        """Object-region crops by :func:`crops_key` (records it cannot read are misses)."""
        out: dict[str, tuple[NDArray[np.uint8], ...]] = {}
        for key, data in self._select("regions", "roi", "data", keys).items():
            crops = crops_from_bytes(bytes(data))  # type: ignore[call-overload]
            if crops is not None:
                out[key] = crops
        return out

    def put_crops(self, rows: Iterable[tuple[str, tuple[NDArray[np.uint8], ...]]]) -> None:
        self._insert("regions", "roi", ((k, crops_to_bytes(c)) for k, c in rows))

    def __enter__(self) -> SignatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Wait for the background writes, then close the files (usable again after)."""
        self._wait()
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        for conn in self._conns.values():
            if conn is not None:
                conn.close()
        self._conns.clear()


# -- object regions ---------------------------------------------------------------------------

_CROP_HEAD = struct.Struct("<4sHH")
_CROP_SHAPE = struct.Struct("<HH")
_CROP_MAGIC = b"SDKR"


def crops_key(content_hash: str, boxes_norm: NDArray[np.floating], roi_size: int) -> str:
    """Cache key of an image's object-region crops: its content, its boxes and the decode size."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{content_hash}:{roi_size}:v{SIGNATURE_VERSION}:".encode())
    h.update(np.ascontiguousarray(boxes_norm, dtype="<f8").tobytes())
    return h.hexdigest()


def crops_to_bytes(crops: Sequence[NDArray[np.uint8]]) -> bytes:
    parts = [_CROP_HEAD.pack(_CROP_MAGIC, SIGNATURE_VERSION, len(crops))]
    for c in crops:
        parts.append(_CROP_SHAPE.pack(*c.shape))
        parts.append(np.ascontiguousarray(c, dtype=np.uint8).tobytes())
    return b"".join(parts)


def crops_from_bytes(data: bytes) -> tuple[NDArray[np.uint8], ...] | None:
    """Crops from :func:`crops_to_bytes`, or None for bytes it did not write."""
    if len(data) < _CROP_HEAD.size:
        return None
    magic, version, count = _CROP_HEAD.unpack_from(data)
    if magic != _CROP_MAGIC or version != SIGNATURE_VERSION:
        return None
    off = _CROP_HEAD.size
    out = []
    for _ in range(count):
        if off + _CROP_SHAPE.size > len(data):
            return None
        h, w = _CROP_SHAPE.unpack_from(data, off)
        off += _CROP_SHAPE.size
        if off + h * w > len(data):
            return None
        out.append(np.frombuffer(data, np.uint8, h * w, off).reshape(h, w))
        off += h * w
    return tuple(out) if off == len(data) else None


# -- extraction -----------------------------------------------------------------------------


@dataclass(slots=True)
class Extraction:
    """Signatures in input order (``None`` where the image failed) and the failures by index."""

    signatures: list[Signature | None]
    failures: dict[int, ItemError]
    cache_hits: int = 0


def extract_signatures(
    paths: Sequence[str | Path],
    params: SignatureParams,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    cache: SignatureCache | None = None,
    sizes: Sequence[tuple[int, int] | None] | None = None,
) -> Extraction:
    """One pass through ``executor``: each file is read once, hashed, and either found in
    the cache (looked up by the worker) or decoded from the bytes already read.

    ``sizes``: displayed ``(width, height)`` per path when known (saves a header read).
    Failures are returned, not raised: the caller routes them through its error policy.
    New signatures are cached as they come, in batches (see :class:`StoreBatches`).
    """
    ex = executor or SerialExecutor()
    prog = progress or NullProgress()
    db = cache.db_path(params.tag) if cache is not None else None
    jobs = [
        SignatureJob(str(p), params, sizes[i] if sizes else None, db) for i, p in enumerate(paths)
    ]
    sigs: list[Signature | None] = []
    failures: dict[int, ItemError] = {}
    by_hash: dict[str, Signature] = {}
    hits = 0
    results = prog.track(ex.map(_signature_task, jobs), total=len(jobs), description="signatures")
    store = partial(cache.put_records, params.tag) if cache is not None else None
    with StoreBatches(store) as computed:
        for i, res in enumerate(results):
            if isinstance(res, ItemFailure):
                failures[i] = res.error()
                sigs.append(None)
                continue
            content_hash, record, from_cache = res
            sig = by_hash.get(content_hash)
            if sig is None:
                try:
                    sig = Signature.from_bytes(content_hash, record)
                except ValueError:
                    # A cache record this version cannot read: compute it here instead.
                    sig = compute_signature(jobs[i].path, content_hash, params, jobs[i].size)
                    record, from_cache = sig.to_bytes(), False
                by_hash[content_hash] = sig
                if not from_cache:
                    computed.add(content_hash, record)
            hits += from_cache
            sigs.append(sig)
    if cache is not None and hits and cache.replaced(params.tag):
        # The file the hits came from was damaged and moved aside: keep them in the new one.
        with StoreBatches(store) as again:
            for content_hash, sig in by_hash.items():
                again.add(content_hash, sig.to_bytes())
    return Extraction(sigs, failures, cache_hits=hits)


class StoreBatches(Generic[_V]):
    """Hands ``(key, value)`` rows to ``store`` (a cache's ``put_...``; None: nowhere) as they
    come: one call per :data:`STORE_ROWS` rows or :data:`STORE_SECONDS`, whichever is
    first, and one for the rest when the ``with`` block ends, whatever ends it (a Ctrl+C, an
    error), so what a pass computed stays cached when it stops early. Each call is one
    transaction (:meth:`SignatureCache.put_records` writes in the background)."""

    def __init__(self, store: Callable[[list[tuple[str, _V]]], None] | None) -> None:
        self._store = store
        self._size = max(1, STORE_ROWS)
        self._seconds = STORE_SECONDS
        self._rows: list[tuple[str, _V]] = []
        self._since = time.monotonic()

    def __enter__(self) -> StoreBatches[_V]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.flush()

    def add(self, key: str, value: _V) -> None:
        if self._store is None:
            return
        self._rows.append((key, value))
        if len(self._rows) >= self._size or time.monotonic() - self._since >= self._seconds:
            self.flush()

    def flush(self) -> None:
        """Store the rows held back now (a new list each time: the store may keep it)."""
        rows, self._rows = self._rows, []
        self._since = time.monotonic()
        if rows and self._store is not None:
            self._store(rows)


def compute_pixel_hashes(
    items: Sequence[tuple[str, str]],
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    cache: SignatureCache | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> dict[str, str | ItemFailure]:
    """Pixel hash per content hash for ``(path, content_hash)`` items (cached as they come,
    in batches: see :class:`StoreBatches`)."""
    cached = cache.get_pixel_hashes(sorted({h for _, h in items})) if cache is not None else {}
    store = cache.put_pixel_hashes if cache is not None else None
    with StoreBatches(store) as fresh:
        return _by_content(
            items, cached, _pixel_task, max_pixels, executor, progress, "pixel hashes", fresh
        )


def compute_sharpness(
    items: Sequence[tuple[str, str]],
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    cache: SignatureCache | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> dict[str, float | ItemFailure]:
    """:func:`sharpness` per content hash for ``(path, content_hash)`` items (cached as
    they come, in batches: see :class:`StoreBatches`)."""
    cached = cache.get_sharpness(sorted({h for _, h in items})) if cache is not None else {}
    store = cache.put_sharpness if cache is not None else None
    with StoreBatches(store) as fresh:
        return _by_content(
            items, cached, _sharpness_task, max_pixels, executor, progress, "sharpness", fresh
        )


def _by_content(
    items: Sequence[tuple[str, str]],
    cached: Mapping[str, _V],
    task: Callable[[tuple[str, int | None]], _V | ItemFailure],
    max_pixels: int | None,
    executor: Executor | None,
    progress: Progress | None,
    description: str,
    fresh: StoreBatches[_V],
) -> dict[str, _V | ItemFailure]:
    """Map ``task`` over one path per content hash not in ``cached``; return the value per
    content hash and add the newly computed ones to ``fresh`` (failures are values too,
    never cached)."""
    ex = executor or SerialExecutor()
    prog = progress or NullProgress()
    uniq: dict[str, str] = {}
    for path, h in items:
        uniq.setdefault(h, path)
    out: dict[str, _V | ItemFailure] = {h: v for h, v in cached.items() if h in uniq}
    jobs = [(h, p) for h, p in uniq.items() if h not in out]
    results = ex.map(task, [(p, max_pixels) for _, p in jobs])
    for (h, _), res in zip(
        jobs, prog.track(results, total=len(jobs), description=description), strict=True
    ):
        out[h] = res
        if not isinstance(res, ItemFailure):
            fresh.add(h, res)
    return out
