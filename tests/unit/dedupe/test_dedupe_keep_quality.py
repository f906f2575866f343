"""Keep-policy ties go to the less compressed copy (QA: with equal annotations and size,
dataset order kept a quality-50 re-encode over its original)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from dedupe_helpers import dataset, item, make_scene
from PIL import Image

from curate.core.imageio import jpeg_quality
from curate.dedupe import DedupeOptions, find_duplicates
from curate.dedupe.report import build_report


def _jpeg(arr: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize("quality", [5, 20, 49, 50, 51, 75, 90, 95, 100])
def test_jpeg_quality_reads_the_encoders_setting(rng: np.random.Generator, quality: int) -> None:
    arr = make_scene(rng)
    assert jpeg_quality(_jpeg(arr, quality)) == quality
    ok, enc = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok and jpeg_quality(enc.tobytes()) == quality


def test_jpeg_quality_is_none_without_a_table(rng: np.random.Generator) -> None:
    png = io.BytesIO()
    Image.fromarray(make_scene(rng)).save(png, "PNG")
    full = _jpeg(make_scene(rng), 80)
    start = full.index(b"\xff\xdb")
    for data in (png.getvalue(), b"", b"\xff\xd8", full[: start + 10], b"\xff\xd8\x00\x01"):
        assert jpeg_quality(data) is None


@pytest.mark.parametrize("keep", ["most-annotations", "largest"])
def test_a_tie_keeps_the_less_compressed_copy(
    tmp_path: Path, rng: np.random.Generator, keep: str
) -> None:
    scene = make_scene(rng, 240, 320)
    names = {"a_q50": 50, "b_q92": 92, "c_q75": 75}  # dataset order puts q50 first
    for name, q in names.items():
        (tmp_path / f"{name}.jpg").write_bytes(_jpeg(scene, q))
    box = [(20.0, 20.0, 90.0, 80.0)]
    ds = dataset([item(tmp_path / f"{n}.jpg", box) for n in names])
    plan = find_duplicates(ds, DedupeOptions(keep=keep))
    assert [plan.images[i].path.stem for i in plan.kept_new()] == ["b_q92"]
    (cluster,) = build_report(plan)["clusters"]
    assert "JPEG quality" in cluster["kept_reason"]
    assert [plan.signatures[i].quality for i in range(3)] == [50, 92, 75]


def test_sharpest_ranks_heavy_compression_below(tmp_path: Path, rng: np.random.Generator) -> None:
    """QA: ``--keep sharpest`` kept quality-50 JPEGs, whose blocking raises the Laplacian
    variance; copies compressed below quality 70 now rank below the others."""
    scene = cv2.GaussianBlur(make_scene(rng, 480, 640), (0, 0), 2.0)
    names = {"a_q30": 30, "b_q60": 60, "c_q90": 90}
    for name, q in names.items():
        (tmp_path / f"{name}.jpg").write_bytes(_jpeg(scene, q))
    ds = dataset([item(tmp_path / f"{n}.jpg") for n in names])
    plan = find_duplicates(ds, DedupeOptions(keep="sharpest"))
    sharp = plan.sharpness
    assert sharp is not None and max(sharp[0], sharp[1]) > sharp[2]  # the trap
    assert [plan.images[i].path.stem for i in plan.kept_new()] == ["c_q90"]
    (cluster,) = build_report(plan)["clusters"]
    assert "compressed below JPEG quality 70" in cluster["kept_reason"]


@pytest.mark.parametrize("keep", ["most-annotations", "largest", "sharpest"])
def test_a_tie_keeps_colour_over_gray(tmp_path: Path, rng: np.random.Generator, keep: str) -> None:
    """QA: a gray copy (first in dataset order) was kept and its colour original dropped."""
    scene = make_scene(rng, 240, 320)
    gray = cv2.cvtColor(cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    (tmp_path / "a_gray.png").write_bytes(cv2.imencode(".png", gray)[1].tobytes())
    (tmp_path / "b_colour.png").write_bytes(cv2.imencode(".png", scene[:, :, ::-1])[1].tobytes())
    ds = dataset(
        [item(tmp_path / n, [(20.0, 20.0, 90.0, 80.0)]) for n in ("a_gray.png", "b_colour.png")]
    )
    plan = find_duplicates(ds, DedupeOptions(keep=keep))
    assert [plan.images[i].path.stem for i in plan.kept_new()] == ["b_colour"]
    assert plan.dropped() and plan.images[plan.dropped()[0]].path.stem == "a_gray"
