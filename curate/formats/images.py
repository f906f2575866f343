"""A folder tree of images without labels: classification sets, raw photo dumps.

Many fire sets ship as ``Train/Fire/*.jpg``, ``Test/NoFire/*.jpg`` or one folder of
photos. They hold no boxes, but they still need deduplicating and their train/test
folders still leak. This layout reads such a tree so ``dedupe`` and ``leaks`` work on it,
and writes one back in the same shape.

Read: every image under PATH (hidden folders and sodkit's own output files skipped).
``file_name`` is the path relative to PATH, so the tree is kept. The first folder on the
path named as a split (any case: ``train``, ``Training``, ``valid``, ``Test``...) is
kept as the attribute ``original_split``, as for Kaggle exports (the dataset comes out
unsplit); the other folders, joined, as the attribute ``folder`` (``Fire``). Frames named
as Roboflow names video frames (``clip_mp4-12_jpg.rf.<hash>.jpg``) are grouped by clip,
so ``curate split`` keeps a clip in one split. Images carry
no objects, so they are tagged ``unlabeled`` (not negatives: a fire photo without a box
is not background); ``--unlabeled negative`` reads them as negatives.

Detection claims a folder only weakly, and only when it holds images and nothing that
looks like labels (``.xml``, ``.json``, ``.yaml``, or ``.txt`` named like an image):
annotations sodkit cannot place must stop with an error, never be silently ignored.

Write: each image at ``OUT/<file_name>``; an image with a split goes under that split's
folder instead of the one it came from (``Train/Fire/a.jpg`` → ``val/Fire/a.jpg``).
Labels have no place here: a dataset with annotations is refused.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from curate.core.dataset import Dataset, ImageItem, split_name
from curate.core.errors import ItemError, UsageError
from curate.core.files import (
    clip_of,
    is_unread_image,
    place_file,
    safe_token,
    unread_types_note,
    walk_files,
)
from curate.core.imageio import IMAGE_EXTENSIONS, probe
from curate.core.output import is_own_file
from curate.formats.base import ReadOptions, WriteOptions, WriteResult

_LABEL_SUFFIXES = (".xml", ".json", ".yaml", ".yml")
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")


def _walk(path: Path) -> tuple[list[Path], list[Path], bool]:
    """Images under ``path`` (sorted), image files of a type sodkit does not read, and
    whether anything there looks like labels or video."""
    images: list[Path] = []
    other: list[Path] = []
    for p in walk_files(path):
        if is_own_file(p):  # an output read back is still a tree
            continue
        (images if p.suffix.lower() in IMAGE_EXTENSIONS else other).append(p)
    images.sort()
    stems = {p.with_suffix("") for p in images}
    labelled = any(
        p.suffix.lower() in _LABEL_SUFFIXES + _VIDEO_SUFFIXES
        or (p.suffix.lower() == ".txt" and p.with_suffix("") in stems)
        or p.parent.name.lower() in ("labels", "annotations")
        for p in other
    )
    return images, [p for p in other if is_unread_image(p)], labelled


def _placement(rel: PurePosixPath) -> tuple[str | None, str]:
    """``(split, folder)`` of an image's relative path: the first split-named folder, and
    the other folders joined."""
    split = None
    rest: list[str] = []
    for part in rel.parts[:-1]:
        name = split_name(part)
        if name is not None and split is None:
            split = name
        else:
            rest.append(part)
    return split, "/".join(rest)


class ImagesFormat:
    """Images only, in any folder tree (see the module docstring)."""

    name = "images"
    description = "a folder tree of images without labels (e.g. Train/Fire/*.jpg)"

    def detect(self, path: Path) -> int:
        if not path.is_dir():
            return 0
        images, _, labelled = _walk(path)
        return 20 if images and not labelled else 0

    def read(self, path: Path, options: ReadOptions) -> Dataset:
        if not path.is_dir():
            raise UsageError(f"'{path}' is not a folder of images")
        files, unread, _ = _walk(path)
        unread_note = unread_types_note(unread, path)
        if not files:
            raise UsageError(
                f"'{path}' holds no images ({', '.join(IMAGE_EXTENSIONS)}, in any sub-folder)"
                + (f"; {unread_note}" if unread_note else "")
            )
        tag = options.source.unlabeled != "negative"
        ds = Dataset(info={"changed": [], "dropped": []})
        splits: set[str] = set()
        for p in options.progress.track(files, total=len(files), description="reading images"):
            try:
                info = probe(p, check_tail=options.check_images, max_pixels=options.max_pixels)
            except ItemError as err:
                options.policy.handle(err, left_out=p)
                continue
            rel = PurePosixPath(p.relative_to(path).as_posix())
            split, folder = _placement(rel)
            attrs: dict[str, object] = {"original_path": str(p)}
            if split is not None:
                attrs["original_split"] = split
                splits.add(split)
            if folder:
                attrs["folder"] = folder
            if tag:
                attrs["unlabeled"] = True
            group = None
            clip = clip_of(rel.name)
            if clip is not None:  # Roboflow's frame names: one clip stays in one split
                group = f"images/{clip[0]}"
                attrs["clip"], attrs["frame"] = clip
            ds.images.append(
                ImageItem(
                    file_name=str(rel),
                    path=p,
                    width=info.width,
                    height=info.height,
                    source="images",
                    group=group,
                    attributes=attrs,
                )
            )
        what = "tagged unlabeled" if tag else "read as negatives (--unlabeled negative)"
        notes = [unread_note] if unread_note else []
        if ds.images:  # (none when every file was left out: the skip lines say why)
            note = f"{len(ds.images)} image(s) without labels, {what}"
            if splits:
                note += f"; split folders kept as original_split ({', '.join(sorted(splits))})"
            notes.insert(0, note)
        ds.info["notes"] = notes
        return ds

    def write(self, dataset: Dataset, out: Path, options: WriteOptions) -> WriteResult:
        labelled = sum(1 for img in dataset.images if img.annotations)
        if labelled:
            raise UsageError(
                f"the images format holds no labels, and {labelled} image(s) have annotations; "
                "write coco, yolo or voc instead"
            )
        result = WriteResult()
        used: set[str] = set()
        for img in options.progress.track(
            dataset.images, total=len(dataset.images), description="writing images"
        ):
            rel = PurePosixPath(img.file_name)
            if img.split is not None:
                parts = list(rel.parts)
                if len(parts) > 1 and split_name(parts[0]) is not None:
                    parts = parts[1:]
                rel = PurePosixPath(img.split, *parts)
            # Train/Fire/x.jpg and Test/Fire/x.jpg both become <split>/Fire/x.jpg when they
            # land in one split: the later one gets its old split as a prefix.
            if rel.as_posix().lower() in used:
                tag = safe_token(str(img.attributes.get("original_split") or "dup"))
                base, n = rel, 0
                while rel.as_posix().lower() in used:
                    n += 1
                    rel = base.with_name(f"{tag}{n if n > 1 else ''}__{base.name}")
                result.changed.append(
                    {
                        "item": img.file_name,
                        "change": f"written as {rel}: another image has its name",
                    }
                )
            used.add(rel.as_posix().lower())
            if options.copy_images:
                place_file(img.path, out / rel, options.link)
            result.images += 1
        return result
