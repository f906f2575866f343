"""Video source: sampling, cache, groups, FURG XML, per-frame labels, unlabeled clips, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest

from curate.core.dataset import Dataset, images_by_group
from curate.core.errors import (
    AnnotationError,
    CorruptImageError,
    ErrorPolicy,
    MalformedFileError,
    OnError,
    UsageError,
)
from curate.core.imageio import read_image
from curate.core.output import drop_level
from curate.formats.base import ReadOptions, SourceOptions
from curate.sources import video as video_module
from curate.sources.video import VideoSource, frame_selector, guess_clip_class
from curate.sources.video_labels import frame_number

T = TypeVar("T")
W, H, FPS = 64, 48, 10.0
BAR = 4  # frame i shows a white bar at columns 4i..4i+3


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(cache))
    return cache


def write_clip(path: Path, frames: int, *, fps: float = FPS, fourcc: str = "MJPG") -> Path:
    """A clip whose frame i has a white bar at x = 4i (and an orange flame-like blob)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.zeros((H, W, 3), np.uint8)
        cv2.ellipse(frame, (40, 30), (5, 8), 0, 0, 360, (0, 128, 255), -1)
        x = (BAR * i) % W
        frame[:, x : x + BAR] = 255
        writer.write(frame)
    writer.release()
    return path


def bar_frame(image_path: Path) -> int:
    """Which frame an image shows, from the bar's position."""
    gray = read_image(image_path).mean(axis=(0, 2))
    return int(np.argmax(gray)) // BAR


def furg_xml(
    path: Path, frames: dict[int, list[str]], *, extra: str = "", size: tuple[int, int] = (W, H)
) -> Path:
    """A FURG/OpenCV FileStorage annotation file: ``frames`` maps frame → 'x y w h' strings."""
    body = "".join(
        f"  <_><frameNumber>{n}</frameNumber>\n    <annotations>"
        + "".join(f"\n      <_>\n        {r}</_>" for r in rects)
        + "</annotations></_>\n"
        for n, rects in frames.items()
    )
    path.write_text(
        '<?xml version="1.0"?>\n<opencv_storage>\n'
        f"<fileName>{path.stem}.avi</fileName>\n<frameRate>10</frameRate>\n"
        f"<frameWidth>{size[0]}</frameWidth>\n<frameHeight>{size[1]}</frameHeight>\n{extra}"
        f"<frames>\n{body}</frames>\n</opencv_storage>\n",
        encoding="utf-8",
    )
    return path


def read(path: Path, *, policy: ErrorPolicy | None = None, **source: object) -> Dataset:
    opts = ReadOptions(policy=policy or ErrorPolicy(), source=SourceOptions(**source))  # type: ignore[arg-type]
    return VideoSource().read(path, opts)


def frames_of(ds: Dataset) -> list[int]:
    return [img.attributes["frame"] for img in ds.images]


# -- sampling and items -----------------------------------------------------------------
def test_every_frame_by_default(tmp_path: Path, cache_dir: Path) -> None:
    write_clip(tmp_path / "clips" / "fire_a.avi", 8)
    ds = read(tmp_path / "clips")
    assert len(ds) == 8 and frames_of(ds) == list(range(8))
    img = ds.images[3]
    assert img.file_name == "fire_a_f000003.jpg"
    assert (img.width, img.height) == (W, H)
    assert img.source == "video" and img.group == "video/fire_a"
    assert img.attributes["clip"] == "fire_a"
    assert img.attributes["time_s"] == pytest.approx(0.3)
    assert img.attributes["original_path"] == str(tmp_path / "clips" / "fire_a.avi")
    assert img.path.is_file() and cache_dir in img.path.parents
    assert img.path.name == "fire_a_f000003.jpg"
    assert bar_frame(img.path) == 3
    assert ds.info["clips"]["fire_a"]["frames"] == 8


def test_every_nth_frame(tmp_path: Path) -> None:
    write_clip(tmp_path / "c.avi", 11)
    ds = read(tmp_path, every=3)
    assert frames_of(ds) == [0, 3, 6, 9]
    assert [bar_frame(img.path) for img in ds.images] == [0, 3, 6, 9]


@pytest.mark.parametrize(
    ("fps", "expected"),
    [
        (2.5, [0, 4, 8, 12]),
        (3.0, [0, 4, 7, 10, 14]),
        (10.0, list(range(15))),
        (50.0, list(range(15))),
    ],
)
def test_frames_per_second(tmp_path: Path, fps: float, expected: list[int]) -> None:
    write_clip(tmp_path / "c.mp4", 15, fourcc="mp4v")
    ds = read(tmp_path, fps=fps)
    assert frames_of(ds) == expected
    assert [bar_frame(img.path) for img in ds.images] == expected


def test_frame_selector_is_the_first_frame_at_or_after_each_sample_time() -> None:
    keep = frame_selector(29.97, fps=1.0)
    assert [i for i in range(100) if keep(i)] == [0, 30, 60, 90]
    keep = frame_selector(30.0, fps=10.0)
    assert [i for i in range(10) if keep(i)] == [0, 3, 6, 9]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"every": 2, "fps": 1.0}, "not both"),
        ({"every": 0}, "every must be"),
        ({"fps": -1.0}, "fps must be"),
    ],
)
def test_bad_sampling_options(tmp_path: Path, source: dict[str, object], message: str) -> None:
    write_clip(tmp_path / "c.avi", 3)
    with pytest.raises(UsageError, match=message):
        read(tmp_path, **source)


def test_groups_keep_frames_of_a_clip_together(tmp_path: Path) -> None:
    write_clip(tmp_path / "a.avi", 4)
    write_clip(tmp_path / "sub" / "b.AVI", 3)
    ds = read(tmp_path)
    groups = images_by_group(ds.images)
    assert {g: len(v) for g, v in groups.items()} == {"video/a": 4, "video/sub/b": 3}
    assert ds.images[-1].file_name == "sub/b_f000002.jpg"


def test_single_clip_path_and_detect(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "one.avi", 3)
    assert len(read(clip)) == 3
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="not a video clip"):
        read(tmp_path / "notes.txt")
    src = VideoSource()
    assert src.detect(clip) == 90
    assert src.detect(tmp_path) == 90
    write_clip(tmp_path / "nested" / "deeper" / "x.mkv", 2)
    assert src.detect(tmp_path / "nested") == 90
    assert src.detect(tmp_path / "notes.txt") == 0
    (tmp_path / "empty").mkdir()
    assert src.detect(tmp_path / "empty") == 0
    with pytest.raises(UsageError, match="no video clips"):
        read(tmp_path / "empty")


def test_progress_wraps_the_frame_loops(tmp_path: Path) -> None:
    write_clip(tmp_path / "c.avi", 4)
    seen: list[str] = []

    class Recorder:
        def track(
            self, items: Iterable[T], *, total: int | None = None, description: str = ""
        ) -> Iterator[T]:
            seen.append(description)
            yield from items

    VideoSource().read(tmp_path, ReadOptions(progress=Recorder()))
    assert seen == ["decoding c.avi", "frames of c"]


# -- cache --------------------------------------------------------------------------------
def test_cache_is_reused_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_clip(tmp_path / "c.avi", 6)
    first = read(tmp_path)
    stamp = first.images[0].path.stat().st_mtime_ns

    def no_decode(*args: object) -> None:
        raise AssertionError("the clip was opened although every frame is cached")

    with monkeypatch.context() as m:
        m.setattr(video_module.cv2, "VideoCapture", no_decode)
        second = read(tmp_path)
        assert [i.path for i in second.images] == [i.path for i in first.images]
        assert frames_of(read(tmp_path, every=2)) == [0, 2, 4]  # a subset: still cached
    assert first.images[0].path.stat().st_mtime_ns == stamp


def test_cache_fills_missing_frames_only(tmp_path: Path, cache_dir: Path) -> None:
    write_clip(tmp_path / "c.avi", 6)
    sparse = read(tmp_path, every=3)
    stamp = sparse.images[1].path.stat().st_mtime_ns
    folder = sparse.images[0].path.parent
    assert sorted(p.name for p in folder.glob("*.jpg")) == ["c_f000000.jpg", "c_f000003.jpg"]
    full = read(tmp_path)
    assert len(full) == 6 and full.images[3].path.stat().st_mtime_ns == stamp
    # A changed clip gets a new cache folder.
    write_clip(tmp_path / "c.avi", 2)
    assert read(tmp_path).images[0].path.parent != folder


# -- FURG XML -----------------------------------------------------------------------------
def test_furg_xml_boxes_negatives_and_uncovered_frames(tmp_path: Path) -> None:
    write_clip(tmp_path / "house.avi", 8)
    furg_xml(
        tmp_path / "house.xml",
        {0: ["10 12 6 8", "30 5 4 4"], 1: ["11 12 6 8"], 3: [], 4: ["1 2 3 4 smoke"]},
    )
    ds = read(tmp_path)
    by_frame = {img.attributes["frame"]: img for img in ds.images}
    assert [a.bbox for a in by_frame[0].annotations] == [
        (10.0, 12.0, 16.0, 20.0),
        (30.0, 5.0, 34.0, 9.0),
    ]
    assert [a.bbox for a in by_frame[1].annotations] == [(11.0, 12.0, 17.0, 20.0)]
    names = ds.category_names()
    assert [names[a.category_id] for a in by_frame[4].annotations] == ["smoke"]
    assert names[by_frame[0].annotations[0].category_id] == "fire"
    # Frame 2 (absent, inside the listed range) and 3 (listed empty) are negatives.
    assert by_frame[2].is_negative and by_frame[3].is_negative
    # Frames 5..7 lie after the last annotated frame: tagged, not negatives.
    assert all(by_frame[i].attributes["unlabeled"] is True for i in (5, 6, 7))
    assert "clip_class" not in by_frame[5].attributes
    assert ds.info["clips"]["house"]["labels"] == "furg-xml"


def test_furg_class_name_from_the_file(tmp_path: Path) -> None:
    write_clip(tmp_path / "c.avi", 2)
    furg_xml(tmp_path / "c.xml", {0: ["1 1 5 5"], 1: []}, extra="<className>flame</className>\n")
    ds = read(tmp_path)
    assert [c.name for c in ds.categories] == ["flame"]


def test_furg_frames_past_the_end_are_reported(tmp_path: Path) -> None:
    write_clip(tmp_path / "c.avi", 3)
    furg_xml(tmp_path / "c.xml", {0: [], 1: [], 2: [], 3: ["1 1 2 2"]})
    ds = read(tmp_path)
    assert len(ds) == 3
    (drop,) = ds.info["dropped"]
    assert drop["item"] == "c_f000003.jpg" and "past the end" in drop["reason"]


def test_malformed_xml_is_a_clear_error_and_skip_keeps_other_clips(tmp_path: Path) -> None:
    write_clip(tmp_path / "bad.avi", 3)
    write_clip(tmp_path / "good.avi", 3)
    furg_xml(tmp_path / "good.xml", {0: ["1 1 4 4"], 1: [], 2: []})
    (tmp_path / "bad.xml").write_text(
        "<opencv_storage><frames><_><frameNumber>0</frameNumber>\n<annotations>"
    )
    with pytest.raises(MalformedFileError, match=r"bad\.xml' line \d+: not well-formed XML"):
        read(tmp_path)
    policy = ErrorPolicy(OnError.skip)
    ds = read(tmp_path, policy=policy)
    assert {img.attributes["clip"] for img in ds.images} == {"good"}
    assert len(ds) == 3 and ds.num_annotations == 1
    assert policy.skipped[0]["kind"] == "malformed" and policy.skipped[0]["file"].endswith(
        "bad.xml"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<opencv_storage><fileName>x</fileName></opencv_storage>", "no <frames> element"),
        (
            "<opencv_storage><frames><_><frameNumber>zero</frameNumber></_></frames></opencv_storage>",
            "frame entry 1 has no valid <frameNumber>",
        ),
    ],
)
def test_unusable_xml(tmp_path: Path, content: str, message: str) -> None:
    write_clip(tmp_path / "c.avi", 2)
    (tmp_path / "c.xml").write_text(content)
    with pytest.raises(MalformedFileError, match=message):
        read(tmp_path)


def test_bad_rectangle_drops_only_its_frame(tmp_path: Path) -> None:
    write_clip(tmp_path / "c.avi", 3)
    furg_xml(tmp_path / "c.xml", {0: ["1 1 4 4"], 1: ["1 1 four 4"], 2: ["2 2 4 4"]})
    with pytest.raises(
        MalformedFileError, match=r"frame 1 rectangle 1: expected 'x y w h'.*'1 1 four 4'"
    ):
        read(tmp_path)
    policy = ErrorPolicy(OnError.skip)
    ds = read(tmp_path, policy=policy)
    assert frames_of(ds) == [0, 2] and len(policy.skipped) == 1
    assert policy.skipped[0]["left_out"] == "c_f000001.jpg"  # the frame it takes with it


def test_boxes_are_validated(tmp_path: Path) -> None:
    write_clip(tmp_path / "c.avi", 3)
    furg_xml(tmp_path / "c.xml", {0: ["60 40 8 4"], 1: ["100 100 5 5"], 2: ["3 3 0 5"]})
    policy = ErrorPolicy(OnError.skip)
    ds = read(tmp_path, policy=policy)
    # Frame 0: box reaching 4 px past the right edge is clipped and reported.
    assert frames_of(ds) == [0]
    assert ds.images[0].annotations[0].bbox == (60.0, 40.0, 64.0, 44.0)
    assert ds.info["changed"][0]["change"] == "box clipped to image"
    assert [s["kind"] for s in policy.skipped] == ["bad-annotation", "bad-annotation"]
    with pytest.raises(AnnotationError, match="outside"):
        read(tmp_path)


def test_xml_for_another_frame_size(tmp_path: Path) -> None:
    write_clip(tmp_path / "c.avi", 2)
    furg_xml(tmp_path / "c.xml", {0: []}, size=(426, 240))
    with pytest.raises(AnnotationError, match="426x240 frames but the clip's frames are 64x48"):
        read(tmp_path)


# -- per-frame YOLO / VOC ------------------------------------------------------------------
def test_per_frame_yolo_folder_with_a_step(tmp_path: Path) -> None:
    write_clip(tmp_path / "clip.avi", 7)
    labels = tmp_path / "clip_labels"
    labels.mkdir()
    (labels / "classes.txt").write_text("fire\nsmoke\n")
    (labels / "clip_000000.txt").write_text("0 0.5 0.5 0.25 0.5\n")
    (labels / "clip_000002.txt").write_text("1 0.25 0.25 0.125 0.25\n0 0.5 0.5 0.25 0.5\n")
    (labels / "clip_000004.txt").write_text("")
    (labels / "readme_notes.txt").write_text("no frame number here")
    ds = read(tmp_path)
    by_frame = {img.attributes["frame"]: img for img in ds.images}
    names = ds.category_names()
    assert [a.bbox for a in by_frame[0].annotations] == [(24.0, 12.0, 40.0, 36.0)]
    assert [names[a.category_id] for a in by_frame[2].annotations] == ["smoke", "fire"]
    assert by_frame[4].is_negative  # listed, empty
    # Labels every 2nd frame: odd frames and frames after 4 are not annotated.
    assert all(by_frame[i].attributes.get("unlabeled") for i in (1, 3, 5, 6))
    (unnamed,) = [d for d in ds.info["dropped"] if d["file"].endswith("readme_notes.txt")]
    # A label file left out, not a frame: manifests count it with annotations, not images.
    assert unnamed["reason"] == "label file name has no frame number"
    assert drop_level(unnamed) == "annotation"


def test_per_frame_voc_folder_one_based(tmp_path: Path) -> None:
    write_clip(tmp_path / "clip.avi", 3)
    folder = tmp_path / "clip"
    folder.mkdir()
    obj = "<object><name>smoke</name><bndbox><xmin>11</xmin><ymin>6</ymin><xmax>20</xmax><ymax>15</ymax></bndbox></object>"
    for n in (1, 2, 3):  # 1-based: no frame 0, and one numbered with the frame count
        (folder / f"frame_{n}.xml").write_text(f"<annotation>{obj if n == 1 else ''}</annotation>")
    ds = read(tmp_path)
    assert [len(img.annotations) for img in ds.images] == [1, 0, 0]
    assert ds.images[0].annotations[0].bbox == (10.0, 5.0, 20.0, 15.0)
    assert all(not img.attributes.get("unlabeled") for img in ds.images)
    assert ds.info["changed"][0]["change"] == "label file numbers read as 1-based"


def test_frame_number_patterns() -> None:
    for name in (
        "clip_12",
        "clip_f000012",
        "clip-frame12",
        "frame_12",
        "frame12",
        "12",
        "f12",
        "img_0012",
        "clip12",
    ):
        assert frame_number(name, "clip") == 12, name
    assert frame_number("other_12_x", "clip") is None
    assert frame_number("notes", "clip") is None


# -- clips without annotations ----------------------------------------------------------
def test_unlabeled_clips_tag_negative_or_skip(tmp_path: Path, cache_dir: Path) -> None:
    write_clip(tmp_path / "forest_smoke.avi", 3)
    tagged = read(tmp_path)
    assert all(img.attributes["unlabeled"] is True for img in tagged.images)
    assert all(
        img.attributes["clip_class"] == "smoke" and not img.is_negative for img in tagged.images
    )
    negative = read(tmp_path, unlabeled="negative")
    assert all(
        img.is_negative and img.attributes["clip_class"] == "smoke" for img in negative.images
    )
    assert all("unlabeled" not in img.attributes for img in negative.images)


def test_skipped_unlabeled_clip_is_not_decoded(tmp_path: Path, cache_dir: Path) -> None:
    write_clip(tmp_path / "fire1.avi", 3)
    write_clip(tmp_path / "labelled.avi", 2)
    furg_xml(tmp_path / "labelled.xml", {0: ["1 1 3 3"], 1: []})
    ds = read(tmp_path, unlabeled="skip")
    assert {img.attributes["clip"] for img in ds.images} == {"labelled"}
    assert ds.info["dropped"] == [
        {
            "item": "fire1",
            "reason": "clip has no annotations (unlabeled=skip)",
            "file": str(tmp_path / "fire1.avi"),
        }
    ]
    assert len(list((cache_dir / "frames").iterdir())) == 1  # only the labelled clip


def test_clip_class_guess() -> None:
    assert guess_clip_class("SmokeClips/forest_smoke2") == "smoke"
    assert guess_clip_class("Flame1") == "fire"
    assert guess_clip_class("fire/barbecue") == "fire"
    assert guess_clip_class("no_fire_street") == "other"
    assert guess_clip_class("nofire") == "other"
    assert guess_clip_class("traffic") == "other"


# -- broken clips --------------------------------------------------------------------------
def test_corrupt_clip_fails_or_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "broken.avi").write_bytes(b"\x00garbage" * 100)
    write_clip(tmp_path / "ok.avi", 2)
    with pytest.raises(CorruptImageError, match=r"broken\.avi"):
        read(tmp_path)
    policy = ErrorPolicy(OnError.skip)
    ds = read(tmp_path, policy=policy)
    assert len(ds) == 2 and policy.skipped[0]["kind"] == "corrupt-image"


def test_inputs_are_not_touched(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    write_clip(clips / "a.avi", 3)
    furg_xml(clips / "a.xml", {0: [], 1: [], 2: []})
    before = {p.name: p.stat().st_mtime_ns for p in clips.iterdir()}
    read(clips)
    assert {p.name: p.stat().st_mtime_ns for p in clips.iterdir()} == before


# -- an unusable frame cache, leftovers of interrupted runs -----------------------------------
def test_cache_path_that_is_a_file_falls_back_to_a_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "cachefile"
    blocker.write_text("hi")
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(blocker))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    write_clip(tmp_path / "clips" / "a.avi", 4)
    write_clip(tmp_path / "clips" / "b.avi", 3)
    ds = read(tmp_path / "clips")
    assert len(ds) == 7 and [bar_frame(i.path) for i in ds.images[:4]] == [0, 1, 2, 3]
    folder = Path(ds.info["temporary_frames"])
    assert folder.parent == tmp_path / "tmp"
    assert all(folder in i.path.parents for i in ds.images)
    (note,) = ds.info["notes"]  # one note for the read, not one per clip
    assert str(blocker) in note and "SODKIT_CACHE_DIR" in note and str(folder) in note


def test_read_only_cache_falls_back_to_a_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    real_write = video_module.write_image

    def read_only(path: Path, *args: object, **kwargs: object) -> None:
        if cache_dir in Path(path).parents:  # root ignores permission bits: refuse here
            raise PermissionError(13, "Permission denied", str(path))
        real_write(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(video_module, "write_image", read_only)
    write_clip(tmp_path / "clips" / "a.avi", 3)
    ds = read(tmp_path / "clips")
    assert [bar_frame(i.path) for i in ds.images] == [0, 1, 2]
    assert "Permission denied" in ds.info["notes"][0]


def test_frames_left_in_a_temporary_folder_are_removed_at_exit(tmp_path: Path) -> None:
    write_clip(tmp_path / "a.avi", 2)
    (tmp_path / "cachefile").write_text("hi")
    code = (
        "import sys; from pathlib import Path; from curate.sources.video import VideoSource; "
        "from curate.formats.base import ReadOptions; "
        "ds = VideoSource().read(Path(sys.argv[1]), ReadOptions()); "
        "assert all(i.path.is_file() for i in ds.images); print(ds.info['temporary_frames'])"
    )
    env = {
        **os.environ,
        "SODKIT_CACHE_DIR": str(tmp_path / "cachefile"),
        "TMPDIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.avi")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    folder = Path(proc.stdout.strip())
    assert folder.parent == tmp_path and not folder.exists()


def test_temp_files_of_interrupted_runs_are_removed(tmp_path: Path) -> None:
    write_clip(tmp_path / "c.avi", 3)
    folder = read(tmp_path).images[0].path.parent
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    stale = [folder / f".c_f000001.jpg.tmp{dead}", folder / f".meta.json.tmp-{dead}-0123abcd"]
    kept = [
        folder / f".c_f000002.jpg.tmp{os.getpid()}",  # a running process's
        folder / f".c_f000000.jpg.tmp{dead}x",  # not a name we write
    ]
    hour_ago = time.time() - 3600
    for p in [*stale, *kept]:
        p.write_bytes(b"partial")
        os.utime(p, (hour_ago, hour_ago))
    fresh = folder / f".c_f000002.jpg.tmp{dead}"  # may be another machine's, being written
    fresh.write_bytes(b"partial")
    read(tmp_path)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in [*kept, fresh])


def test_frames_in_a_temporary_folder_are_copied_where_symlinks_were_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Links into the temporary folder would dangle once the run ends."""
    from curate.formats.base import WriteOptions
    from curate.io import write_dataset

    (tmp_path / "cachefile").write_text("hi")
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(tmp_path / "cachefile"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    write_clip(tmp_path / "clips" / "a.avi", 3)
    ds = read(tmp_path / "clips")
    res = write_dataset(ds, tmp_path / "out", "coco", WriteOptions(link="symlink"))
    images = [p for p in (tmp_path / "out").rglob("*.jpg")]
    assert len(images) == 3 and not any(p.is_symlink() for p in images)
    assert any("copied, not symlinked" in c["change"] for c in res.changed)
    # Frames from a working cache are linked as asked.
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(tmp_path / "cache"))
    ds = read(tmp_path / "clips")
    write_dataset(ds, tmp_path / "out2", "coco", WriteOptions(link="symlink"))
    assert all(p.is_symlink() for p in (tmp_path / "out2").rglob("*.jpg"))


def test_a_frame_that_cannot_be_decoded_counts_its_boxes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame FFmpeg could not decode leaves with the boxes its labels give it."""
    write_clip(tmp_path / "house.avi", 4)
    furg_xml(tmp_path / "house.xml", {0: ["10 12 6 8", "30 5 4 4"], 1: ["11 12 6 8"], 2: []})
    real = video_module.ensure_frames

    def losing_frames(*args, **kwargs):  # type: ignore[no-untyped-def]
        info, folder = real(*args, **kwargs)
        for name in (
            video_module.frame_file_name("house", 0),
            video_module.frame_file_name("house", 2),
        ):
            (folder / name).unlink()
        return info, folder

    monkeypatch.setattr(video_module, "ensure_frames", losing_frames)
    policy = ErrorPolicy(OnError.skip)
    ds = read(tmp_path, policy=policy)
    assert frames_of(ds) == [1, 3]
    left = {s["left_out"]: s.get("left_out_annotations") for s in policy.skipped}
    assert left == {"house_f000000.jpg": 2, "house_f000002.jpg": None}
