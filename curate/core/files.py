"""Files of a dataset: split folders, frame names, the image files a reader left unread,
and placing image files into an output (hard link, symbolic link or copy)."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from curate.core.dataset import SPLITS, ImageItem, split_name
from curate.core.errors import MalformedFileError, UsageError

_FRAME = re.compile(
    r"^(?P<clip>.+?)_(?P<ext>mp4|avi|mov|mkv|webm|mpg|mpeg)-(?P<frame>\d+)", re.IGNORECASE
)


def clip_of(file_name: str) -> tuple[str, int] | None:
    """``(clip, frame)`` for Roboflow video-frame names, else None."""
    m = _FRAME.match(Path(file_name).name)
    if not m:
        return None
    return f"{m['clip']}.{m['ext'].lower()}", int(m["frame"])


def split_dirs(path: Path) -> dict[Path, str]:
    """The sub-folders of ``path`` named as splits (any case: ``Train/``, ``valid/``), in
    split order (train, val, test), then by name."""
    if not path.is_dir():
        return {}
    found = [(split_name(c.name), c) for c in path.iterdir() if c.is_dir()]
    ordered = sorted((SPLITS.index(s), c.name, c, s) for s, c in found if s is not None)
    return {c: s for _, _, c, s in ordered}


#: Image types sodkit does not read (HEIC, AVIF and JPEG XL need Pillow plugins, a GIF may be
#: animated, SVG is vector, PSD layered, DNG raw; ``.jfif`` is JPEG under a name that
#: ``imageio.IMAGE_EXTENSIONS`` does not list). Such files in a dataset are left out with a
#: note (:func:`unread_types_note`), never silently; other files (``.txt``, ``.csv``,
#: ``.DS_Store``) are not images and not mentioned.
UNREAD_IMAGE_EXTENSIONS = frozenset(
    {".avif", ".dng", ".gif", ".heic", ".heif", ".jfif", ".jp2", ".jxl", ".psd", ".svg"}
)
_NAMED = 3  # folders named in a note; the rest are counted


def is_unread_image(path: Path) -> bool:
    """Whether ``path`` has the extension of an image type sodkit does not read."""
    return path.suffix.lower() in UNREAD_IMAGE_EXTENSIONS


def walk_files(root: Path) -> Iterable[Path]:
    """Every file under ``root``, hidden files and folders left out, in a stable order."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder, name)


def unread_types_note(files: Sequence[Path], root: Path) -> str | None:
    """The reader note for image files of a type sodkit does not read (None: there are none).

    ``e.g.`` names the first file, relative to ``root`` (the dataset's folder).
    """
    if not files:
        return None
    counts = Counter(f.suffix.lower() for f in files)
    kinds = ", ".join(
        f"{ext}: {n}" for ext, n in sorted(counts.items(), key=lambda c: (-c[1], c[0]))
    )
    return (
        f"{len(files)} image file(s) of a type sodkit does not read were left out ({kinds}), "
        f"e.g. {shown_path(min(files), root)}; convert them to JPEG or PNG to read them"
    )


def unread_folders_note(
    unread: Sequence[Path], read: Iterable[Path], root: Path, hint: str
) -> str | None:
    """The reader note for images under ``root`` (the dataset's folder) that no split holds.

    ``unread`` are those images, ``read`` the images the splits hold. Each unread image is
    counted under the highest folder on its path that holds no read image (``extra/``,
    ``train/more_images/``), or under its own folder when every folder on its path holds
    some; a few folders are named, the rest counted. ``hint`` says which folders are read
    and how to have the others read. None when there are none.
    """
    if not unread:
        return None
    held: set[tuple[str, ...]] = {()}
    for parent in {p.parent for p in read}:
        parts = _parts(parent, root)
        if parts is not None:
            held.update(parts[:i] for i in range(1, len(parts) + 1))
    by_folder: Counter[tuple[str, ...]] = Counter()
    for p in unread:
        parts = _parts(p.parent, root) or ()
        top = next((parts[:i] for i in range(1, len(parts) + 1) if parts[:i] not in held), parts)
        by_folder[top] += 1
    ranked = sorted(by_folder.items(), key=lambda c: (-c[1], c[0]))
    named = ", ".join(f"{'/'.join(k) or '.'}/ ({n})" for k, n in ranked[:_NAMED])
    if len(ranked) > _NAMED:
        named += f" and {len(ranked) - _NAMED} more folder(s)"
    return (
        f"{len(unread)} image(s) in {len(ranked)} folder(s) that no split holds were not read: "
        f"{named}; {hint}"
    )


def unread_notes(
    walked: Sequence[Path], extra: Sequence[Path], read: Iterable[Path], root: Path, hint: str
) -> list[str]:
    """A reader's notes on what it left out of the files ``walked`` under ``root``: image
    types sodkit does not read (:func:`unread_types_note`), and the images ``extra`` that no
    split holds (:func:`unread_folders_note`, with ``read`` and ``hint``)."""
    notes = [
        unread_types_note([f for f in walked if is_unread_image(f)], root),
        unread_folders_note(extra, read, root, hint),
    ]
    return [n for n in notes if n]


def _parts(path: Path, root: Path) -> tuple[str, ...] | None:
    try:
        return path.relative_to(root).parts
    except ValueError:
        return None


def shown_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX form) when inside it, else as given (for notes)."""
    parts = _parts(path, root)
    if parts is None:
        return str(path)
    return "/".join(parts) or "."


def place_file(src: Path, dst: Path, mode: str) -> str:
    """Put ``src`` at ``dst`` by ``mode``; a hard link falls back to a copy across devices.

    ``dst`` must not exist: outputs are written into a fresh folder, so an existing ``dst``
    means two items were given one output name, and writing would go through it (into
    a hard link to an input, or over the other item). That is refused with
    :class:`OutputCollisionError`. Returns the mode actually used.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _place(src, dst, mode)
    except FileExistsError:
        raise OutputCollisionError(dst, (src,)) from None


def _place(src: Path, dst: Path, mode: str) -> str:
    """:func:`place_file` without the mapping of FileExistsError (every branch raises it)."""
    if mode == "hardlink":
        try:
            os.link(src, dst)
            return "hardlink"
        except FileExistsError:
            raise
        except OSError:
            pass  # another device, or a file system without hard links: copy instead
    elif mode == "symlink":
        os.symlink(Path(src).resolve(), dst)
        return "symlink"
    # Exclusive creation: never write through an existing file or link (dangling ones too).
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    shutil.copystat(src, dst)
    return "copy"


class OutputCollisionError(UsageError):
    """Two items of a dataset would be written to one output file, ``path``.

    ``sources`` names the input files where known (the two images, or the one that came
    second); ``what`` says what the two are (``images``, ``files``).
    """

    def __init__(self, path: Path, sources: Sequence[Path] = (), *, what: str = "images") -> None:
        self.path = path
        self.sources = tuple(sources)
        self.what = what
        named = " and ".join(f"'{s}'" for s in self.sources)
        if len(self.sources) == 1:
            named += " and one before it"
        super().__init__(
            f"two {what} would be written to '{path}' (same file name){f': {named}' if named else ''}. "
            "Rename one of them, or read the sources with `curate merge`, which makes names unique"
        )

    def in_output(self, tmp: Path, out: Path) -> OutputCollisionError:
        """This error with its path moved from ``tmp`` to ``out``: an atomic output is
        written into a temporary folder renamed to ``out`` at the end, whose name means
        nothing to a user (QA round 12: errors named ``.out.tmp-733-59be64fc/...``)."""
        try:
            path = out / self.path.relative_to(tmp)
        except ValueError:
            path = self.path
        return OutputCollisionError(path, self.sources, what=self.what)


def write_new_text(path: Path, text: str) -> None:
    """Write ``text`` to a file that must not exist yet (see :func:`place_file`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise OutputCollisionError(path, what="files") from None


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_token(text: str) -> str:
    """A file-name-safe token from ``text`` (source names used as prefixes)."""
    return _SAFE.sub("_", text).strip("_") or "src"


def make_unique_names(images: Iterable[ImageItem], prefix_of: dict[int, str] | None = None) -> int:
    """Rename images whose names (or label stems) collide, deterministically; return how many.

    The names come from :func:`unique_names`, with each image's prefix ``prefix_of[id(img)]``
    (default ``dup``); a renamed image keeps its old name as the attribute ``renamed_from``.
    """
    items = list(images)
    prefixes = [(prefix_of or {}).get(id(img), "dup") for img in items]
    renamed = 0
    for img, name in zip(items, unique_names([i.file_name for i in items], prefixes), strict=True):
        if name != img.file_name:
            img.attributes.setdefault("renamed_from", img.file_name)
            img.file_name = name
            renamed += 1
    return renamed


def unique_names(names: Sequence[str], prefixes: Sequence[str]) -> list[str]:
    """``names`` made distinct by :func:`stem_key` (YOLO label files are named by stem, and
    some file systems ignore case), deterministically.

    The first name of each stem is kept, wherever it comes in the list; a later one gets its
    prefix (``prefixes[i]__name``, else ``prefix1__name``, ``prefix2__name`` ...), the first
    that no name, given or made, holds. So a file that already has a name keeps it (QA round
    12: ``val__a.jpg`` of an export became ``val__val__a.jpg`` because ``a.jpg`` had been
    renamed to it first).
    """
    taken = {stem_key(n) for n in names}
    kept: set[str] = set()
    out: list[str] = []
    for name, prefix in zip(names, prefixes, strict=True):
        key = stem_key(name)
        if key not in kept:
            kept.add(key)
            out.append(name)
            continue
        p = PurePosixPath(name)
        n = 0
        while True:
            cand = str(p.with_name(f"{prefix if n == 0 else f'{prefix}{n}'}__{p.name}"))
            if stem_key(cand) not in taken:
                break
            n += 1
        taken.add(stem_key(cand))
        out.append(cand)
    return out


def stem_key(name: str) -> str:
    """What :func:`make_unique_names` compares: the name without its extension, lower case."""
    p = PurePosixPath(name)
    return str(p.with_suffix("")).lower()


def read_text_file(path: Path, what: str = "file", *, encoding: str = "utf-8") -> str:
    """The text of ``path``, or a :class:`~curate.core.errors.MalformedFileError` naming it
    when it is not UTF-8 text or cannot be read (a folder, no permission): label, YAML and
    list files come from many tools, and one in another encoding must not stop a run with a
    bare UnicodeDecodeError."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise MalformedFileError(
            path,
            f"{what} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at {exc.start})",
            hint="save it as UTF-8",
        ) from exc
    except OSError as exc:
        raise MalformedFileError(path, f"cannot read {what} ({exc.strerror or exc})") from exc
