"""Ultralytics YOLO: ``data.yaml`` plus one label file per image.

Read: PATH is a dataset YAML (``data.yaml``, ``fire.yaml``, ...) or the folder that holds
one. Both layouts work: ``images/train/x.jpg`` → ``labels/train/x.txt`` and
``train/images/x.jpg`` → ``train/labels/x.txt`` (the last ``images`` path part becomes
``labels``). Without a YAML, the split folders (any case) name the splits, and class
names come from ``classes.txt`` / ``obj.names`` or, failing that, are ``class_0`` ..
``class_K`` after the highest id in the label files (with a note). Split
entries may be folders, lists of folders, or ``.txt`` files listing images; paths
that do not exist as written (Roboflow writes ``fire-8/train/images`` and
``../test/images``) are resolved by dropping leading parts until they exist.

Label lines: ``class cx cy w h`` (normalised; a sixth value is a score) or
``class x1 y1 x2 y2 x3 y3 ...`` (a normalised polygon; the box is its bounds). An
image without a label file is a negative, as Ultralytics treats it.

Write: ``data.yaml``, ``images/<split>/``, ``labels/<split>/`` (unsplit: ``images/``,
``labels/``). What YOLO cannot hold (sources, groups, attributes, iscrowd) goes into
the sidecar ``sodkit.json``, which the reader applies, so YOLO round-trips losslessly
for sodkit. Crowd regions and images tagged ``unlabeled`` are left out (YOLO would
read them as background) and reported.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from curate.core.dataset import Annotation, Category, Dataset, ImageItem, Mask, split_name
from curate.core.errors import (
    AnnotationError,
    ItemError,
    MalformedFileError,
    MissingFileError,
    UsageError,
)
from curate.core.files import (
    OutputCollisionError,
    place_file,
    read_text_file,
    safe_token,
    shown_path,
    split_dirs,
    stem_key,
    unique_names,
    unread_notes,
    walk_files,
    write_new_text,
)
from curate.core.imageio import IMAGE_EXTENSIONS, is_image_file, probe
from curate.core.output import annotation_drop, image_drop
from curate.core.validate import finite_number, validated
from curate.formats.base import ReadOptions, WriteOptions, WriteResult

SIDECAR = "sodkit.json"


def find_yaml(path: Path) -> Path | None:
    """The dataset YAML of ``path`` (the file itself, ``data.yaml``, or the one YAML with ``names``)."""
    if path.is_file():
        return path if path.suffix.lower() in (".yaml", ".yml") else None
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (path / name).is_file():
            return path / name
    cands = [f for f in sorted(path.glob("*.y*ml")) if _yaml_has_names(f)]
    return cands[0] if len(cands) == 1 else None


def _yaml_has_names(f: Path) -> bool:
    try:
        text = f.read_text(encoding="utf-8", errors="replace")[:65536]
    except OSError:
        return False
    return "names" in text


def load_yaml(f: Path) -> dict[str, Any]:
    """Parse a dataset YAML with a clear error for bad syntax or a missing ``names``."""
    try:
        data = yaml.safe_load(read_text_file(f, "dataset YAML"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise MalformedFileError(
            f,
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            line=(mark.line + 1) if mark else None,
        ) from exc
    if not isinstance(data, dict) or "names" not in data:
        raise MalformedFileError(f, "dataset YAML has no 'names' (the class list)", field="names")
    for key in ("path", "train", "val", "test"):
        value = data.get(key)
        entries = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(e, str) and "\0" not in e for e in entries):
            raise MalformedFileError(
                f, f"'{key}' must be a path (text) or a list of paths, got {value!r}", field=key
            )
    return data


def class_names(data: dict[str, Any], where: Path) -> list[str]:
    """Class names by index from ``names`` (list or ``{index: name}``)."""
    names = data["names"]
    if isinstance(names, dict):
        try:
            if not all(isinstance(k, int) or (isinstance(k, str) and k.isdecimal()) for k in names):
                raise ValueError("not whole numbers")
            idx = sorted(int(k) for k in names)
        except (TypeError, ValueError) as exc:
            raise MalformedFileError(
                where, "'names' keys must be class indices", field="names"
            ) from exc
        if idx != list(range(len(idx))):
            raise MalformedFileError(
                where, f"'names' indices must be 0..{len(idx) - 1}, got {idx}", field="names"
            )
        return [str(names[k] if k in names else names[str(k)]) for k in idx]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise MalformedFileError(where, "'names' must be a list or a mapping", field="names")


def resolve_entry(entry: str, base: Path, yaml_dir: Path) -> Path | None:
    """Resolve a split entry; drop leading parts until it exists.

    Exports carry paths that only existed on their author's machine: Roboflow's
    ``fire-8/train/images`` and ``../test/images``, Colab's ``/content/drive/.../train/images``,
    Windows' ``..\\valid\\images``. The longest tail of the path that exists under the
    YAML's folder wins.
    """
    entry = entry.replace("\\", "/")
    p = Path(entry)
    if p.is_absolute() and p.exists():
        return p
    if not p.is_absolute():
        for root in (base, yaml_dir):
            if (root / p).exists():
                return (root / p).resolve()
    parts = [q for q in p.parts if q not in ("..", ".", "/")]
    for i in range(len(parts)):
        cand = yaml_dir.joinpath(*parts[i:])
        if cand.exists():
            return cand.resolve()
    return None


def label_path_for(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` part of the path becomes ``labels``; ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


def _base(yaml_file: Path, data: dict[str, Any]) -> Path:
    """The folder split entries are relative to: the YAML's ``path``, else the YAML's folder."""
    base = Path(data["path"]) if data.get("path") else yaml_file.parent
    return base if base.is_absolute() else yaml_file.parent / base


def _split_sources(
    path: Path, yaml_file: Path | None, data: dict[str, Any]
) -> list[tuple[str | None, list[Path], Path]]:
    """``(split, image files, image root)`` for each split the YAML names."""
    out: list[tuple[str | None, list[Path], Path]] = []
    if yaml_file is None:
        # Without a YAML, split folders name the splits: images/train/ or train/images/.
        images = path / "images"
        if images.is_dir():
            subs = split_dirs(images)
            loose = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in images.iterdir())
            if subs and not loose:
                return [(split, _list_images(d), d) for d, split in subs.items()]
            return [(None, _list_images(images), images)]
        parts = [(split, d / "images") for d, split in split_dirs(path).items()]
        parts = [(split, d) for split, d in parts if d.is_dir()]
        if parts:
            return [(split, _list_images(d), d) for split, d in parts]
        return [(None, _list_images(path), path)]
    yaml_dir = yaml_file.parent
    base = _base(yaml_file, data)
    seen: set[Path] = set()
    for key, value in data.items():
        split = split_name(str(key))
        if split is None or value in (None, ""):
            continue
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            resolved = resolve_entry(str(entry), base, yaml_dir)
            if resolved is None:
                raise MissingFileError(
                    yaml_file,
                    f"split '{key}' points to '{entry}', which does not exist",
                    field=str(key),
                    hint="fix the path in the YAML (relative to the YAML's folder or 'path')",
                )
            if resolved in seen:
                continue
            seen.add(resolved)
            if resolved.is_file() and resolved.suffix.lower() == ".txt":
                files = [
                    (resolved.parent / line.strip()).resolve()
                    if not Path(line.strip()).is_absolute()
                    else Path(line.strip())
                    for line in read_text_file(resolved, "image list").splitlines()
                    if line.strip()
                ]
                out.append((split, files, resolved.parent))
            else:
                out.append((split, _list_images(resolved), resolved))
    return out


def _label_lines(label: Path) -> int:
    """Objects a label file holds (its non-blank lines; 0 when it is absent or unreadable):
    what leaves the dataset with an image that is skipped."""
    try:
        return sum(1 for line in read_text_file(label, "label file").splitlines() if line.strip())
    except ItemError:
        return 0


def parse_label_file(
    label: Path, width: int, height: int, nc: int, names: list[str]
) -> list[tuple[Annotation, int | None]]:
    """Parse one YOLO label file into ``(annotation, line number)`` pairs (pixel XYXY)."""
    text = read_text_file(label, "label file")
    out: list[tuple[Annotation, int | None]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError as exc:
            raise MalformedFileError(
                label, f"non-numeric value in '{line.strip()[:60]}'", line=lineno
            ) from exc
        if not all(math.isfinite(v) for v in values):  # nan, inf, 1e400
            raise MalformedFileError(
                label, f"a value that is not a finite number in '{line.strip()[:60]}'", line=lineno
            )
        n = len(values)
        cls_f = values[0]
        if cls_f != int(cls_f) or cls_f < 0:
            raise MalformedFileError(
                label, f"class id {fields[0]} is not a non-negative integer", line=lineno
            )
        cls = int(cls_f)
        if cls >= nc:
            raise AnnotationError(
                label,
                f"class id {cls} but the YAML names {nc} classes (0..{nc - 1})",
                line=lineno,
                hint=f"classes: {', '.join(f'{i}={n}' for i, n in enumerate(names))}",
            )
        mask = None
        score = None
        if n in (5, 6):
            cx, cy, w, h = values[1:5]
            box = (
                (cx - w / 2) * width,
                (cy - h / 2) * height,
                (cx + w / 2) * width,
                (cy + h / 2) * height,
            )
            if n == 6:
                score = values[5]
        elif n >= 7 and n % 2 == 1:
            pts = np.asarray(values[1:], dtype=np.float64).reshape(-1, 2) * (width, height)
            box = (
                float(pts[:, 0].min()),
                float(pts[:, 1].min()),
                float(pts[:, 0].max()),
                float(pts[:, 1].max()),
            )
            mask = Mask("polygons", [pts])
        else:
            raise MalformedFileError(
                label,
                f"expected 5 values (class cx cy w h) or a polygon (class x1 y1 x2 y2 x3 y3 ...), got {n}",
                line=lineno,
            )
        out.append((Annotation(bbox=box, category_id=cls, mask=mask, score=score), lineno))
    return out


class YoloFormat:
    """Ultralytics YOLO detection and segmentation labels."""

    name = "yolo"
    description = "Ultralytics YOLO (data.yaml; images/train or train/images layouts)"

    def detect(self, path: Path) -> int:
        if path.is_file():
            return 85 if path.suffix.lower() in (".yaml", ".yml") and _yaml_has_names(path) else 0
        if find_yaml(path) is not None:
            return 85
        if (path / "images").is_dir() and (path / "labels").is_dir():
            return 60
        if any((d / "images").is_dir() and (d / "labels").is_dir() for d in split_dirs(path)):
            return 60
        return 0

    def read(self, path: Path, options: ReadOptions) -> Dataset:
        yaml_file = find_yaml(path)
        if yaml_file is None and path.is_file():
            raise UsageError(f"'{path}' is not a dataset YAML")
        notes: list[str] = []
        if yaml_file is not None:
            data = load_yaml(yaml_file)
            names = class_names(data, yaml_file)
        else:
            data = {}
        root = yaml_file.parent if yaml_file is not None else path
        sources = _split_sources(path if path.is_dir() else path.parent, yaml_file, data)
        if yaml_file is None:
            names = _names_without_yaml(path) or _names_from_labels(sources, notes)
        sidecar = _load_sidecar(root)
        ds = Dataset(
            categories=[Category(i, n) for i, n in enumerate(names)],
            info={"changed": [], "dropped": [], **({"notes": notes} if notes else {})},
        )
        if sidecar and "categories" in sidecar:
            ds.categories = [
                Category(int(c["id"]), str(c["name"]), str(c.get("supercategory", "")))
                for c in sidecar["categories"]
            ]
            if len(ds.categories) != len(names):
                raise MalformedFileError(
                    root / SIDECAR,
                    f"its {len(ds.categories)} categories do not match the {len(names)} class "
                    "names of the dataset",
                    hint=f"remove {SIDECAR} to read the YOLO files alone",
                )
        ids_by_index = [c.id for c in sorted(ds.categories, key=lambda c: c.id)]
        known = set(range(len(names)))
        meta = (sidecar or {}).get("images", {})
        root_resolved = root.resolve()
        no_label = 0
        seen: set[Path] = set()
        for split, files, img_root in sources:
            for img_path in options.progress.track(
                files, total=len(files), description=f"reading YOLO {split or ''}".strip()
            ):
                if img_path in seen:
                    continue
                seen.add(img_path)
                try:
                    item, had_label = self._read_item(
                        img_path, img_root, root, split, names, known, options, ds
                    )
                except ItemError as err:
                    options.policy.handle(
                        err,
                        left_out=img_path,
                        left_out_annotations=_label_lines(label_path_for(img_path)),
                    )
                    continue
                no_label += not had_label
                for ann in item.annotations:
                    ann.category_id = ids_by_index[ann.category_id]
                if meta:
                    _apply_meta(item, meta.get(_meta_key(item.path, root_resolved)))
                ds.images.append(item)
            self._check_label_dir(files, img_root, split, options, ds)
        if no_label:
            ds.info.setdefault("notes", []).append(
                f"{no_label} image(s) have no label file: read as negatives (Ultralytics' rule)"
            )
        unread = _unread_notes(path, yaml_file, data, sources)
        if unread:
            ds.info.setdefault("notes", []).extend(unread)
        return ds

    def _read_item(
        self,
        img_path: Path,
        img_root: Path,
        root: Path,
        split: str | None,
        names: list[str],
        known: set[int],
        options: ReadOptions,
        ds: Dataset,
    ) -> tuple[ImageItem, bool]:
        info = probe(img_path, check_tail=options.check_images, max_pixels=options.max_pixels)
        item = ImageItem(
            file_name=_file_name(img_path, img_root),
            path=img_path,
            width=info.width,
            height=info.height,
            split=split,
            attributes={"original_path": str(img_path)},
        )
        label = label_path_for(img_path)
        if not label.is_file():
            return item, False
        raw = parse_label_file(label, info.width, info.height, len(names), names)
        item.annotations = validated(item, raw, known, where=str(label), changed=ds.info["changed"])
        return item, True

    def _check_label_dir(
        self,
        files: list[Path],
        img_root: Path,
        split: str | None,
        options: ReadOptions,
        ds: Dataset,
    ) -> None:
        """A split's label folder (``files``: its images, under ``img_root``): when missing, a
        note (its images are read as negatives); label files in it with no image are reported
        (their objects would be lost silently); one label file that serves images of one name
        with different extensions is noted, and each such image listed under ``changed``."""
        if not files:
            return
        label_dir = label_path_for(files[0]).parent
        if label_dir == files[0].parent:
            return
        if not label_dir.is_dir():
            ds.info.setdefault("notes", []).append(
                f"{split or 'the dataset'}: no labels folder ({label_dir}), so its "
                f"{len(files)} image(s) are read as negatives; if the export lost its labels, "
                "they are not background"
            )
            return
        by_label: dict[Path, list[Path]] = {}
        for f in files:
            by_label.setdefault(label_path_for(f), []).append(f)
        shared = {lab: imgs for lab, imgs in by_label.items() if len(imgs) > 1 and lab.is_file()}
        if shared:
            lab, imgs = next(iter(shared.items()))
            ds.info.setdefault("notes", []).append(
                f"{split or 'the dataset'}: {len(shared)} label file(s) each serve images "
                f"of one name with different extensions (e.g. {' and '.join(i.name for i in imgs)} "
                f"both read {lab.name}): each image got its boxes; check that they show one picture"
            )
        for lab, imgs in shared.items():  # QA round 12: said on the terminal, not in the manifest
            for img in imgs:
                others = " and ".join(_file_name(i, img_root) for i in imgs if i != img)
                ds.info["changed"].append(
                    {
                        "item": _file_name(img, img_root),
                        "change": f"boxes read from {lab.name}, the label file of {others} too "
                        "(YOLO names label files by the image's name without the extension): "
                        "check that they show one picture",
                    }
                )
        stems = set(by_label)
        for lab in sorted(label_dir.rglob("*.txt")):
            if lab not in stems and lab.name != "classes.txt":
                options.policy.handle(
                    MissingFileError(
                        lab,
                        "label file has no matching image",
                        hint="add the image or remove the label file",
                    )
                )

    # -- writing ----------------------------------------------------------------
    def write(self, dataset: Dataset, out: Path, options: WriteOptions) -> WriteResult:
        result = WriteResult()
        splits = dataset.splits()
        if "all" in splits and len(splits) > 1:
            raise UsageError(
                "some images have a split and some do not; split the whole dataset first"
            )
        cats = sorted(dataset.categories, key=lambda c: c.id)
        index_of = {c.id: i for i, c in enumerate(cats)}
        names = {c.id: c.name for c in cats}
        task = options.yolo_task
        if task == "auto":
            anns = [a for _, a in dataset.annotations() if not a.iscrowd]
            task = "segment" if anns and all(a.mask is not None for a in anns) else "detect"
        meta: dict[str, Any] = {}
        for split, images in splits.items():
            img_dir = out / "images" if split == "all" else out / "images" / split
            lab_dir = out / "labels" if split == "all" else out / "labels" / split
            lab_dir.mkdir(parents=True, exist_ok=True)
            written = []
            for img in images:
                drop = _left_out(img)
                if drop is None:
                    written.append(img)
                else:
                    result.dropped.append(drop)
            file_names, renamed = _written_names(written, img_dir, lab_dir, out)
            result.changed += renamed
            for img, file_name in options.progress.track(
                zip(written, file_names, strict=True),
                total=len(written),
                description=f"writing YOLO {split}",
            ):
                lines: list[str] = []
                ann_meta: list[dict[str, Any]] = []
                for k, ann in enumerate(img.annotations):
                    if ann.iscrowd:
                        result.dropped.append(
                            annotation_drop(
                                img.file_name,
                                "crowd region: YOLO has no ignore regions",
                                ann,
                                k,
                                names[ann.category_id],
                            )
                        )
                        continue
                    lines.append(_label_line(ann, index_of[ann.category_id], img, task, result))
                    extra = {
                        k: v for k, v in (("attributes", ann.attributes), ("score", ann.score)) if v
                    }
                    ann_meta.append(extra)
                rel = PurePosixPath(file_name)
                write_new_text(
                    lab_dir / rel.with_suffix(".txt"), "\n".join(lines) + ("\n" if lines else "")
                )
                if options.copy_images:
                    place_file(img.path, img_dir / file_name, options.link)
                m: dict[str, Any] = {}
                if img.source:
                    m["source"] = img.source
                if img.group is not None:
                    m["group"] = img.group
                if img.attributes:
                    m["attributes"] = img.attributes
                if any(ann_meta):
                    m["annotations"] = ann_meta
                m["split"] = img.split
                meta[str((img_dir / file_name).relative_to(out).as_posix())] = m
                result.images += 1
                result.annotations += len(lines)
        data: dict[str, Any] = {}
        if "all" in splits:
            data["train"] = "images"
        else:
            for s in ("train", "val", "test"):
                if s in splits:
                    data[s] = f"images/{s}"
        data["nc"] = len(cats)
        data["names"] = [c.name for c in cats]
        (out / "data.yaml").write_text(
            "# written by sodkit; paths are relative to this file's folder\n"
            + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
            encoding="utf-8",
        )
        with open(out / SIDECAR, "w", encoding="utf-8") as fh:
            fh.write(
                json.dumps(
                    {
                        "format": "sodkit-yolo-sidecar",
                        "version": 1,
                        "task": task,
                        "categories": [
                            {"id": c.id, "name": c.name, "supercategory": c.supercategory}
                            for c in cats
                        ],
                        "images": meta,
                    },
                    separators=(",", ":"),
                    ensure_ascii=False,
                )
            )
        result.files += ["data.yaml", SIDECAR]
        return result


def _left_out(img: ImageItem) -> dict[str, Any] | None:
    """The ``dropped`` entry of an image YOLO cannot hold (None: it is written)."""
    if img.attributes.get("unlabeled"):
        return image_drop(img.file_name, "unlabeled image: YOLO would read it as a negative")
    if img.annotations and all(a.iscrowd for a in img.annotations):
        # Its objects are all in crowd regions, which YOLO cannot hold: an empty
        # label file would teach "nothing here" where there are objects.
        return image_drop(
            img.file_name,
            "only crowd regions: YOLO has no ignore regions and would read the image as a negative",
            crowd_regions=len(img.annotations),
        )
    return None


def _written_names(
    images: list[ImageItem], img_dir: Path, lab_dir: Path, out: Path
) -> tuple[list[str], list[dict[str, str]]]:
    """The names the images of one split are written under (into ``img_dir``, their labels
    into ``lab_dir``, both in ``out``), and a ``changed`` entry for each that is not the
    image's own.

    YOLO names a label file by its image's name without the extension, so x.png and x.tif
    (which the reader lets both read x.txt) cannot both keep theirs: the later one gets its
    extension as a prefix (``tif__x.tif``, labels ``tif__x.txt``; see
    :func:`~curate.core.files.unique_names`). QA round 12: writing stopped on
    ``labels/train/x.txt``. Two images of one name are an :class:`OutputCollisionError`
    naming both.
    """
    first: dict[str, ImageItem] = {}
    for img in images:
        other = first.setdefault(img.file_name, img)
        if other is not img:
            raise OutputCollisionError(img_dir / img.file_name, (other.path, img.path))
    prefixes = [safe_token(PurePosixPath(i.file_name).suffix[1:].lower()) for i in images]
    names = unique_names([i.file_name for i in images], prefixes)
    kept = {
        stem_key(n): (img_dir / n).relative_to(out).as_posix()
        for i, n in zip(images, names, strict=True)
        if n == i.file_name
    }
    changed = []
    for img, name in zip(images, names, strict=True):
        if name == img.file_name:
            continue
        holder = kept[stem_key(img.file_name)]
        a, b = PurePosixPath(holder), PurePosixPath(img.file_name)
        differ = " and ".join(
            what
            for what, same in (
                ("letter case", a.stem == b.stem),
                ("extension", a.suffix == b.suffix),
            )
            if not same
        )
        changed.append(
            {
                "item": img.file_name,
                "change": f"written as {(img_dir / name).relative_to(out).as_posix()}, labels "
                f"{(lab_dir / name).with_suffix('.txt').relative_to(out).as_posix()}: {holder} "
                f"has the same name but for the {differ}, "
                "and YOLO names label files by the name without the extension",
            }
        )
    return names, changed


def _file_name(img_path: Path, img_root: Path) -> str:
    """An image's name in the dataset: its path under its split's folder (POSIX form), else
    its file name."""
    try:
        return img_path.relative_to(img_root).as_posix()
    except ValueError:
        return img_path.name


def _label_line(ann: Annotation, cls: int, img: ImageItem, task: str, result: WriteResult) -> str:
    w, h = float(img.width), float(img.height)
    if task == "segment" and ann.mask is not None:
        raw = ann.mask.to_polygons(img.height, img.width)
        # YOLO's coordinates lie in [0, 1]: vertices outside the image are clamped to it
        # (a changed item when one moved by a pixel or more, not just rounding).
        polys = [np.clip(p, 0.0, (w, h)) for p in raw]
        if any(float(np.abs(c - p).max()) >= 1.0 for c, p in zip(polys, raw, strict=True)):
            result.changed.append(
                {
                    "item": img.file_name,
                    "change": "polygon vertices outside the image clamped to it",
                }
            )
        if polys:
            poly = max(polys, key=lambda p: _poly_area(p))
            if len(polys) > 1:
                result.changed.append(
                    {
                        "item": img.file_name,
                        "change": f"mask with {len(polys)} parts written as its largest polygon",
                    }
                )
            coords = " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in poly)
            return f"{cls} {coords}"
    x1, y1, x2, y2 = ann.bbox
    return f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"


def _poly_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _names_without_yaml(path: Path) -> list[str] | None:
    """Class names from ``classes.txt`` or ``obj.names`` (darknet), if there is one."""
    for cand in (path / "classes.txt", path / "labels" / "classes.txt", path / "obj.names"):
        if cand.is_file():
            return [
                ln.strip() for ln in read_text_file(cand, "class list").splitlines() if ln.strip()
            ]
    return None


def _names_from_labels(
    sources: list[tuple[str | None, list[Path], Path]], notes: list[str]
) -> list[str]:
    """``class_0 .. class_K`` for the highest class id in the label files (no names given).

    Lines that do not start with an integer are skipped here; reading reports them.
    """
    top = -1
    for _split, files, _root in sources:
        for img in files:
            label = label_path_for(img)
            try:
                text = label.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for line in text.splitlines():
                head = line.split(maxsplit=1)[:1]
                if head and head[0].isdigit():
                    top = max(top, int(head[0]))
    names = [f"class_{i}" for i in range(top + 1)]
    if names:
        notes.append(
            f"no data.yaml or classes.txt: classes named {names[0]}..{names[-1]} after the ids "
            "in the label files; add a data.yaml with 'names' (or a classes.txt) to name them"
        )
    return names


def _unread_notes(
    path: Path,
    yaml_file: Path | None,
    data: dict[str, Any],
    sources: list[tuple[str | None, list[Path], Path]],
) -> list[str]:
    """Notes on image files no split reads: types sodkit does not read, and images in
    folders outside the splits (``extra/``, ``train/more_images/``).

    The dataset's folder is searched: PATH without a YAML; with one, the YAML's ``path``
    or else its folder, whichever holds every split (``path`` often only existed on the
    author's machine). When neither does, only the split folders are, for unread types.
    """
    roots = [r for _, _, r in sources]
    if yaml_file is None:
        cands = [path]
        hint = (
            "without a data.yaml, the images folders of split folders are read "
            f"({', '.join(shown_path(r, path) for r in roots)}): move the images into one "
            "to read them"
        )
    else:
        cands = [_base(yaml_file, data).resolve(), yaml_file.parent.resolve()]
        keys = [str(k) for k, v in data.items() if split_name(str(k)) and v not in (None, "")]
        hint = (
            f"{yaml_file.name} names the splits read ({', '.join(keys)}): "
            "add a folder to one of them to read it"
            if keys
            else f"{yaml_file.name} names no split (train, val, test): add them to read them"
        )
    root = next((c for c in cands if c.is_dir() and all(r.is_relative_to(c) for r in roots)), None)
    read = {p for _, files, _ in sources for p in files}
    if root is not None:
        walked = list(walk_files(root))
        extra = [f for f in walked if is_image_file(f) and f not in read]
    else:
        root = cands[0]
        walked = sorted({f for r in set(roots) for f in walk_files(r)})
        extra = []
    return unread_notes(walked, extra, read, root, hint)


def _load_sidecar(root: Path) -> dict[str, Any] | None:
    f = root / SIDECAR
    if not f.is_file():
        return None
    try:
        data = json.loads(read_text_file(f, "sodkit sidecar"))
    except json.JSONDecodeError as exc:
        raise MalformedFileError(f, f"invalid JSON: {exc.msg}", line=exc.lineno) from exc
    problem = _sidecar_problem(data)
    if problem is not None:
        raise MalformedFileError(
            f,
            f"not as sodkit writes it: {problem}",
            hint=f"remove {SIDECAR} to read the YOLO files alone (its classes, sources and "
            "scores are then lost)",
        )
    return data  # type: ignore[no-any-return]


def _sidecar_problem(data: Any) -> str | None:
    """What in a sidecar does not have the shape sodkit writes (None: nothing)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    cats = data.get("categories")
    if cats is not None:
        if not isinstance(cats, list) or not cats:
            return "'categories' must be a non-empty list"
        ids = []
        for c in cats:
            if not (
                isinstance(c, dict)
                and isinstance(c.get("id"), int)
                and not isinstance(c.get("id"), bool)
                and isinstance(c.get("name"), str)
            ):
                return f"a category must be {{'id': whole number, 'name': text}}, got {c!r}"
            ids.append(c["id"])
        if len(set(ids)) != len(ids):
            return "category ids repeat"
    images = data.get("images", {})
    if not isinstance(images, dict):
        return "'images' must be an object"
    for key, m in images.items():
        if not isinstance(m, dict):
            return f"images[{key!r}] must be an object"
        for field in ("source", "group", "split"):
            if m.get(field) is not None and not isinstance(m[field], str):
                return f"images[{key!r}].{field} must be text"
        if not isinstance(m.get("attributes", {}), dict):
            return f"images[{key!r}].attributes must be an object"
        anns = m.get("annotations", [])
        if not isinstance(anns, list) or not all(isinstance(a, dict) for a in anns):
            return f"images[{key!r}].annotations must be a list of objects"
        for a in anns:
            score = a.get("score")
            if score is not None and not finite_number(score):
                return f"images[{key!r}]: a score must be a finite number, got {score!r}"
            if not isinstance(a.get("attributes") or {}, dict):
                return f"images[{key!r}]: annotation attributes must be an object"
    return None


def _meta_key(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.name


def _apply_meta(item: ImageItem, m: dict[str, Any] | None) -> None:
    if not m:
        return
    item.source = m.get("source", item.source)
    item.group = m.get("group", item.group)
    if "split" in m:
        item.split = m["split"]
    attrs = dict(m.get("attributes", {}))
    item.attributes = {**attrs} if attrs else item.attributes
    for ann, am in zip(item.annotations, m.get("annotations", []), strict=False):
        if am.get("attributes"):
            ann.attributes = dict(am["attributes"])
        if am.get("score") is not None:
            ann.score = float(am["score"])
