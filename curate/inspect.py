"""Open a sodkit dataset in FiftyOne for inspection.

Each image becomes a sample with ``ground_truth`` detections (relative ``[x, y, w, h]``
boxes, instance masks cropped to their boxes as FiftyOne expects), the split as a tag,
and ``source``, ``group`` and the image attributes as fields. Small objects (COCO:
area < 32²) carry ``small=True`` so the App can filter them at once.

FiftyOne keeps its datasets in its own MongoDB (``FIFTYONE_DATABASE_DIR`` /
``FIFTYONE_DATABASE_URI``); nothing is downloaded.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from curate.core.dataset import Dataset
from curate.core.progress import NullProgress, Progress

SMALL_AREA = 32.0**2


def _setup_env() -> None:
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    # the bundled mongod is an old (still supported) major version; skip the nag
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")


def import_fiftyone() -> Any:
    """``import fiftyone`` (its environment set first), also after ``importlib_metadata``.

    FiftyOne's dependency ``eta`` reads its package's ``author`` at import. Once the
    ``importlib_metadata`` backport is imported (Dask and others do), it answers the
    standard library's lookups too, with metadata that raises ``KeyError`` for a missing
    field, and eta's wheel has no ``Author`` (only ``Author-email``): ``import fiftyone``
    failed. While FiftyOne is imported the first time, a missing field reads as None,
    as the standard library has it.
    """
    _setup_env()
    if "fiftyone" in sys.modules:
        return sys.modules["fiftyone"]
    message = None
    if "importlib_metadata" in sys.modules:
        try:
            from importlib_metadata._adapters import Message as message
        except ImportError:  # another layout: nothing to adjust
            message = None
    if message is None:
        import fiftyone

        return fiftyone
    import email.message

    strict = message.__getitem__
    message.__getitem__ = email.message.Message.__getitem__
    try:
        import fiftyone
    finally:
        message.__getitem__ = strict
    return fiftyone


def to_fiftyone(
    ds: Dataset,
    name: str,
    *,
    overwrite: bool = True,
    persistent: bool = False,
    progress: Progress | None = None,
) -> Any:
    """Build (or replace) the FiftyOne dataset ``name`` from ``ds``; returns the ``fo.Dataset``."""
    fo = import_fiftyone()
    progress = progress or NullProgress()
    names = ds.category_names()
    fods = fo.Dataset(name, overwrite=overwrite, persistent=persistent)
    samples = []
    for img in progress.track(
        ds.images, total=len(ds.images), description="building FiftyOne samples"
    ):
        dets = []
        for ann in img.annotations:
            x1, y1, x2, y2 = ann.bbox
            w, h = img.width, img.height
            kwargs: dict[str, Any] = {
                "label": names.get(ann.category_id, str(ann.category_id)),
                "bounding_box": [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h],
                "small": ann.box_area < SMALL_AREA,
                "iscrowd": bool(ann.iscrowd),
            }
            if ann.score is not None:
                kwargs["confidence"] = ann.score
            if ann.mask is not None:
                full = ann.mask.to_bitmap(h, w)
                ix1, iy1 = int(np.floor(x1)), int(np.floor(y1))
                ix2, iy2 = max(ix1 + 1, int(np.ceil(x2))), max(iy1 + 1, int(np.ceil(y2)))
                kwargs["mask"] = full[iy1:iy2, ix1:ix2]
            for k, v in ann.attributes.items():
                if isinstance(v, (bool, int, float, str)):
                    kwargs[k] = v
            dets.append(fo.Detection(**kwargs))
        fields: dict[str, Any] = {
            "filepath": str(img.path.resolve()),
            "ground_truth": fo.Detections(detections=dets),
            "source": img.source,
            "group_id": img.group or "",
            "file_name": img.file_name,
            "tags": [img.split] if img.split else [],
        }
        for k, v in img.attributes.items():
            if isinstance(v, (bool, int, float, str)) and k not in fields:
                fields[k] = v
        samples.append(fo.Sample(**fields))
    fods.add_samples(samples, progress=False)
    return fods


def summary(fods: Any) -> dict[str, Any]:
    """Counts FiftyOne reports for the dataset (a check that it holds what we put in)."""
    return {
        "samples": len(fods),
        "objects": fods.count("ground_truth.detections"),
        "per_class": fods.count_values("ground_truth.detections.label"),
        "small_objects": fods.filter_labels(
            "ground_truth", _small_filter(), only_matches=False
        ).count("ground_truth.detections"),
        "per_split": fods.count_sample_tags(),
    }


def _small_filter() -> Any:
    from fiftyone import ViewField as F

    return F("small") == True  # noqa: E712  (a FiftyOne expression, not a Python comparison)
