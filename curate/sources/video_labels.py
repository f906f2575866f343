"""Box annotations of video clips: FURG XML beside a clip, or per-frame YOLO/VOC files.

Where a clip's annotations are looked for (first match wins):

1. ``<stem>.xml`` beside the clip, in the FURG fire dataset's OpenCV FileStorage
   layout::

       <opencv_storage><frameRate>29</frameRate><frameWidth>426</frameWidth>...
         <frames><_><frameNumber>0</frameNumber>
                    <annotations><_>x y w h</_>...</annotations></_>...</frames>

   Rectangles are pixel ``x y w h`` (a fifth token, when present, is the class name).
   The class is ``fire`` unless the file has a top-level ``<className>`` (or
   ``<class>``, ``<label>``). Frame numbers are 0-based frame indices.
2. A folder of per-frame label files: ``<stem>/``, ``<stem>_labels/``,
   ``<stem>_annotations/`` beside the clip, or ``labels/<stem>/``. File names carry
   the frame number: ``<stem>_<n>``, ``<stem>_f<n>``, ``<stem>-frame<n>``, ``frame_<n>``,
   ``frame<n>``, ``f<n>``, ``img_<n>`` or just ``<n>``. Numbers are 0-based frame
   indices, unless no file is numbered 0 and one is numbered with the clip's frame
   count (impossible 0-based): then they are 1-based. ``.txt`` files are YOLO
   (``cls cx cy w h`` normalised, or a normalised polygon; class names from
   ``classes.txt``, ``obj.names`` or ``data.yaml`` in that folder or beside the clip;
   without one the names are the ids), else ``.xml`` files are Pascal VOC
   (``object/name`` + ``bndbox``, 1-based corners: ``(xmin - 1, ymin - 1, xmax, ymax)``).

Which frames the annotations cover: the listed frame numbers, from the first to the
last, on their common step (the gcd of the gaps, so annotations made on every 5th frame
cover every 5th frame). A covered frame that is not listed has zero boxes (a
negative); frames outside the covered grid are not annotated (the reader treats them
like frames of an unannotated clip).
"""

from __future__ import annotations

import itertools
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from curate.core.dataset import Box, Mask
from curate.core.errors import ItemError, MalformedFileError
from curate.core.files import read_text_file
from curate.formats.yolo import class_names, load_yaml, parse_label_file

DEFAULT_CLASS = "fire"
LabelKind = Literal["furg-xml", "yolo", "voc"]
_CLASS_TAGS = ("className", "class", "label", "category")
_NAME_FILES = ("classes.txt", "obj.names", "data.yaml", "data.yml")
_FRAME_NUMBER = re.compile(r"^[_\-. ]*(?:frame|img|image|f)?[_\-. ]*(\d+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RawBox:
    """One box read from a label file: pixel XYXY, class name, line (when known), mask."""

    box: Box
    class_name: str
    line: int | None = None
    mask: Mask | None = None


@dataclass
class ClipLabels:
    """The annotations of one clip and the frames they cover.

    ``frames`` maps a frame number to its boxes (FURG XML, parsed) or its label file
    (YOLO/VOC, parsed on demand by :meth:`boxes`); ``errors`` holds frames whose entry
    could not be read. ``unnamed`` lists label files without a frame number.
    """

    kind: LabelKind
    source: Path
    frames: dict[int, list[RawBox] | Path]
    errors: dict[int, ItemError] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    frame_rate: float | None = None
    frame_size: tuple[int, int] | None = None
    unnamed: list[Path] = field(default_factory=list)

    def listed(self) -> list[int]:
        """Every frame number the annotations mention, sorted."""
        return sorted(set(self.frames) | set(self.errors))

    def covers(self, frame: int) -> bool:
        """True when ``frame`` lies on the annotated grid (see the module docstring)."""
        first, last, step = self._grid()
        return first <= frame <= last and (frame - first) % step == 0

    def _grid(self) -> tuple[int, int, int]:
        nums = self.listed()
        if not nums:
            return 0, -1, 1
        step = 0
        for a, b in itertools.pairwise(nums):
            step = math.gcd(step, b - a)
        return nums[0], nums[-1], step or 1

    def align_to(self, frame_count: int) -> bool:
        """Shift per-frame file numbers to 0-based when they can only be 1-based; True if shifted."""
        if self.kind == "furg-xml":
            return False
        nums = self.listed()
        if not nums or nums[0] == 0 or nums[-1] != frame_count:
            return False
        self.frames = {n - 1: v for n, v in self.frames.items()}
        self.errors = {n - 1: v for n, v in self.errors.items()}
        return True

    def where(self, frame: int) -> str:
        """The file (and frame) to name in an error about ``frame``."""
        entry = self.frames.get(frame)
        if isinstance(entry, Path):
            return str(entry)
        return f"{self.source} frame {frame}"

    def boxes(self, frame: int, width: int, height: int) -> list[RawBox]:
        """Boxes of a covered ``frame`` of a ``width`` x ``height`` clip (none when not listed).

        Raises the frame's :class:`ItemError` when its entry cannot be read.
        """
        if frame in self.errors:
            raise self.errors[frame]
        entry = self.frames.get(frame)
        if entry is None:
            return []
        if not isinstance(entry, Path):
            return list(entry)
        if self.kind == "yolo":
            return _yolo_boxes(entry, width, height, self.names)
        return _voc_boxes(entry)


# -- finding ---------------------------------------------------------------------------
def find_clip_labels(clip: Path) -> ClipLabels | None:
    """The annotations of ``clip`` (see the module docstring), or None when it has none.

    Raises :class:`MalformedFileError` when the FURG XML cannot be read as a whole.
    """
    for xml in (clip.with_suffix(".xml"), clip.with_suffix(".XML")):
        if xml.is_file():
            return parse_furg_xml(xml)
    for folder in label_folders(clip):
        labels = _read_label_folder(folder, clip)
        if labels is not None:
            return labels
    return None


def label_folders(clip: Path) -> list[Path]:
    """Candidate per-frame label folders of ``clip`` that exist."""
    stem = clip.stem
    cands = (
        clip.parent / stem,
        clip.parent / f"{stem}_labels",
        clip.parent / f"{stem}_annotations",
        clip.parent / "labels" / stem,
    )
    return [c for c in cands if c.is_dir()]


def frame_number(file_stem: str, clip_stem: str) -> int | None:
    """Frame number in a per-frame label file's stem, or None when it has none."""
    rest = file_stem
    if rest.lower().startswith(clip_stem.lower()):
        rest = rest[len(clip_stem) :]
    m = _FRAME_NUMBER.match(rest)
    return int(m.group(1)) if m else None


def _read_label_folder(folder: Path, clip: Path) -> ClipLabels | None:
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.name.lower() not in _NAME_FILES)
    txt = [f for f in files if f.suffix.lower() == ".txt"]
    xml = [f for f in files if f.suffix.lower() == ".xml"]
    kind: LabelKind = "yolo" if txt else "voc"
    chosen = txt or xml
    if not chosen:
        return None
    frames: dict[int, list[RawBox] | Path] = {}
    errors: dict[int, ItemError] = {}
    unnamed: list[Path] = []
    for f in chosen:
        n = frame_number(f.stem, clip.stem)
        if n is None:
            unnamed.append(f)
        elif n in frames or n in errors:
            frames.pop(n, None)
            errors[n] = MalformedFileError(f, f"frame {n} has two label files in '{folder}'")
        else:
            frames[n] = f
    names = _names_for(folder, clip) if kind == "yolo" else []
    return ClipLabels(kind, folder, frames, errors, names=names, unnamed=unnamed)


def _names_for(folder: Path, clip: Path) -> list[str]:
    for base in (folder, clip.parent):
        for name in ("classes.txt", "obj.names"):
            f = base / name
            if f.is_file():
                return [
                    ln.strip() for ln in read_text_file(f, "class list").splitlines() if ln.strip()
                ]
        for name in ("data.yaml", "data.yml"):
            f = base / name
            if f.is_file():
                return class_names(load_yaml(f), f)
    return []


# -- FURG XML ----------------------------------------------------------------------------
def parse_furg_xml(path: Path) -> ClipLabels:
    """Read a FURG (OpenCV FileStorage) annotation file.

    Raises :class:`MalformedFileError` when the file cannot be used at all (bad XML, no
    ``<frames>``, a frame without a valid ``<frameNumber>``); a bad rectangle or a
    repeated frame only marks that frame (in ``errors``).
    """
    hint = "expected <opencv_storage><frames><_><frameNumber>N</frameNumber><annotations><_>x y w h</_>..."
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise MalformedFileError(
            path, f"not well-formed XML ({exc.msg})", line=line, hint=hint
        ) from exc
    except OSError as exc:
        raise MalformedFileError(path, f"cannot read the file ({exc})") from exc
    frames_el = root.find("frames")
    if frames_el is None:
        raise MalformedFileError(
            path, f"no <frames> element under <{root.tag}>", field="frames", hint=hint
        )
    default = next(
        (t.strip() for tag in _CLASS_TAGS if (t := root.findtext(tag)) and t.strip()), DEFAULT_CLASS
    )
    frames: dict[int, list[RawBox] | Path] = {}
    errors: dict[int, ItemError] = {}
    for k, entry in enumerate(frames_el, start=1):
        raw_num = (entry.findtext("frameNumber") or "").strip()
        if not (raw_num.isascii() and raw_num.isdigit()):  # '²' is a digit to isdigit()
            raise MalformedFileError(
                path,
                f"frame entry {k} has no valid <frameNumber> (got {raw_num!r})",
                field="frameNumber",
                hint="every <frames><_> needs a non-negative integer <frameNumber>",
            )
        n = int(raw_num)
        if n in frames or n in errors:
            frames.pop(n, None)
            errors[n] = MalformedFileError(path, f"frame {n} is listed twice", field=f"frame {n}")
            continue
        try:
            frames[n] = _furg_rects(entry.find("annotations"), default, path, n)
        except MalformedFileError as err:
            errors[n] = err
    return ClipLabels(
        "furg-xml",
        path,
        frames,
        errors,
        frame_rate=_number(root.findtext("frameRate")),
        frame_size=_size(root.findtext("frameWidth"), root.findtext("frameHeight")),
    )


def _furg_rects(node: ET.Element | None, default: str, path: Path, frame: int) -> list[RawBox]:
    if node is None:
        return []
    out: list[RawBox] = []
    for j, rect in enumerate(node, start=1):
        text = " ".join((rect.text or "").split())
        tokens = text.split(" ") if text else []
        try:
            if len(tokens) not in (4, 5):
                raise ValueError
            x, y, w, h = (float(t) for t in tokens[:4])
        except ValueError as exc:
            raise MalformedFileError(
                path,
                f"frame {frame} rectangle {j}: expected 'x y w h' in pixels, got {text!r}",
                field=f"frame {frame}",
            ) from exc
        out.append(RawBox((x, y, x + w, y + h), tokens[4] if len(tokens) == 5 else default))
    return out


def _number(text: str | None) -> float | None:
    try:
        v = float((text or "").strip())
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None


def _size(w: str | None, h: str | None) -> tuple[int, int] | None:
    fw, fh = _number(w), _number(h)
    return (int(fw), int(fh)) if fw and fh else None


# -- per-frame YOLO / VOC ----------------------------------------------------------------
def _yolo_boxes(label: Path, width: int, height: int, names: list[str]) -> list[RawBox]:
    nc = len(names) if names else 1 << 31
    out = []
    for ann, line in parse_label_file(label, width, height, nc, names):
        cid = ann.category_id
        out.append(RawBox(ann.bbox, names[cid] if names else str(cid), line, ann.mask))
    return out


def _voc_boxes(path: Path) -> list[RawBox]:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise MalformedFileError(path, f"not well-formed XML ({exc.msg})", line=line) from exc
    except (OSError, LookupError) as exc:  # a folder named *.xml, an unknown encoding
        raise MalformedFileError(path, f"cannot read XML ({exc})") from exc
    out: list[RawBox] = []
    for k, obj in enumerate(root.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if not name or bb is None:
            raise MalformedFileError(path, f"object {k} needs <name> and <bndbox>", field="object")
        try:
            x1, y1, x2, y2 = (
                float((bb.findtext(t) or "").strip()) for t in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError as exc:
            raise MalformedFileError(
                path,
                f"object {k} ('{name}'): bndbox needs numeric xmin, ymin, xmax, ymax",
                field="bndbox",
            ) from exc
        out.append(RawBox((x1 - 1, y1 - 1, x2, y2), name))
    return out
