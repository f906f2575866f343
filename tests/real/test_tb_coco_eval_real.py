"""train_bridge.evaluate on SAHI's evaluation pair: same numbers as plain pycocotools."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from curate.formats.base import ReadOptions
from curate.io import load_dataset
from train_bridge.evaluate import STAT_NAMES, coco_eval, coco_gt

pytestmark = pytest.mark.real


def test_sahi_pair_matches_pycocotools(shared_data, tmp_path):
    folder = shared_data / "sahi-terrain" / "coco_evaluate"
    gt_json = json.loads((folder / "dataset.json").read_text())
    results = json.loads((folder / "result.json").read_text())
    # The file's 'area' fields are wrong (sodkit recomputes them from the boxes), so the
    # reference run gets box areas too; everything else is the file as distributed.
    for a in gt_json["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3]
    fixed = tmp_path / "gt.json"
    fixed.write_text(json.dumps(gt_json))
    with contextlib.redirect_stdout(io.StringIO()):
        ref_gt = COCO(str(fixed))
        ev = COCOeval(ref_gt, ref_gt.loadRes(str(folder / "result.json")), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()

    ds = load_dataset(f"coco:{folder / 'dataset.json'}", ReadOptions(check_images=False))
    ours = coco_eval(coco_gt(ds.images, ds.categories), results)
    np.testing.assert_allclose([ours.stats[k] for k in STAT_NAMES], ev.stats, atol=1e-12)
    assert 0 < ours.stats["AP"] < ours.stats["AP50"] < 1
    assert ours.images == 2 and ours.detections == len(results)
    assert ours.per_class["car"]["AP"] > 0
