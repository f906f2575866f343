"""Kaggle / Roboflow exports: YOLO (``data.yaml`` + ``train/valid/test``) or VOC.

Split folders are matched in any case (``Train/``, ``validation/``, ``Testing/``). A YOLO
export without a YAML (``train/images`` + ``train/labels``, as D-Fire ships) is read too:
class names then come from ``classes.txt`` or, failing that, the label files' ids (see
:mod:`curate.formats.yolo`). The export's own split is kept as the attribute
``original_split`` (``valid`` is read as ``val``); the dataset itself comes out unsplit,
so ``curate split`` can make a leakage-free split. Roboflow names frames of videos ``<clip>_mp4-<n>_jpg.rf.<hash>.jpg``:
such frames get the group ``kaggle/<clip>`` so one clip never lands in two splits
(exports often leak exactly this way), and the attributes ``clip`` and ``frame``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from curate.core.dataset import Dataset, ImageItem
from curate.core.errors import UsageError
from curate.core.files import (
    clip_of,
    make_unique_names,
    safe_token,
    shown_path,
    split_dirs,
    stem_key,
    unread_notes,
    walk_files,
)
from curate.core.imageio import is_image_file
from curate.formats.base import ReadOptions
from curate.formats.voc import VocFormat
from curate.formats.yolo import YoloFormat, find_yaml


class KaggleSource:
    """A Kaggle/Roboflow export in YOLO or VOC form."""

    name = "kaggle"
    refines = ("yolo", "voc")
    description = "Kaggle/Roboflow export: YOLO data.yaml with train/valid/test, or VOC"

    def detect(self, path: Path) -> int:
        if path.is_file():
            return 0
        dirs = split_dirs(path)
        if not dirs:
            return 0
        with_images = [d for d in dirs if (d / "images").is_dir()]
        yolo_like = find_yaml(path) is not None and bool(with_images)
        voc_like = any(any(d.glob("*.xml")) for d in dirs)
        roboflow = any((path / n).is_file() for n in ("README.roboflow.txt", "README.dataset.txt"))
        if yolo_like or voc_like:
            return 95 if roboflow or any(d.name.lower() == "valid" for d in dirs) else 90
        # No YAML: train/images + train/labels (D-Fire and many Kaggle sets) is still YOLO.
        if any((d / "labels").is_dir() for d in with_images):
            return 80
        return 0

    def read(self, path: Path, options: ReadOptions) -> Dataset:
        """Read the export; YOLO labels win when both YOLO and VOC annotations are present."""
        if path.is_file():
            path = path.parent
        dirs = split_dirs(path)
        yolo = YoloFormat()
        if find_yaml(path) is not None and (
            any((d / "images").is_dir() for d in dirs) or yolo.detect(path)
        ):
            ds = yolo.read(path, options)
            ds.info["export_form"] = "yolo"
        elif dirs and any(any(d.glob("*.xml")) for d in dirs):
            ds = self._read_voc(dirs, options)
            ds.info["export_form"] = "voc"
            unread = _unread_notes(path, dirs, ds)
            if unread:
                ds.info.setdefault("notes", []).extend(unread)
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
        before = [img.file_name for img in ds.images]
        if make_unique_names(ds.images, prefix_of):
            notes = _rename_notes(ds.images, before, prefix_of, path)
            ds.info.setdefault("changed", []).extend(notes)
        return ds

    def _read_voc(self, dirs: dict[Path, str], options: ReadOptions) -> Dataset:
        out = Dataset(info={"changed": [], "dropped": []})
        voc = VocFormat()
        for d, split in dirs.items():
            part = voc.read(d, options)
            remap = {c.id: out.add_category(c.name) for c in part.categories}
            for img in part.images:
                img.split = split
                for ann in img.annotations:
                    ann.category_id = remap[ann.category_id]
                out.images.append(img)
            out.info["changed"] += part.info.get("changed", [])
            notes = [f"{d.name}: {n}" for n in part.info.get("notes", [])]
            if notes:
                out.info.setdefault("notes", []).extend(notes)
        return out


def _rename_notes(
    images: list[ImageItem], before: list[str], prefix_of: dict[int, str], root: Path
) -> list[dict[str, str]]:
    """A ``changed`` entry per image renamed (``before``: the names before), naming the image
    that kept the name and why they collide: another split, another folder of the split, or
    only the stem (YOLO labels are named by it; QA round 10: x.tif beside x.png read "another
    split"). When the first choice of name (``<split>__name``) was another image's, that image
    is named too (``root``: the export's folder, for its path; QA round 12: "another image
    has the same name")."""
    holder: dict[str, ImageItem] = {}
    for img, old in zip(images, before, strict=True):
        if img.file_name == old:
            holder.setdefault(stem_key(old), img)
    by_key = {stem_key(img.file_name): img for img in images}
    out = []
    for img, old in zip(images, before, strict=True):
        if img.file_name == old:
            continue
        other = holder[stem_key(old)]  # make_unique_names keeps the first of each name
        split = img.attributes.get("original_split")
        if other.attributes.get("original_split") != split:
            why = f"split {other.attributes.get('original_split')} holds {other.file_name} too"
        elif other.file_name == old:
            why = f"another folder of {f'split {split}' if split else 'the export'} holds {old} too"
        else:
            why = f"{other.file_name} has the same name but for the extension (labels are named by it)"
        first = PurePosixPath(old).with_name(f"{prefix_of[id(img)]}__{PurePosixPath(old).name}")
        if img.file_name != str(first):
            taker = by_key[stem_key(str(first))]
            why += f", and {first.name} is taken by {shown_path(taker.path, root)}"
        out.append(
            {
                "item": img.attributes["original_path"],
                "change": f"renamed to {img.file_name}: {why}",
            }
        )
    return out


def _unread_notes(path: Path, dirs: dict[Path, str], ds: Dataset) -> list[str]:
    """Notes on image files a VOC export leaves out: types sodkit does not read, and images
    in folders outside the split folders (``extra/``)."""
    read = {img.path for img in ds.images}
    walked = [f for f in walk_files(path) if f not in read]
    extra = [f for f in walked if is_image_file(f) and not any(f.is_relative_to(d) for d in dirs)]
    splits = ", ".join(shown_path(d, path) for d in dirs)
    hint = f"the split folders are read ({splits}): move the images into one to read them"
    return unread_notes(walked, extra, read, path, hint)
