"""Kaggle / Roboflow exports: YOLO (``data.yaml`` + ``train/valid/test``) or VOC.

The export's own split is kept as the attribute ``original_split`` (``valid`` is read
as ``val``); the dataset itself comes out unsplit, so ``curate split`` can make a
leakage-free split. Roboflow names frames of videos ``<clip>_mp4-<n>_jpg.rf.<hash>.jpg``:
such frames get the group ``kaggle/<clip>`` so one clip never lands in two splits
(exports often leak exactly this way), and the attributes ``clip`` and ``frame``.
"""

from __future__ import annotations

import re
from pathlib import Path

from curate.core.dataset import Dataset
from curate.core.errors import UsageError
from curate.core.files import make_unique_names, safe_token
from curate.formats.base import ReadOptions
from curate.formats.voc import VocFormat
from curate.formats.yolo import YoloFormat, find_yaml

_SPLIT_DIRS = {"train": "train", "valid": "val", "val": "val", "validation": "val", "test": "test"}
_FRAME = re.compile(
    r"^(?P<clip>.+?)_(?P<ext>mp4|avi|mov|mkv|webm|mpg|mpeg)-(?P<frame>\d+)", re.IGNORECASE
)
_ROBOFLOW_SUFFIX = re.compile(r"_(?P<ext>jpg|jpeg|png)\.rf\.[0-9a-f]{16,}$", re.IGNORECASE)


def _split_dirs(path: Path) -> dict[str, Path]:
    return {name: path / name for name in _SPLIT_DIRS if (path / name).is_dir()}


def clip_of(file_name: str) -> tuple[str, int] | None:
    """``(clip, frame)`` for Roboflow video-frame names, else None."""
    m = _FRAME.match(Path(file_name).name)
    if not m:
        return None
    return f"{m['clip']}.{m['ext'].lower()}", int(m["frame"])


class KaggleSource:
    """A Kaggle/Roboflow export in YOLO or VOC form."""

    name = "kaggle"
    refines = ("yolo", "voc")
    description = "Kaggle/Roboflow export: YOLO data.yaml with train/valid/test, or VOC"

    def detect(self, path: Path) -> int:
        if path.is_file():
            return 0
        dirs = _split_dirs(path)
        if not dirs:
            return 0
        yolo_like = find_yaml(path) is not None and any(
            (d / "images").is_dir() for d in dirs.values()
        )
        voc_like = any(any(d.glob("*.xml")) for d in dirs.values())
        roboflow = any((path / n).is_file() for n in ("README.roboflow.txt", "README.dataset.txt"))
        if yolo_like or voc_like:
            return 95 if roboflow or "valid" in dirs else 90
        return 0

    def read(self, path: Path, options: ReadOptions) -> Dataset:
        """Read the export; YOLO labels win when both YOLO and VOC annotations are present."""
        if path.is_file():
            path = path.parent
        dirs = _split_dirs(path)
        yolo = YoloFormat()
        if find_yaml(path) is not None and (
            any((d / "images").is_dir() for d in dirs.values()) or yolo.detect(path)
        ):
            ds = yolo.read(path, options)
            ds.info["export_form"] = "yolo"
        elif dirs and any(any(d.glob("*.xml")) for d in dirs.values()):
            ds = self._read_voc(dirs, options)
            ds.info["export_form"] = "voc"
        elif yolo.detect(path) >= 60:
            ds = yolo.read(path, options)
            ds.info["export_form"] = "yolo"
        elif VocFormat().detect(path) > 0:
            ds = VocFormat().read(path, options)
            ds.info["export_form"] = "voc"
        else:
            raise UsageError(
                f"'{path}' is not a Kaggle/Roboflow export: no data.yaml or classes.txt with YOLO labels, "
                "and no VOC XML (in train/valid/test folders or annotations/)"
            )
        prefix_of: dict[int, str] = {}
        for img in ds.images:
            prefix_of[id(img)] = safe_token(img.split or "dup")
            img.attributes["original_split"] = img.split
            img.split = None
            img.source = img.source or "kaggle"
            img.attributes.setdefault("original_path", str(img.path))
            img.file_name = Path(img.file_name).name
            clip = clip_of(img.file_name)
            if clip is not None:
                img.group = f"kaggle/{path.name}/{clip[0]}"
                img.attributes["clip"], img.attributes["frame"] = clip
        # Split folders often reuse names (img_1.jpg in train/ and in valid/): flattened,
        # later ones get their split as a prefix (val__img_1.jpg; attribute renamed_from).
        renamed = make_unique_names(ds.images, prefix_of)
        if renamed:
            ds.info.setdefault("changed", []).extend(
                {
                    "item": img.attributes["original_path"],
                    "change": f"renamed to {img.file_name}: another split holds the same name",
                }
                for img in ds.images
                if "renamed_from" in img.attributes
            )
        return ds

    def _read_voc(self, dirs: dict[str, Path], options: ReadOptions) -> Dataset:
        out = Dataset(info={"changed": [], "dropped": []})
        voc = VocFormat()
        for dirname, d in dirs.items():
            part = voc.read(d, options)
            remap = {c.id: out.add_category(c.name) for c in part.categories}
            for img in part.images:
                img.split = _SPLIT_DIRS[dirname]
                for ann in img.annotations:
                    ann.category_id = remap[ann.category_id]
                out.images.append(img)
            out.info["changed"] += part.info.get("changed", [])
        return out
