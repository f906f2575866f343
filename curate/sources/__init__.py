"""Raw source layouts (read-only): BoWFire, video clips, Kaggle/Roboflow exports."""

from __future__ import annotations

from curate.formats.base import Reader
from curate.sources.bowfire import BowFireSource
from curate.sources.kaggle import KaggleSource
from curate.sources.video import VideoSource

SOURCES: dict[str, Reader] = {
    "bowfire": BowFireSource(),
    "video": VideoSource(),
    "kaggle": KaggleSource(),
}

__all__ = ["SOURCES"]
