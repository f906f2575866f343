"""COCO instances JSON: boxes, polygons, RLE, iscrowd.

Read: a ``.json`` file, or a folder with ``annotations.json`` or
``annotations/instances_<split>.json`` (one split per file; the split name comes from
the file name). Images are looked up beside the JSON, in ``images/``, ``images/<split>/``
or ``<split>/``. ``area`` is recomputed (exports often carry wrong ones); fields sodkit
does not model are kept as attributes and written back.

The file's top-level ``info`` dict and ``licenses`` list are kept in ``Dataset.info``
(``coco_info``, ``coco_licenses``); image and annotation ids in ``ImageItem.id`` and
``Annotation.id`` as read (strings too).

Write: unsplit datasets as ``annotations.json`` + ``images/``; split ones as
``annotations/instances_<split>.json`` + ``images/<split>/``. Category ids are kept
(shifted to start at 1 when the dataset uses 0, as YOLO does). Image and annotation ids
are kept when every one written is an integer and unique over the whole output (all
splits together; annotation ids also >= 1, since pycocotools' evaluation counts an
annotation id 0 as unmatched); otherwise they are numbered from 1, each input id is kept
as ``original_id``, and the write result lists the renumbering. ``licenses`` is written
back when read; ``info`` is the input's, updated with sodkit's fields.
"""

from __future__ import annotations

import json
import math
import numbers
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from curate.core.dataset import SPLITS, Annotation, Category, Dataset, ImageItem, Mask
from curate.core.errors import (
    AnnotationError,
    ItemError,
    MalformedFileError,
    MissingFileError,
    UsageError,
)
from curate.core.files import place_file
from curate.core.imageio import probe
from curate.core.output import is_own_file
from curate.core.validate import finite_number, validated
from curate.formats.base import ReadOptions, WriteOptions, WriteResult

_IMAGE_KEYS = {"id", "file_name", "width", "height", "source", "group", "split"}
_ANN_KEYS = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "score"}
# Dataset.info keys that are sodkit's bookkeeping, never written into the COCO ``info``.
_INTERNAL_INFO = {"path", "changed", "dropped", "notes", "coco_info", "coco_licenses"}


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise MalformedFileError(
            path, f"invalid JSON: {exc.msg}", line=exc.lineno, hint="fix the file or re-export it"
        ) from exc
    except UnicodeDecodeError as exc:
        raise MalformedFileError(
            path, "not UTF-8 text", hint="is this really a JSON file?"
        ) from exc
    except RecursionError as exc:
        raise MalformedFileError(path, "JSON nested too deeply to read") from exc


def _is_coco_dict(data: Any) -> bool:
    return isinstance(data, dict) and "images" in data and "annotations" in data


def _check_shape(f: Path, data: dict[str, Any]) -> None:
    """COCO's lists are lists of objects, and their ids plain numbers or strings: anything
    else is a malformed file (a clear error, not a crash deep in the reader). Licenses are
    only kept, never used: entries that are not objects are left alone there."""
    for key in ("images", "annotations", "categories", "licenses"):
        items = data.get(key, [])
        if key == "licenses":
            items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        if not isinstance(items, list):
            raise MalformedFileError(f, f"'{key}' must be a list", field=key)
        for k, item in enumerate(items):
            if not isinstance(item, dict):
                raise MalformedFileError(f, f"{key}[{k}] must be an object", field=key)
            for id_key in ("id", "image_id", "category_id"):
                value = item.get(id_key)
                if value is not None and not _plain_id(value):
                    raise MalformedFileError(
                        f,
                        f"{key}[{k}].{id_key} must be a whole number or a string, got {value!r}",
                        field=key,
                    )


def _plain_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    return isinstance(value, (int, str))


def _coco_files(path: Path) -> list[tuple[Path, str | None]]:
    """The COCO JSON files of ``path`` with their split names (None when unsplit)."""
    if path.is_file():
        return [(path, _split_from_name(path))]
    found: list[tuple[Path, str | None]] = []
    if (path / "annotations.json").is_file():
        found.append((path / "annotations.json", None))
    ann_dir = path / "annotations"
    if ann_dir.is_dir():
        for f in sorted(ann_dir.glob("*.json")):
            found.append((f, _split_from_name(f)))
    if not found:
        for f in sorted(path.glob("*.json")):
            if not is_own_file(f) and _peek_is_coco(f):
                found.append((f, _split_from_name(f)))
    return found


def _split_from_name(f: Path) -> str | None:
    stem = f.stem.lower()
    for prefix in ("instances_", "annotations_", ""):
        if stem.startswith(prefix):
            rest = stem[len(prefix) :]
            if rest in SPLITS or rest in ("valid", "validation"):
                return "val" if rest in ("valid", "validation") else rest
            for s in SPLITS:
                if rest.startswith(s) and rest[len(s) :].isdigit():  # e.g. val2017
                    return s
    return None


def _peek_is_coco(f: Path) -> bool:
    try:
        with open(f, encoding="utf-8") as fh:
            head = fh.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return '"images"' in head or '"annotations"' in head or '"categories"' in head


class CocoFormat:
    """COCO instances JSON."""

    name = "coco"
    description = "COCO instances JSON (boxes, polygons, RLE, iscrowd)"

    def detect(self, path: Path) -> int:
        if path.is_file():
            return 80 if path.suffix.lower() == ".json" and _peek_is_coco(path) else 0
        if (path / "annotations.json").is_file():
            return 80
        ann = path / "annotations"
        if ann.is_dir() and any(_peek_is_coco(f) for f in ann.glob("*.json")):
            return 80
        return 40 if any(_peek_is_coco(f) for f in path.glob("*.json") if not is_own_file(f)) else 0

    # -- reading ----------------------------------------------------------------
    def read(self, path: Path, options: ReadOptions) -> Dataset:
        files = _coco_files(path)
        if not files:
            raise UsageError(f"no COCO JSON found in '{path}'")
        ds = Dataset(info={"changed": [], "dropped": []})
        cat_ids: dict[int, int] = {}  # file category id -> dataset id
        for f, split in files:
            data = _load_json(f)
            if not _is_coco_dict(data):
                raise MalformedFileError(
                    f, "not a COCO instances file: needs 'images' and 'annotations' lists"
                )
            _check_shape(f, data)
            _keep_file_meta(f, data, ds.info)
            self._read_one(f, split, data, ds, cat_ids, options)
        return ds

    def _read_one(
        self,
        f: Path,
        split: str | None,
        data: dict[str, Any],
        ds: Dataset,
        cat_map: dict[int, int],
        options: ReadOptions,
    ) -> None:
        policy = options.policy
        names_by_file_id: dict[int, str] = {}
        for c in data.get("categories", []):
            try:
                cid, cname = int(c["id"]), str(c["name"])
            except (KeyError, TypeError, ValueError) as exc:
                raise MalformedFileError(
                    f, f"category entry {c!r} needs 'id' and 'name'", field="categories"
                ) from exc
            names_by_file_id[cid] = cname
            existing = ds.category_ids().get(cname)
            if existing is None:
                if cid in ds.category_names():
                    new_id = ds.add_category(cname, str(c.get("supercategory", "")))
                else:
                    ds.categories.append(Category(cid, cname, str(c.get("supercategory", ""))))
                    new_id = cid
                cat_map[cid] = new_id
            else:
                cat_map[cid] = existing
        anns_by_image: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
        for k, a in enumerate(data["annotations"]):
            anns_by_image.setdefault(a.get("image_id"), []).append((k, a))
        root = f.parent.parent if f.parent.name == "annotations" else f.parent
        image_dirs = _image_dirs(root, split)
        class_hint = "categories: " + ", ".join(
            f"{i}={n}" for i, n in sorted(names_by_file_id.items())
        )
        # Images sharing an id cannot be told apart by their annotations (QA round 10: one
        # got the other's box, clipped, and lost its own three): each is a bad item.
        names_of: dict[Any, list[str]] = {}
        for e in data["images"]:
            if isinstance(e, dict) and e.get("id") is not None:
                names_of.setdefault(e.get("id"), []).append(str(e.get("file_name")))
        for entry in options.progress.track(
            data["images"], total=len(data["images"]), description=f"reading {f.name}"
        ):
            try:
                shared = names_of.get(entry.get("id")) if isinstance(entry, dict) else None
                if shared is not None and len(shared) > 1:
                    raise AnnotationError(
                        f,
                        f"image id {entry.get('id')!r} is used by {len(shared)} images "
                        f"({', '.join(shared[:3])}{', ...' if len(shared) > 3 else ''}): "
                        "their annotations cannot be told apart",
                        field="id",
                        hint="give each image its own id; these images are left out",
                    )
                img = self._read_image(f, entry, split, image_dirs, options)
                raw: list[tuple[Annotation, int | None]] = []
                for k, a in anns_by_image.get(entry.get("id"), []):
                    raw.append((self._read_ann(f, k, a, img, names_by_file_id), None))
                known = set(names_by_file_id)
                where = f"{f}:image {entry.get('file_name')}"
                anns = validated(
                    img, raw, known, where=where, changed=ds.info["changed"], class_hint=class_hint
                )
                for ann in anns:
                    ann.category_id = cat_map[ann.category_id]
                img.annotations = anns
            except ItemError as err:
                entry_id = entry.get("id") if isinstance(entry, dict) else None
                n_anns = len(anns_by_image.get(entry_id, [])) if entry_id is not None else 0
                policy.handle(
                    err,
                    left_out=entry.get("file_name") if isinstance(entry, dict) else None,
                    left_out_annotations=n_anns,
                )
                continue
            ds.images.append(img)
        ids = {e.get("id") for e in data["images"] if isinstance(e, dict)}
        for image_id, orphans in anns_by_image.items():
            if image_id not in ids:
                policy.handle(
                    AnnotationError(
                        f,
                        f"{len(orphans)} annotation(s) (first: #{orphans[0][0]}) refer to image_id "
                        f"{image_id!r}, which no image has",
                        field="image_id",
                        hint="fix the image_id or add the image; they are left out",
                    )
                )

    def _read_image(
        self,
        f: Path,
        entry: dict[str, Any],
        split: str | None,
        image_dirs: list[Path],
        options: ReadOptions,
    ) -> ImageItem:
        try:
            file_name = str(entry["file_name"])
        except (KeyError, TypeError) as exc:
            raise MalformedFileError(
                f, f"image entry {str(entry)[:80]} has no 'file_name'", field="images"
            ) from exc
        width = _int_or_none(entry.get("width"))
        height = _int_or_none(entry.get("height"))
        path = _find_image(file_name, image_dirs)
        if options.check_images or not (width and height):
            if path is None:
                raise MissingFileError(
                    image_dirs[0] / file_name,
                    f"image '{file_name}' named in {f.name} does not exist",
                    hint=f"looked in {', '.join(str(d) for d in image_dirs)}",
                )
            info = probe(path, check_tail=options.check_images, max_pixels=options.max_pixels)
            if width and height and (width, height) != (info.width, info.height):
                raise AnnotationError(
                    f,
                    f"image '{file_name}' is {info.width}x{info.height} but the JSON says {width}x{height}",
                    field="images",
                    hint="fix the JSON; if the photo has an EXIF rotation, labels must be in the rotated frame",
                )
            width, height = info.width, info.height
        attrs = {k: v for k, v in entry.items() if k not in _IMAGE_KEYS}
        return ImageItem(
            file_name=file_name,
            path=path if path is not None else image_dirs[0] / file_name,
            width=int(width or 0),
            height=int(height or 0),
            source=str(entry.get("source", "")),
            group=entry.get("group"),
            split=entry.get("split", split),
            attributes=attrs,
            id=entry.get("id"),
        )

    def _read_ann(
        self, f: Path, k: int, a: dict[str, Any], img: ImageItem, names: dict[int, str]
    ) -> Annotation:
        where = f"{f}"
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
            cid = int(a["category_id"])
            if not all(math.isfinite(v) for v in (x, y, w, h)):
                raise ValueError("not finite")
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise MalformedFileError(
                where,
                f"annotation #{k} (id {a.get('id')}) needs 'bbox' [x,y,w,h] and 'category_id'",
                field="annotations",
            ) from exc
        mask = None
        seg = a.get("segmentation")
        if seg:
            if isinstance(seg, list):
                if all(isinstance(p, list) for p in seg):
                    polys = _polygons(seg)
                    if polys is None:
                        raise MalformedFileError(
                            where,
                            f"annotation #{k}: a polygon must be an even number of finite "
                            "x, y values",
                            field="segmentation",
                        )
                    mask = Mask.from_polygons(p for p in polys if p.size >= 6)
                    if not mask.data:
                        mask = None
            elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
                if not _rle_ok(seg):
                    raise MalformedFileError(
                        where,
                        f"annotation #{k}: RLE needs 'size' [height, width] and 'counts' (a "
                        "string, or a list of whole numbers)",
                        field="segmentation",
                    )
                if img.width > 0 and img.height > 0 and seg["size"] != [img.height, img.width]:
                    raise AnnotationError(
                        where,
                        f"annotation #{k}: RLE size {seg['size']} is not its image's "
                        f"[{img.height}, {img.width}] (height, width)",
                        field="segmentation",
                    )
                mask = Mask.from_rle(seg)
            else:
                raise MalformedFileError(
                    where, f"annotation #{k}: unknown segmentation form", field="segmentation"
                )
        attrs = {key: v for key, v in a.items() if key not in _ANN_KEYS}
        score = a.get("score")
        if score is not None and not finite_number(score):
            raise MalformedFileError(
                where, f"annotation #{k}: 'score' must be a number, got {score!r}", field="score"
            )
        return Annotation(
            bbox=(x, y, x + w, y + h),
            category_id=cid,
            mask=mask,
            iscrowd=bool(a.get("iscrowd", 0)),
            score=float(score) if score is not None else None,
            attributes=attrs,
            id=a.get("id"),
        )

    # -- writing ----------------------------------------------------------------
    def write(self, dataset: Dataset, out: Path, options: WriteOptions) -> WriteResult:
        result = WriteResult()
        splits = dataset.splits()
        if "all" in splits and len(splits) > 1:
            raise UsageError(
                "some images have a split and some do not; split the whole dataset first"
            )
        shift = 1 if min((c.id for c in dataset.categories), default=1) < 1 else 0
        shift = max(shift, 1 - min((c.id for c in dataset.categories), default=1))
        categories = [
            {"id": c.id + shift, "name": c.name, "supercategory": c.supercategory}
            for c in sorted(dataset.categories, key=lambda c: c.id)
        ]
        ordered = [img for images in splits.values() for img in images]
        image_ids = _plan_ids([img.id for img in ordered], first=None)
        ann_ids = _plan_ids([a.id for img in ordered for a in img.annotations], first=1)
        for plan, what in ((image_ids, "images"), (ann_ids, "annotations")):
            if plan.renumbered and plan.had_ids:
                result.changed.append({"item": what, "change": plan.message(what)})
        header: dict[str, Any] = {"info": _coco_info(dataset.info)}
        if isinstance(dataset.info.get("coco_licenses"), list):
            header["licenses"] = dataset.info["coco_licenses"]
        next_image = iter(image_ids.ids)
        next_ann = iter(ann_ids.ids)
        for split, images in splits.items():
            img_dir = out / "images" if split == "all" else out / "images" / split
            json_path = (
                out / "annotations.json"
                if split == "all"
                else out / "annotations" / f"instances_{split}.json"
            )
            coco_images: list[dict[str, Any]] = []
            coco_anns: list[dict[str, Any]] = []
            for img in options.progress.track(
                images, total=len(images), description=f"writing COCO {split}"
            ):
                image_id = next(next_image)
                entry: dict[str, Any] = {
                    "id": image_id,
                    "file_name": img.file_name,
                    "width": img.width,
                    "height": img.height,
                }
                if img.source:
                    entry["source"] = img.source
                if img.group is not None:
                    entry["group"] = img.group
                for k, v in img.attributes.items():
                    if k not in _IMAGE_KEYS:
                        entry[k] = v
                if image_ids.renumbered:
                    _keep_original_id(entry, img.id)
                coco_images.append(entry)
                for ann in img.annotations:
                    coco_ann = _ann_to_coco(ann, next(next_ann), image_id, shift, img)
                    if ann_ids.renumbered:
                        _keep_original_id(coco_ann, ann.id)
                    coco_anns.append(coco_ann)
                if options.copy_images:
                    place_file(img.path, img_dir / img.file_name, options.link)
            json_path.parent.mkdir(parents=True, exist_ok=True)
            with open(json_path, "w", encoding="utf-8") as fh:
                # dumps, not dump: dump streams through the pure-Python encoder (~5x slower).
                fh.write(
                    json.dumps(
                        {
                            **header,
                            "images": coco_images,
                            "annotations": coco_anns,
                            "categories": categories,
                        },
                        separators=(",", ":"),
                        ensure_ascii=False,
                    )
                )
            result.files.append(str(json_path.relative_to(out)))
            result.images += len(coco_images)
            result.annotations += len(coco_anns)
        return result


@dataclass(frozen=True, slots=True)
class _IdPlan:
    """The ids to write, in order, and why the input's were not kept (when they were not)."""

    ids: list[int]
    renumbered: bool
    had_ids: int  # items that came with an id of their own
    problems: Counter[str]  # reason -> number of items

    def message(self, what: str) -> str:
        """``image ids renumbered from 1: 3 images had colliding/missing ids (...); ...``"""
        n = self.problems.total()
        reasons = ", ".join(f"{k} {r}" for r, k in self.problems.items())
        return (
            f"{what[:-1]} ids renumbered from 1: {n} {what if n != 1 else what[:-1]} had "
            f"colliding/missing ids ({reasons}); input ids kept as original_id"
        )


def _plan_ids(own: Sequence[Any], *, first: int | None) -> _IdPlan:
    """Keep ``own`` when all are integers (``>= first`` if given) and unique; else 1..N."""
    as_int = [_integer(v) for v in own]
    seen = Counter(i for i in as_int if i is not None)
    problems: Counter[str] = Counter()
    for v, i in zip(own, as_int, strict=True):
        if v is None:
            problems["missing"] += 1
        elif i is None:
            problems["not an integer"] += 1
        elif first is not None and i < first:
            problems[f"below {first}"] += 1
        elif seen[i] > 1:
            problems["colliding"] += 1
    had = sum(v is not None for v in own)
    if not problems:
        return _IdPlan([i for i in as_int if i is not None], False, had, problems)
    return _IdPlan(list(range(1, len(own) + 1)), True, had, problems)


def _integer(v: Any) -> int | None:
    """``v`` as an int when it is one (not a bool, not a numeric string), else None."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return int(v)
    return None


def _keep_original_id(entry: dict[str, Any], own: Any) -> None:
    """Record the input's id on a renumbered entry; an ``original_id`` it already has wins."""
    if own is not None:
        i = _integer(own)
        entry.setdefault("original_id", i if i is not None else own)


def _coco_info(info: dict[str, Any]) -> dict[str, Any]:
    """The input's COCO ``info`` (year, version, url, ...) updated with sodkit's fields."""
    kept = info.get("coco_info")
    return {
        **(kept if isinstance(kept, dict) else {}),
        "description": "written by sodkit",
        **_jsonable_info(info),
    }


def _jsonable_info(info: dict[str, Any]) -> dict[str, Any]:
    """sodkit's scalar fields of ``Dataset.info`` (never ``path`` nor the internal lists)."""
    return {
        k: v
        for k, v in info.items()
        if isinstance(v, (str, int, float, bool)) and k not in _INTERNAL_INFO
    }


def _keep_file_meta(f: Path, data: dict[str, Any], info: dict[str, Any]) -> None:
    """Keep a file's top-level ``info`` and ``licenses`` in ``info`` (an earlier file wins)."""
    file_info = data.get("info")
    if isinstance(file_info, dict):
        kept_info = info.setdefault("coco_info", {})
        for k, v in file_info.items():
            kept_info.setdefault(k, v)
    licenses = data.get("licenses")
    if not isinstance(licenses, list):
        return
    kept = info.setdefault("coco_licenses", [])
    by_id = {lic.get("id"): lic for lic in kept if isinstance(lic, dict)}
    for lic in licenses:
        if lic in kept:
            continue
        old = by_id.get(lic.get("id")) if isinstance(lic, dict) else None
        if old is not None:
            info.setdefault("notes", []).append(
                f"{f}: license id {lic.get('id')!r} is {lic!r} here but {old!r} in an earlier "
                "file; the earlier one is written"
            )
            continue
        kept.append(lic)
        if isinstance(lic, dict):
            by_id[lic.get("id")] = lic


def _ann_to_coco(
    ann: Annotation, ann_id: int, image_id: int, shift: int, img: ImageItem
) -> dict[str, Any]:
    x1, y1, x2, y2 = ann.bbox
    out: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": ann.category_id + shift,
        "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
        "iscrowd": int(ann.iscrowd),
    }
    if ann.mask is not None:
        if ann.mask.kind == "polygons" and not ann.iscrowd:
            out["segmentation"] = [
                [round(float(v), 2) for v in p.reshape(-1)] for p in ann.mask.data
            ]
        else:
            out["segmentation"] = ann.mask.to_rle(img.height, img.width)
        out["area"] = round(ann.mask.area(img.height, img.width), 2)
    else:
        out["segmentation"] = []
        out["area"] = round(max(x2 - x1, 0.0) * max(y2 - y1, 0.0), 3)
    if ann.score is not None:
        out["score"] = ann.score
    for k, v in ann.attributes.items():
        if k not in _ANN_KEYS:
            out[k] = v
    return out


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        return None


def _polygons(seg: list[list[Any]]) -> list[NDArray[np.float64]] | None:
    """COCO polygons as float arrays, or None when one is not an even number of finite
    values (odd length, strings, nulls, NaN: they would fail or write NaN later)."""
    try:
        polys = [np.asarray(p, dtype=np.float64) for p in seg]
    except (TypeError, ValueError):
        return None
    ok = all(a.ndim == 1 and a.size % 2 == 0 and bool(np.isfinite(a).all()) for a in polys)
    return polys if ok else None


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _rle_ok(seg: dict[str, Any]) -> bool:
    """An RLE with ``size`` [h, w] and ``counts`` a string or a list of whole numbers."""
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_whole(v) for v in size)):
        return False
    return isinstance(counts, str) or (isinstance(counts, list) and all(_whole(v) for v in counts))


def _image_dirs(root: Path, split: str | None) -> list[Path]:
    dirs = [root / "images"]
    if split:
        dirs = [root / "images" / split, root / split, root / "images", root / f"{split}2017"]
    dirs.append(root)
    return dirs


def _find_image(file_name: str, dirs: list[Path]) -> Path | None:
    try:
        p = Path(file_name)
        if p.is_absolute():
            return p if p.is_file() else None
        for d in dirs:
            cand = d / file_name
            if cand.is_file():
                return cand
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return None
    return None
