"""On-disk dataset formats behind one registry: each has ``detect``, ``read`` and ``write``."""

from __future__ import annotations

from curate.formats.base import Format
from curate.formats.coco import CocoFormat
from curate.formats.images import ImagesFormat
from curate.formats.voc import VocFormat
from curate.formats.yolo import YoloFormat

FORMATS: dict[str, Format] = {
    "coco": CocoFormat(),
    "yolo": YoloFormat(),
    "voc": VocFormat(),
    "images": ImagesFormat(),
}

__all__ = ["FORMATS", "Format"]
