"""What every format and source layout provides, and the options passed to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from curate.core.dataset import Dataset
from curate.core.errors import ErrorPolicy
from curate.core.imageio import DEFAULT_MAX_PIXELS
from curate.core.progress import NullProgress, Progress

LinkMode = Literal["hardlink", "symlink", "copy"]


@dataclass
class SourceOptions:
    """Options of the raw source layouts (ignored by the plain formats).

    Video: sample every ``every``-th frame, or ``fps`` frames per second (default: every
    frame); clips without annotations are tagged (``unlabeled="tag"``), used as
    negatives, or skipped. BoWFire: mask regions closer than ``merge_distance`` px become
    one instance; regions under ``min_region_area`` px are ignored; the 50x50 ``train/``
    patches are read only with ``include_patches``.
    """

    every: int | None = None
    fps: float | None = None
    unlabeled: Literal["tag", "negative", "skip"] = "tag"
    merge_distance: int = 0
    min_region_area: int = 4
    include_patches: bool = False


@dataclass
class ReadOptions:
    """How to read: error policy, progress, and whether to check image files.

    ``check_images=False`` reads annotations only (no file access beyond the label
    files; sizes come from the annotations, or from image headers when missing).
    ``verify=True`` decodes every image in full once the dataset is read (on a process
    pool): damage anywhere in a file is an error of its item; the readers' own check
    reads headers, file ends and a PNG's first 64 KiB only.
    ``notify`` receives the reader's notes (classes named by id, images read as negatives...).
    """

    policy: ErrorPolicy = field(default_factory=ErrorPolicy)
    progress: Progress = field(default_factory=NullProgress)
    check_images: bool = True
    verify: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    source: SourceOptions = field(default_factory=SourceOptions)
    #: Called with each note a reader leaves in ``Dataset.info["notes"]`` (the CLI prints them).
    notify: Callable[[str], None] | None = None


@dataclass
class WriteOptions:
    """How to write: image placement, YOLO task, progress."""

    link: LinkMode = "hardlink"
    progress: Progress = field(default_factory=NullProgress)
    yolo_task: Literal["auto", "detect", "segment"] = "auto"
    copy_images: bool = True


@dataclass
class WriteResult:
    """What a writer produced: files written and items it could not express."""

    images: int = 0
    annotations: int = 0
    files: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, str]] = field(default_factory=list)


class Reader(Protocol):
    """A dataset layout sodkit can read."""

    name: str
    description: str

    def detect(self, path: Path) -> int:
        """Confidence 0..100 that ``path`` is in this layout (0: certainly not)."""
        ...

    def read(self, path: Path, options: ReadOptions) -> Dataset: ...


class Format(Reader, Protocol):
    """A layout sodkit can also write."""

    def write(self, dataset: Dataset, out: Path, options: WriteOptions) -> WriteResult: ...
