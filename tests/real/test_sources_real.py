"""Raw sources on the shared real data: the FURG clip house6 with its XML annotations."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import pytest

from curate.core.dataset import images_by_group
from curate.formats.base import ReadOptions, SourceOptions
from curate.sources.video import VideoSource

pytestmark = pytest.mark.real


@pytest.fixture
def furg(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = shared_data / "furg-fire-video"
    if not (folder / "house6.mp4").is_file():
        pytest.skip(f"FURG clip not found in {folder}")
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def decoded_frame_count(clip: Path) -> int:
    cap = cv2.VideoCapture(str(clip))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def xml_boxes(xml: Path) -> dict[int, list[tuple[float, float, float, float]]]:
    """Frame → XYXY boxes, read straight from the FURG file (independent of sodkit)."""
    out: dict[int, list[tuple[float, float, float, float]]] = {}
    for entry in ET.parse(xml).getroot().iter("frames"):
        for frame in entry:
            rects = []
            for r in frame.iter("annotations"):
                for rect in r:
                    x, y, w, h = (float(v) for v in (rect.text or "").split())
                    rects.append((x, y, x + w, y + h))
            out[int(frame.findtext("frameNumber") or -1)] = rects
    return out


def test_furg_frames_and_boxes_match_the_clip_and_xml(furg: Path) -> None:
    clip, xml = furg / "house6.mp4", furg / "house6.xml"
    ds = VideoSource().read(furg, ReadOptions())
    count = decoded_frame_count(clip)
    assert len(ds) == count
    assert [img.attributes["frame"] for img in ds.images] == list(range(count))
    expected = xml_boxes(xml)
    for img in ds.images:
        assert (img.width, img.height) == (426, 240)
        assert [a.bbox for a in img.annotations] == expected[img.attributes["frame"]]
    assert ds.num_annotations == sum(len(expected[i]) for i in range(count))
    assert set(images_by_group(ds.images)) == {"video/house6"}
    # The XML lists one frame more than the clip decodes to; it is reported, not lost silently.
    beyond = [n for n in expected if n >= count]
    assert [d["item"] for d in ds.info["dropped"]] == [f"house6_f{n:06d}.jpg" for n in beyond]


def test_furg_sampled_by_fps_and_cached(furg: Path) -> None:
    ds = VideoSource().read(furg, ReadOptions(source=SourceOptions(fps=2.0)))
    clip = ds.info["clips"]["house6"]
    fps = clip["fps"]
    frames = [img.attributes["frame"] for img in ds.images]
    # The first frame at or after each half second of clip time.
    last_sample = int((clip["frames"] - 1) / fps * 2)
    assert frames == [math.ceil(k * fps / 2 - 1e-9) for k in range(last_sample + 1)]
    first = ds.images[5]
    assert first.attributes["time_s"] == pytest.approx(first.attributes["frame"] / fps)
    again = VideoSource().read(furg, ReadOptions(source=SourceOptions(fps=2.0)))
    assert [i.path for i in again.images] == [i.path for i in ds.images]
