"""The flat-cluster note on real pictures: sky crops of a SAHI terrain image, a Roboflow smoke
photo and COCO photos (the QA's scale set, in small)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from curate.core.dataset import Category, Dataset, ImageItem
from curate.dedupe import DedupeOptions, build_report, find_duplicates
from curate.dedupe.report import FLAT_SHARE, flat_share

pytestmark = pytest.mark.real

SMOKE = "roboflow-fire-smoke/train/images/img_911_jpg.rf.421301d75398feed2f395f74445badf8.jpg"


@pytest.fixture
def scale(shared_data: Path, tmp_path: Path) -> Dataset:
    """12 crops of the sky over terrain1.jpg (192 and 256 px, the QA's grid), the smoke photo
    that survived the QA's 2,113-image cluster, and the 10 COCO photos."""
    d = tmp_path / "scale"
    d.mkdir()
    items = []
    with Image.open(shared_data / "sahi-terrain/coco_utils/terrain1.jpg") as im:
        sky = im.convert("RGB")
    for size in (192, 256):
        for x in (0, 640, 1280):
            for y in (0, 192):
                p = d / f"t4_{size}_{x}_{y}.jpg"
                sky.crop((x, y, x + size, y + size)).save(p, quality=90)
                items.append(ImageItem(p.name, p, size, size))
    photos = [shared_data / SMOKE, *sorted((shared_data / "coco-seg-sample/images").glob("*.jpg"))]
    for src in photos:
        p = d / src.name
        shutil.copyfile(src, p)
        with Image.open(p) as im:
            items.append(ImageItem(p.name, p, *im.size))
    return Dataset([Category(0, "smoke")], items)


def test_sky_crops_cluster_and_are_named_photos_are_not(scale: Dataset) -> None:
    plan = find_duplicates(scale, DedupeOptions(ssim=0.85))
    rep = build_report(plan)
    flat = [c for c in rep["clusters"] if 2 * c["flat_members"] > c["size"]]
    in_flat = {m["file_name"] for c in flat for m in c["members"]}
    assert sum(name.startswith("t4_") for name in in_flat) >= 10
    assert not any(name.startswith("0000") for name in in_flat)  # no COCO photo
    (note,) = rep["notes"]
    assert note.startswith(f"{len(flat)} cluster(s) ({sum(c['size'] for c in flat)} images")
    # Every COCO photo has texture: none is nearly flat.
    pairs = zip(plan.images, plan.signatures, strict=True)
    coco = [s for img, s in pairs if img.file_name.startswith("0000")]
    assert len(coco) == 10
    assert all(s is not None and flat_share(s.thumb) < FLAT_SHARE for s in coco)
