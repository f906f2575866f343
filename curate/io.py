"""Read any supported dataset from a ``PATH`` or ``LAYOUT:PATH`` spec; write one by format name.

Layouts are the on-disk formats (``coco``, ``yolo``, ``voc``) and the raw source
layouts (``bowfire``, ``video``, ``kaggle``). Without a ``LAYOUT:`` prefix the layout
is detected; when two layouts claim a path equally, the error lists them and asks for
a prefix. A mistyped prefix (``vidoe:clips``) is an error naming the known layouts.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from pathlib import Path

from curate.core.dataset import Dataset
from curate.core.errors import ItemError, ItemFailure, UsageError
from curate.core.imageio import verify_image
from curate.core.parallel import ProcessExecutor
from curate.core.progress import gc_paused
from curate.formats import FORMATS
from curate.formats.base import Format, Reader, ReadOptions, WriteOptions, WriteResult
from curate.sources import SOURCES

STRONG = 60  # a detect() score at or above this is a confident claim
_LAYOUT_LIKE = re.compile(r"[A-Za-z0-9_-]{2,}")


def readers() -> dict[str, Reader]:
    """Every layout that can be read, by name (sources first: they are more specific)."""
    return {**SOURCES, **FORMATS}


def parse_spec(spec: str) -> tuple[str | None, Path]:
    """Split ``LAYOUT:PATH`` (a known layout name before the first colon) from ``PATH``.

    Text before the first colon that looks like a layout name (two or more letters, digits,
    ``-`` or ``_``; one letter is a Windows drive) but names none is a mistyped layout, an
    error, unless the whole spec is an existing path (``clip:1.mp4``).
    """
    head, sep, tail = spec.partition(":")
    layouts = readers()
    if sep and head.lower() in layouts:
        return head.lower(), Path(tail).expanduser()
    path = Path(spec).expanduser()
    if sep and _LAYOUT_LIKE.fullmatch(head) and not path.exists():
        known = [*FORMATS, *SOURCES]
        close = difflib.get_close_matches(head.lower(), known, n=1)
        maybe = f"; did you mean '{close[0]}:{tail}'?" if close else ""
        raise UsageError(f"unknown layout '{head}' in '{spec}'; known: {', '.join(known)}{maybe}")
    return None, path


def detect_layout(path: Path) -> str:
    """Name of the layout of ``path``; a clear error when none or several fit equally."""
    if not path.exists():
        raise UsageError(f"dataset path '{path}' does not exist")
    all_readers = readers()
    scores = {name: r.detect(path) for name, r in all_readers.items()}
    best = max(scores.values())
    if best <= 0:
        raise UsageError(
            f"cannot tell the layout of '{path}': none of {', '.join(all_readers)} matches; "
            "prefix the path with one, e.g. yolo:PATH"
        )
    # Strong claims are ambiguous unless one layout refines another (kaggle refines yolo/voc).
    strong = {n for n, s in scores.items() if s >= STRONG}
    refined = {r for n in strong for r in getattr(all_readers[n], "refines", ())}
    strong -= refined
    if len(strong) > 1:
        top = sorted(strong, key=lambda n: (-scores[n], n))
        raise UsageError(
            f"'{path}' could be {' or '.join(top)}; say which with a prefix, e.g. {top[0]}:{path}"
        )
    if strong:
        return strong.pop()
    return max(sorted(scores), key=lambda n: scores[n])


def load_dataset(spec: str, options: ReadOptions | None = None) -> Dataset:
    """Read the dataset named by ``spec`` (``PATH`` or ``LAYOUT:PATH``)."""
    layout, path = parse_spec(spec)
    if not path.exists():
        raise UsageError(f"dataset path '{path}' does not exist")
    name = layout or detect_layout(path)
    options = options or ReadOptions()
    with gc_paused():
        ds = readers()[name].read(path, options)
    ds.info.setdefault("layout", name)
    ds.info.setdefault("path", str(path))
    if options.notify is not None:
        for note in ds.info.get("notes", []):
            options.notify(note)
    if options.verify:
        ds = verify_images(ds, options)
    return ds


def _verify_task(job: tuple[str, int | None]) -> ItemFailure | None:
    path, max_pixels = job
    try:
        verify_image(path, max_pixels=max_pixels)
    except ItemError as err:
        return ItemFailure.of(err)
    return None


def verify_images(dataset: Dataset, options: ReadOptions, workers: int | None = None) -> Dataset:
    """``dataset`` without the images that do not decode in full, each routed through
    ``options.policy`` as it is found (under ``fail`` the first stops the run; under
    ``skip`` it is listed with the image it leaves out, its annotations with it). A file
    shared by several items is decoded once. Always on a process pool, however few the
    images: a JPEG's check reads what libjpeg writes to stderr (see
    :func:`~curate.core.imageio.verify_image`), which must not meet the progress bar's."""
    paths = list(dict.fromkeys(str(img.path) for img in dataset.images))
    bad: set[str] = set()
    with ProcessExecutor(workers) as ex:
        results = options.progress.track(
            # Small chunks: each image costs milliseconds, and the bar moves with them.
            ex.map(_verify_task, [(p, options.max_pixels) for p in paths], chunksize=4),
            total=len(paths),
            description="verifying images",
        )
        anns: dict[str, int] | None = None  # annotations per file, once one fails
        for path, failure in zip(paths, results, strict=True):
            if failure is not None:
                if anns is None:
                    anns = {}
                    for img in dataset.images:
                        key = str(img.path)
                        anns[key] = anns.get(key, 0) + len(img.annotations)
                options.policy.handle(
                    failure.error(), left_out=path, left_out_annotations=anns[path]
                )
                bad.add(path)
    if not bad:
        return dataset
    return dataset.subset(img for img in dataset.images if str(img.path) not in bad)


def get_format(name: str) -> Format:
    """The writable format called ``name``."""
    try:
        return FORMATS[name]
    except KeyError as exc:
        raise UsageError(f"unknown format '{name}'; choose one of {', '.join(FORMATS)}") from exc


def write_dataset(
    dataset: Dataset, out: Path, fmt: str, options: WriteOptions | None = None
) -> WriteResult:
    """Write ``dataset`` in format ``fmt`` into the (empty, temporary) folder ``out``.

    Video frames decoded into a temporary folder (an unwritable frame cache) are copied
    where ``symlink`` was asked: links into that folder would break when the run ends.
    """
    from curate.sources.video import in_temporary_frames

    opts = options or WriteOptions()
    temporary = opts.link == "symlink" and any(
        in_temporary_frames(img.path) for img in dataset.images
    )
    if temporary:
        opts = replace(opts, link="copy")
    with gc_paused():
        result = get_format(fmt).write(dataset, out, opts)
    if temporary:
        result.changed.append(
            {
                "item": "images",
                "change": "copied, not symlinked: the video frames lie in a temporary folder "
                "removed when this run ends (the frame cache could not be written)",
            }
        )
    return result
