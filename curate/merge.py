"""Merge several datasets into one, through a class map.

Class names are normalised (case, spaces, hyphens) and mapped through a
:class:`ClassMap`: synonyms (``flame`` → ``fire``) and junk classes to drop (Roboflow's
``default``). A class the map does not cover is an error that names it and the map's
classes. Colliding file names get a deterministic source prefix; every image records
its source and original path; groups (clips) are namespaced by source.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curate.core.dataset import Category, Dataset
from curate.core.errors import ClassMapError, MalformedFileError
from curate.core.files import make_unique_names, read_text_file, safe_token
from curate.core.output import annotation_drop


def normalize_name(name: str) -> str:
    """``' Fire-Smoke '`` → ``'fire_smoke'``: lower case, spaces and hyphens as underscores."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


@dataclass
class ClassMap:
    """Output classes, synonyms for them, and classes to drop.

    File form (YAML or JSON)::

        classes: [fire, smoke]
        synonyms: {flame: fire, flames: fire, smog: smoke}
        drop: [default, background]
    """

    classes: list[str]
    synonyms: dict[str, str] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)
    strict: bool = True

    @classmethod
    def from_file(cls, path: str | Path) -> ClassMap:
        p = Path(path)
        text = read_text_file(p, "class map")
        try:
            data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise MalformedFileError(p, f"invalid class map: {exc}") from exc
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("classes"), list)
            or not data["classes"]
        ):
            raise MalformedFileError(
                p, "class map needs a non-empty 'classes' list", field="classes"
            )
        classes = [normalize_name(str(c)) for c in data["classes"]]
        synonyms = {
            normalize_name(str(k)): normalize_name(str(v))
            for k, v in (data.get("synonyms") or {}).items()
        }
        bad = sorted({v for v in synonyms.values() if v not in classes})
        if bad:
            raise MalformedFileError(
                p, f"synonyms map to {bad}, which are not in 'classes' {classes}", field="synonyms"
            )
        drop = {normalize_name(str(d)) for d in (data.get("drop") or [])}
        return cls(classes, synonyms, drop)

    @classmethod
    def passthrough(cls) -> ClassMap:
        """No map given: keep every class, names normalised only."""
        return cls([], strict=False)

    def resolve(self, name: str) -> str | None:
        """Canonical name, None to drop; raises KeyError if the map does not cover ``name``."""
        n = normalize_name(name)
        if n in self.drop:
            return None
        if n in self.classes:
            return n
        if n in self.synonyms:
            return self.synonyms[n]
        if not self.strict:
            return n
        raise KeyError(name)


@dataclass
class MergeReport:
    """What merging did, for the manifest."""

    per_source: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    renamed: int = 0
    class_mapping: dict[str, dict[str, str | None]] = field(default_factory=dict)


def source_names(specs: list[str], paths: list[Path]) -> list[str]:
    """A short unique name per source (the folder name; a counter where they collide)."""
    names: list[str] = []
    counts: Counter[str] = Counter()
    for p in paths:
        base = safe_token(p.stem if p.is_file() else p.name) or "source"
        if base in ("dataset", "data", "images") and p.parent.name:
            base = safe_token(p.parent.name)
        counts[base] += 1
        names.append(base if counts[base] == 1 else f"{base}{counts[base]}")
    return names


def merge_datasets(
    sources: list[tuple[str, Dataset]], class_map: ClassMap
) -> tuple[Dataset, MergeReport]:
    """Merge ``(source name, dataset)`` pairs into one dataset with the map's classes."""
    report = MergeReport()
    unknown: dict[str, set[str]] = {}
    for name, ds in sources:
        for c in ds.categories:
            try:
                class_map.resolve(c.name)
            except KeyError:
                unknown.setdefault(c.name, set()).add(name)
    if unknown:
        listed = "; ".join(f"'{k}' (in {', '.join(sorted(v))})" for k, v in sorted(unknown.items()))
        raise ClassMapError(
            f"class map does not cover {listed}; the map's classes are {class_map.classes}"
            f"{', synonyms ' + str(sorted(class_map.synonyms)) if class_map.synonyms else ''}"
            f"{', drop ' + str(sorted(class_map.drop)) if class_map.drop else ''}"
            " - add them as classes, synonyms or drop"
        )
    out = Dataset(categories=[Category(i, n) for i, n in enumerate(class_map.classes)])
    prefix_of: dict[int, str] = {}
    for name, ds in sources:
        mapping = {c.id: class_map.resolve(c.name) for c in ds.categories}
        report.class_mapping[name] = {c.name: mapping[c.id] for c in ds.categories}
        new_ids = {
            cid: (out.add_category(n) if n is not None else None) for cid, n in mapping.items()
        }
        boxes_in: Counter[str] = Counter()
        dropped_here = 0
        for img in ds.images:
            kept = []
            for k, ann in enumerate(img.annotations):
                src_name = ds.category_names().get(ann.category_id, str(ann.category_id))
                boxes_in[src_name] += 1
                new = new_ids.get(ann.category_id)
                if new is None:
                    report.dropped.append(
                        annotation_drop(
                            f"{name}/{img.file_name}",
                            f"class '{src_name}' dropped by the class map",
                            ann,
                            k,
                            src_name,
                        )
                    )
                    dropped_here += 1
                    continue
                ann.category_id = new
                kept.append(ann)
            img.annotations = kept
            img.attributes.setdefault("original_path", str(img.path))
            img.attributes.setdefault("source_layout", ds.info.get("layout", ""))
            inner = img.source
            img.source = name if inner in ("", name, ds.info.get("layout")) else f"{name}/{inner}"
            if img.group is not None:
                img.group = f"{name}::{img.group}"
            img.split = None
            prefix_of[id(img)] = safe_token(name)
            out.images.append(img)
        report.per_source[name] = {
            "layout": ds.info.get("layout"),
            "path": ds.info.get("path"),
            "images": len(ds.images),
            "boxes_in": dict(boxes_in),
            "boxes_kept": sum(boxes_in.values()) - dropped_here,
            "boxes_dropped": dropped_here,
        }
    report.renamed = make_unique_names(out.images, prefix_of)
    return out, report
