"""Video clips (FURG, VisiFire and the like): sampled frames as images, with their boxes.

PATH is one clip or a folder searched recursively for clips (``.avi``, ``.mp4``,
``.mov``, ``.mkv``, any case). A clip's id is its path under PATH without the
extension (``smoke/clip1``); frame ``n`` becomes the image ``<clip id>_f<n:06d>.jpg``
with ``group = "video/<clip id>"`` (splits never separate frames of one clip),
``source = "video"`` and the attributes ``clip``, ``frame``, ``time_s`` and
``original_path`` (the clip).

Sampling: every frame by default; ``every=N`` keeps frames 0, N, 2N, ...;
``fps=F`` keeps, for each k, the first frame at or after time k/F (clip time, from
the clip's own frame rate, else the annotation file's). Both at once is an error.

Frames are decoded once with OpenCV and written as JPEG (quality 95) to a cache that
does not depend on the options: ``$SODKIT_CACHE_DIR/frames/<key>/<clip stem>_f<n>.jpg``
(default root ``~/.cache/sodkit``), where ``key`` hashes the clip's size, mtime and
first MiB. ``meta.json`` there records the frame count (counted by decoding, not taken
from the header), frame rate and size, so a later read whose frames are all cached
does not open the clip at all. A cache that cannot be written (a file in the way, a
read-only folder, a full disk) is not fatal: the clip is decoded into a temporary
folder instead, removed when the process exits, and ``dataset.info["notes"]`` says so
(``dataset.info["temporary_frames"]`` names that folder: links into it do not last).
Temporary files that interrupted runs left in a clip's cache folder are removed when
that folder is used again.

Annotations come from :mod:`curate.sources.video_labels` (FURG XML or per-frame
YOLO/VOC files; see there for which frames they cover). A frame the annotations cover
gets their boxes (none: a negative); a bad entry, or a box that fails validation, is
an error through the policy (``skip`` leaves that frame out). Frames no annotation
covers, including every frame of a clip without annotations, are never silently
negatives: ``unlabeled="tag"`` (default) keeps them with ``unlabeled: True``,
``"negative"`` keeps them as negatives, ``"skip"`` leaves them out (listed in
``dataset.info["dropped"]``). Frames of clips without annotations also get
``clip_class``, guessed from the clip's path: ``smoke``, ``fire`` (``fire``/``flame``)
or ``other`` (also for ``no_fire``-like names). Annotated frames past the clip's end
are listed in ``dataset.info["dropped"]``.

A clip that cannot be opened or yields no frame is a :class:`CorruptImageError`
through the policy.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2

from curate.core.dataset import Annotation, Dataset, ImageItem
from curate.core.errors import (
    AnnotationError,
    CorruptImageError,
    ImageTooLargeError,
    ItemError,
    MalformedFileError,
    UsageError,
)
from curate.core.imageio import write_image
from curate.core.output import pid_alive, write_json_atomic
from curate.core.progress import Progress
from curate.core.validate import validated
from curate.formats.base import ReadOptions, SourceOptions
from curate.sources.video_labels import ClipLabels, find_clip_labels

SOURCE = "video"
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv")
CACHE_ENV = "SODKIT_CACHE_DIR"
JPEG_QUALITY = 95
META_NAME = "meta.json"
_META_VERSION = 1
_HASH_BYTES = 1 << 20
_NOT_FIRE = re.compile(r"(?:no|non|not)[_\- ]?(?:fire|flame|smoke)")
#: Temporary files of interrupted writes: ``.NAME.tmp-PID-TAG`` (core.output.side_name, which
#: write_image and write_json_atomic use) and write_image's ``.NAME.tmpPID`` of earlier releases.
_TEMP_FILE = re.compile(r"\..+\.tmp-?(\d+)(?:-[0-9a-f]{8})?")
#: Seconds after which such a file of a process that is gone is taken for abandoned.
STALE_TEMP_S = 60.0


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """What decoding a clip told: frames that decode, frame rate (0 if unknown), size."""

    frames: int
    fps: float
    width: int
    height: int


def is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def cache_root() -> Path:
    """``$SODKIT_CACHE_DIR`` or ``~/.cache/sodkit``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sodkit"


def clip_key(clip: Path) -> str:
    """Cache key of a clip: SHA-1 of its size, mtime and first MiB (hex, 20 chars)."""
    st = clip.stat()
    h = hashlib.sha1(f"{st.st_size}:{st.st_mtime_ns}:".encode())
    with open(clip, "rb") as fh:
        h.update(fh.read(_HASH_BYTES))
    return h.hexdigest()[:20]


def frame_file_name(stem: str, frame: int) -> str:
    return f"{stem}_f{frame:06d}.jpg"


def frame_selector(
    clip_fps: float, *, every: int | None = None, fps: float | None = None
) -> Callable[[int], bool]:
    """Predicate on frame indices: which frames the sampling keeps (see the module docstring)."""
    if every is not None:
        return lambda i: i % every == 0
    if fps is None or fps >= clip_fps:
        return lambda i: True
    ratio = fps / clip_fps
    eps = 1e-9  # k/F landing exactly on a frame time must select that frame

    def keep(i: int) -> bool:
        return i == 0 or int(i * ratio + eps) > int((i - 1) * ratio + eps)

    return keep


def guess_clip_class(name: str) -> str:
    """``smoke``, ``fire`` or ``other`` from a clip's name or path."""
    low = name.lower()
    if _NOT_FIRE.search(low):
        return "other"
    if "smoke" in low:
        return "smoke"
    if "fire" in low or "flame" in low:
        return "fire"
    return "other"


def find_clips(path: Path) -> list[tuple[str, Path]]:
    """``(clip id, clip)`` for a clip file or every clip under a folder, sorted."""
    if path.is_file():
        if not is_video_file(path):
            raise UsageError(
                f"'{path}' is not a video clip: expected one of {', '.join(VIDEO_EXTENSIONS)}"
            )
        return [(path.stem, path)]
    files = sorted(
        f
        for f in path.rglob("*")
        if f.is_file()
        and is_video_file(f)
        and not any(p.startswith(".") for p in f.relative_to(path).parts)
    )
    out: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for f in files:
        rel = f.relative_to(path)
        cid = rel.with_suffix("").as_posix()
        if cid in seen:  # a.avi beside a.mp4
            cid = f"{cid}_{f.suffix.lstrip('.').lower()}"
        seen.add(cid)
        out.append((cid, f))
    return out


# -- decoding and the frame cache --------------------------------------------------------
def _read_meta(cache_dir: Path) -> ClipInfo | None:
    try:
        data = json.loads((cache_dir / META_NAME).read_text(encoding="utf-8"))
        if data.get("version") != _META_VERSION:
            return None
        return ClipInfo(
            int(data["frames"]), float(data["fps"]), int(data["width"]), int(data["height"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _grab_all(cap: cv2.VideoCapture) -> Iterator[int]:
    i = 0
    while cap.grab():
        yield i
        i += 1


def decode_clip(
    clip: Path,
    cache_dir: Path,
    keep_for: Callable[[float], Callable[[int], bool]],
    *,
    progress: Progress,
    max_pixels: int | None,
) -> ClipInfo:
    """Decode ``clip`` once, writing the kept frames that are not cached yet; count frames.

    ``keep_for(clip_fps)`` gives the sampling predicate once the frame rate is known.
    """
    cap = cv2.VideoCapture(str(clip))
    try:
        if not cap.isOpened():
            raise CorruptImageError(
                clip,
                "cannot open the video (unknown container or codec, or not a video)",
                hint="re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or remove it",
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if max_pixels is not None and width * height > max_pixels:
            raise ImageTooLargeError(
                clip, f"frames are {width}x{height}, over the limit of {max_pixels} pixels"
            )
        keep = keep_for(fps if fps > 0 else 0.0)
        estimate = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
        cache_dir.mkdir(parents=True, exist_ok=True)
        count = 0
        for i in progress.track(
            _grab_all(cap), total=estimate, description=f"decoding {clip.name}"
        ):
            count = i + 1
            target = cache_dir / frame_file_name(clip.stem, i)
            if i == 0 or (keep(i) and not target.is_file()):
                ok, frame = cap.retrieve()
                if not ok:
                    continue
                if i == 0:  # the decoded size is the truth (rotation metadata, odd headers)
                    height, width = frame.shape[:2]
                if keep(i) and not target.is_file():
                    write_image(
                        target, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), quality=JPEG_QUALITY
                    )
    finally:
        cap.release()
    if count == 0:
        raise CorruptImageError(clip, "no frame could be decoded", hint="re-encode it or remove it")
    info = ClipInfo(count, fps if fps > 0 else 0.0, width, height)
    write_json_atomic(
        cache_dir / META_NAME, {"version": _META_VERSION, "clip": str(clip), **asdict(info)}
    )
    return info


def remove_stale_temp_files(cache_dir: Path) -> int:
    """Remove temporary files that interrupted runs left in a clip's cache folder: those of
    processes now gone, untouched for :data:`STALE_TEMP_S` (a cache shared between
    machines has other machines' process ids). Returns how many were removed (a folder
    that cannot be listed or written: 0)."""
    removed = 0
    try:
        entries = list(os.scandir(cache_dir))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        m = _TEMP_FILE.fullmatch(entry.name)
        if m is None or pid_alive(int(m.group(1))):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_TEMP_S:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed += 1
    return removed


def ensure_frames(
    clip: Path,
    keep_for: Callable[[float], Callable[[int], bool]],
    *,
    progress: Progress,
    max_pixels: int | None,
    fallback: Callable[[OSError], Path] | None = None,
) -> tuple[ClipInfo, Path]:
    """The clip's info and cache folder, with every kept frame present as a JPEG there.

    ``keep_for(clip_fps)`` gives the sampling predicate once the frame rate is known.
    The clip is opened only when a kept frame is missing from the cache. When the cache
    cannot be written, ``fallback(error)`` gives another folder to decode into (without
    one, the error is raised).
    """
    cache_dir = cache_root() / "frames" / clip_key(clip)
    meta = _read_meta(cache_dir)
    remove_stale_temp_files(cache_dir)
    if meta is not None:
        keep = keep_for(meta.fps)
        if all(
            (cache_dir / frame_file_name(clip.stem, i)).is_file()
            for i in range(meta.frames)
            if keep(i)
        ):
            return meta, cache_dir
    try:
        info = decode_clip(clip, cache_dir, keep_for, progress=progress, max_pixels=max_pixels)
    except OSError as exc:
        if fallback is None:
            raise
        cache_dir = fallback(exc) / clip_key(clip)
        try:
            info = decode_clip(clip, cache_dir, keep_for, progress=progress, max_pixels=max_pixels)
        except OSError as again:
            raise UsageError(
                f"cannot write the frames of '{clip}': not to the cache ({exc}), "
                f"nor to '{cache_dir.parent}' ({again}); set {CACHE_ENV} to a writable "
                "folder with free space"
            ) from again
    return info, cache_dir


#: Prefix of the temporary folder frames go to when the cache cannot take them.
TEMPORARY_FRAMES_PREFIX = "sodkit-frames-"


def in_temporary_frames(path: str | Path) -> bool:
    """Whether ``path`` lies in a temporary frame folder (removed when its run ends)."""
    tmp = tempfile.gettempdir()
    return any(
        p.name.startswith(TEMPORARY_FRAMES_PREFIX) and str(p.parent) == tmp
        for p in Path(path).parents
    )


class _TemporaryFrames:
    """Where frames go when the cache cannot take them: one temporary folder per read,
    made on first need, noted once, removed when the process exits (the dataset's items
    point into it until then)."""

    def __init__(self, ds: Dataset) -> None:
        self._ds = ds
        self._folder: Path | None = None

    def __call__(self, exc: OSError) -> Path:
        if self._folder is None:
            try:
                self._folder = Path(tempfile.mkdtemp(prefix=TEMPORARY_FRAMES_PREFIX))
            except OSError as tmp_exc:
                raise UsageError(
                    f"the frame cache at '{cache_root() / 'frames'}' cannot be written "
                    f"({exc}), nor a temporary folder ({tmp_exc}); set {CACHE_ENV} to a "
                    "writable folder"
                ) from tmp_exc
            atexit.register(shutil.rmtree, self._folder, ignore_errors=True)
            self._ds.info["temporary_frames"] = str(self._folder)
            self._ds.info.setdefault("notes", []).append(
                f"frame cache at '{cache_root() / 'frames'}' cannot be written ({exc}); "
                f"frames are decoded to '{self._folder}', removed when this run ends "
                f"(set {CACHE_ENV} to a writable folder to keep them between runs)"
            )
        return self._folder


# -- the source --------------------------------------------------------------------------
class VideoSource:
    """A folder of video clips (or one clip) read as sampled frames."""

    name = "video"
    description = "Video clips (.avi/.mp4/.mov/.mkv) with FURG XML or per-frame YOLO/VOC labels"

    def detect(self, path: Path) -> int:
        if path.is_file():
            return 90 if is_video_file(path) else 0
        if not path.is_dir():
            return 0
        for child in path.iterdir():
            if child.is_file() and is_video_file(child):
                return 90
            if child.is_dir() and not child.name.startswith("."):
                if any(f.is_file() and is_video_file(f) for f in child.iterdir()):
                    return 90
        return 0

    def read(self, path: Path, options: ReadOptions) -> Dataset:
        _check_options(options.source)
        clips = find_clips(path)
        if not clips:
            raise UsageError(
                f"no video clips in '{path}' (looked for {', '.join(VIDEO_EXTENSIONS)}, any case)"
            )
        ds = Dataset(info={"dropped": [], "changed": [], "clips": {}})
        fallback = _TemporaryFrames(ds)
        for clip_id, clip in clips:
            try:
                self._read_clip(clip_id, clip, ds, options, fallback)
            except ItemError as err:
                options.policy.handle(err)
        return ds

    def _read_clip(
        self,
        clip_id: str,
        clip: Path,
        ds: Dataset,
        options: ReadOptions,
        fallback: Callable[[OSError], Path],
    ) -> None:
        src = options.source
        labels = find_clip_labels(clip)
        if labels is None and src.unlabeled == "skip":
            ds.info["dropped"].append(
                {
                    "item": clip_id,
                    "reason": "clip has no annotations (unlabeled=skip)",
                    "file": str(clip),
                }
            )
            return

        def keep_for(clip_fps: float) -> Callable[[int], bool]:
            rate = clip_fps or (labels.frame_rate if labels is not None else None) or 0.0
            if src.fps is not None and rate <= 0:
                raise MalformedFileError(
                    clip,
                    "the clip reports no frame rate, so frames cannot be sampled by fps",
                    hint="sample with every=N instead",
                )
            return frame_selector(rate, every=src.every, fps=src.fps)

        info, cache_dir = ensure_frames(
            clip,
            keep_for,
            progress=options.progress,
            max_pixels=options.max_pixels,
            fallback=fallback,
        )
        fps = info.fps or (labels.frame_rate if labels is not None else None) or 0.0
        if labels is not None:
            _check_frame_size(labels, info)
            if labels.align_to(info.frames):
                ds.info["changed"].append(
                    {
                        "item": clip_id,
                        "change": "label file numbers read as 1-based",
                        "file": str(labels.source),
                    }
                )
            self._note_unusable_labels(clip_id, labels, info, ds)
        keep = keep_for(info.fps)
        frames = [i for i in range(info.frames) if keep(i)]
        clip_class = guess_clip_class(clip_id) if labels is None else None
        uncovered_skipped: list[int] = []
        for i in options.progress.track(
            frames, total=len(frames), description=f"frames of {clip_id}"
        ):
            item = ImageItem(
                file_name=f"{clip_id}_f{i:06d}.jpg",
                path=cache_dir / frame_file_name(clip.stem, i),
                width=info.width,
                height=info.height,
                source=SOURCE,
                group=f"{SOURCE}/{clip_id}",
                attributes={
                    "clip": clip_id,
                    "frame": i,
                    "time_s": round(i / fps, 6) if fps > 0 else None,
                    "original_path": str(clip),
                },
            )
            if not item.path.is_file():
                options.policy.handle(
                    CorruptImageError(f"{clip} frame {i}", "frame could not be decoded"),
                    left_out=item.file_name,
                    left_out_annotations=_labelled_boxes(labels, i, item),
                )
                continue
            if labels is not None and labels.covers(i):
                try:
                    item.annotations = self._annotations(item, labels, i, ds)
                except ItemError as err:
                    options.policy.handle(err, left_out=item.file_name)
                    continue
            else:
                if clip_class is not None:
                    item.attributes["clip_class"] = clip_class
                if src.unlabeled == "skip":
                    uncovered_skipped.append(i)
                    continue
                if src.unlabeled == "tag":
                    item.attributes["unlabeled"] = True
            ds.images.append(item)
        if uncovered_skipped:
            ds.info["dropped"].append(
                {
                    "item": clip_id,
                    "reason": "frames outside the annotated range (unlabeled=skip)",
                    "file": str(clip),
                    "frames": uncovered_skipped,
                }
            )
        ds.info["clips"][clip_id] = {
            "path": str(clip),
            **asdict(info),
            "sampled": len(frames),
            "labels": labels.kind if labels is not None else None,
            "label_source": str(labels.source) if labels is not None else None,
        }

    @staticmethod
    def _annotations(
        item: ImageItem, labels: ClipLabels, frame: int, ds: Dataset
    ) -> list[Annotation]:
        raw = [
            (Annotation(b.box, ds.add_category(b.class_name), mask=b.mask), b.line)
            for b in labels.boxes(frame, item.width, item.height)
        ]
        known = {c.id for c in ds.categories}
        return validated(item, raw, known, where=labels.where(frame), changed=ds.info["changed"])

    @staticmethod
    def _note_unusable_labels(
        clip_id: str, labels: ClipLabels, info: ClipInfo, ds: Dataset
    ) -> None:
        for n in labels.listed():
            if n >= info.frames:
                ds.info["dropped"].append(
                    {
                        "item": f"{clip_id}_f{n:06d}.jpg",
                        "level": "annotation",  # labels of a frame the clip does not have
                        "reason": f"annotated frame past the end of the clip ({info.frames} frames)",
                        "file": labels.where(n),
                    }
                )
        for f in labels.unnamed:
            ds.info["dropped"].append(
                {
                    "item": clip_id,
                    "level": "annotation",  # a label file, not a frame
                    "reason": "label file name has no frame number",
                    "file": str(f),
                }
            )


def _check_options(src: SourceOptions) -> None:
    if src.every is not None and src.fps is not None:
        raise UsageError("sample frames by 'every' or by 'fps', not both")
    if src.every is not None and src.every < 1:
        raise UsageError(f"every must be >= 1, got {src.every}")
    if src.fps is not None and not src.fps > 0:
        raise UsageError(f"fps must be > 0, got {src.fps}")
    if src.unlabeled not in ("tag", "negative", "skip"):
        raise UsageError(f"unlabeled must be tag, negative or skip, got {src.unlabeled!r}")


def _check_frame_size(labels: ClipLabels, info: ClipInfo) -> None:
    if labels.frame_size is not None and labels.frame_size != (info.width, info.height):
        w, h = labels.frame_size
        raise AnnotationError(
            labels.source,
            f"annotations are for {w}x{h} frames but the clip's frames are {info.width}x{info.height}",
            hint="check that the XML belongs to this clip",
        )


def _labelled_boxes(labels: ClipLabels | None, frame: int, item: ImageItem) -> int:
    """Boxes the labels give ``frame`` (0 when none or unreadable): what leaves the dataset
    with a frame that cannot be decoded."""
    if labels is None or not labels.covers(frame):
        return 0
    try:
        return len(labels.boxes(frame, item.width, item.height))
    except ItemError:
        return 0
