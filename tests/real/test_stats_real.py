"""Stats and anchors on the VisDrone COCO sample (3326 boxes, 50 images, images absent)."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from curate.anchors import AnchorOptions, anchors_for_dataset
from curate.core.errors import ErrorPolicy, OnError
from curate.formats.base import ReadOptions
from curate.io import load_dataset
from curate.report import make_plots, render_html
from curate.stats import StatsOptions, compute_stats

pytestmark = pytest.mark.real

VISDRONE = "sahi-terrain/coco_utils/visdrone2019-det-train-first50image.json"


def _bucket(area: float) -> str:
    side = math.sqrt(area)
    for edge, name in ((8, "<8"), (16, "8-16"), (32, "16-32"), (96, "32-96")):
        if side < edge:
            return name
    return ">=96"


@pytest.fixture(scope="module")
def visdrone(shared_data: Path) -> tuple[Path, dict]:
    path = shared_data / VISDRONE
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path, json.loads(path.read_text())


def test_small_object_counts_match_the_raw_json(visdrone: tuple[Path, dict]) -> None:
    path, raw = visdrone
    policy = ErrorPolicy(OnError.skip)
    ds = load_dataset(str(path), ReadOptions(policy=policy, check_images=False))
    s = compute_stats(ds, StatsOptions(imgsz=640), skipped=policy.skipped)
    assert s.num_images == 50 and s.num_boxes == 3326
    assert s.reader["skipped"] == 0 and s.reader["changed"] == 0

    # the same numbers straight from the COCO JSON (xywh), one box at a time
    sizes = {im["id"]: (im["width"], im["height"]) for im in raw["images"]}
    names = {c["id"]: c["name"] for c in raw["categories"]}
    native: dict[str, Counter[str]] = {}
    at_input: dict[str, Counter[str]] = {}
    for a in raw["annotations"]:
        _, _, w, h = a["bbox"]
        iw, ih = sizes[a["image_id"]]
        scale = 640 / max(iw, ih)
        for key in (names[a["category_id"]], "all"):
            native.setdefault(key, Counter())[_bucket(w * h)] += 1
            at_input.setdefault(key, Counter())[_bucket(w * scale * h * scale)] += 1
    for c in [*s.classes, s.overall]:
        assert c.buckets_native == {k: native[c.name][k] for k in c.buckets_native}, c.name
        assert c.buckets_input == {k: at_input[c.name][k] for k in c.buckets_input}, c.name
    assert s.overall.coco_input["small"] == 3061
    assert Counter({c.name: c.boxes for c in s.classes}) == Counter(
        names[a["category_id"]] for a in raw["annotations"]
    )
    negatives = {im["id"] for im in raw["images"]} - {a["image_id"] for a in raw["annotations"]}
    assert s.num_negatives == len(negatives)


def test_report_on_real_data(visdrone: tuple[Path, dict], tmp_path: Path) -> None:
    path, _ = visdrone
    ds = load_dataset(f"coco:{path}", ReadOptions(check_images=False))
    s = compute_stats(ds)
    plots = make_plots(s)
    page = render_html(s, plots)
    assert page.count("data:image/png;base64,") == len(plots)
    for png in plots.values():
        assert base64.b64encode(png).decode() in page
    assert s.heatmaps["vehicle"].sum() == s.classes[1].valid_boxes


def test_anchors_on_real_data(visdrone: tuple[Path, dict]) -> None:
    path, _ = visdrone
    ds = load_dataset(str(path), ReadOptions(check_images=False))
    res = anchors_for_dataset(ds, AnchorOptions(), np.random.default_rng(0))
    assert res.num_boxes == 3326
    assert res.ours.fitness > res.default.fitness + 0.15
    assert res.ours.bpr > res.default.bpr
    assert res.ours.anchors_above_thr > 1.5 * res.default.anchors_above_thr
    assert res.share_under_8px > 0.3  # VisDrone at 640: many boxes under one stride-8 cell
    assert any("stride-4" in r for r in res.recommendations)
