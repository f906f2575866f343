"""Placing image files into an output: hard link, symbolic link or copy."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from curate.core.dataset import SPLITS, ImageItem, split_name
from curate.core.errors import UsageError

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
        raise OutputCollisionError(dst) from None


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
    """Two items of a dataset would be written to one output file."""

    def __init__(self, dst: Path) -> None:
        super().__init__(
            f"two images would be written to '{dst}' (same file name). "
            "Rename one of them, or read the sources with `curate merge`, which makes names unique"
        )
        self.path = dst


def write_new_text(path: Path, text: str) -> None:
    """Write ``text`` to a file that must not exist yet (see :func:`place_file`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise OutputCollisionError(path) from None


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_token(text: str) -> str:
    """A file-name-safe token from ``text`` (source names used as prefixes)."""
    return _SAFE.sub("_", text).strip("_") or "src"


def make_unique_names(images: Iterable[ImageItem], prefix_of: dict[int, str] | None = None) -> int:
    """Rename images whose names (or label stems) collide, deterministically; return how many.

    The first image keeps its name; later ones get a prefix (``prefix_of[id(img)]``, else
    a counter). Stems are compared case-insensitively, because YOLO label files are named
    by stem and some file systems ignore case.
    """
    seen: set[str] = set()
    renamed = 0
    for img in images:
        key = _stem_key(img.file_name)
        if key not in seen:
            seen.add(key)
            continue
        p = PurePosixPath(img.file_name)
        base = (prefix_of or {}).get(id(img), "dup")
        n = 0
        while True:
            tag = base if n == 0 else f"{base}{n}"
            cand = str(p.with_name(f"{tag}__{p.name}"))
            if _stem_key(cand) not in seen:
                break
            n += 1
        img.attributes.setdefault("renamed_from", img.file_name)
        img.file_name = cand
        seen.add(_stem_key(cand))
        renamed += 1
    return renamed


def _stem_key(name: str) -> str:
    p = PurePosixPath(name)
    return str(p.with_suffix("")).lower()
