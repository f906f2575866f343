"""Exact copies: every group of byte- or pixel-identical images keeps exactly one, whichever
member the keep policy puts first and whatever the cluster mode (QA: ``--exact`` and
``--roi objects`` kept a copy whose only exact link was to a copy that was dropped)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dedupe_helpers import dataset, item, make_scene, save
from PIL import Image
from typer.testing import CliRunner

from curate.cli import app
from curate.core.dataset import Dataset
from curate.dedupe import DedupeOptions, DedupePlan, find_duplicates
from curate.io import write_dataset

BOX = (20.0, 20.0, 60.0, 70.0)
BOX2 = (90.0, 30.0, 130.0, 80.0)
KEEPS = ("most-annotations", "largest", "sharpest", "first")
OPTIONS = {
    "exact": DedupeOptions(exact_only=True),
    "roi": DedupeOptions(roi="objects"),
    "ssim": DedupeOptions(),
    "connected": DedupeOptions(cluster="connected"),
    "roi-connected": DedupeOptions(roi="objects", cluster="connected"),
}
#: Groups of exact copies (by file stem) and the boxes of each image.
GROUPS = (
    frozenset({"a_n1", "a_n2", "a_p1", "a_png"}),
    frozenset({"b_jpg", "b_png"}),
)
BOXES: dict[str, list[tuple[float, float, float, float]]] = {
    "a_n1": [],
    "a_n2": [],
    "u0": [BOX],
    "a_p1": [BOX],
    "a_png": [BOX, BOX2],
    "u1": [BOX2],
    "b_png": [],
    "b_jpg": [BOX],
}


@pytest.fixture
def copies(tmp_path: Path, rng: np.random.Generator) -> Dataset:
    """Three byte copies of a JPEG (0, 0 and 1 boxes) and its pixels as a PNG (2 boxes);
    a JPEG and its pixels as a PNG; two unrelated scenes."""
    d = tmp_path / "data"
    a, b, u0, u1 = (make_scene(rng) for _ in range(4))
    save(a, d / "a_n1.jpg")
    shutil.copyfile(d / "a_n1.jpg", d / "a_n2.jpg")
    shutil.copyfile(d / "a_n1.jpg", d / "a_p1.jpg")
    save(b, d / "b_jpg.jpg")
    for src, dst in (("a_n1.jpg", "a_png.png"), ("b_jpg.jpg", "b_png.png")):
        with Image.open(d / src) as im:
            save(np.asarray(im.convert("RGB")), d / dst)
    save(u0, d / "u0.jpg")
    save(u1, d / "u1.jpg")
    paths = {p.stem: p for p in d.iterdir()}
    return dataset([item(paths[k], v) for k, v in BOXES.items()])


def _check(plan: DedupePlan) -> None:
    """One survivor per exact group, dropped only as exact copies; unrelated images kept."""
    name = {i: plan.images[i].path.stem for i in range(len(plan.images))}
    kept = {name[i] for i in plan.kept_new()}
    for group in GROUPS:
        assert len(kept & group) == 1, f"{sorted(kept & group)} of {sorted(group)} kept"
    assert {"u0", "u1"} <= kept
    for i in plan.dropped():
        assert plan.resolution.link_reason[i] in ("exact-file", "exact-pixels"), name[i]
        assert name[int(plan.resolution.dup_of[i])] in next(g for g in GROUPS if name[i] in g)


@pytest.mark.parametrize("keep", KEEPS)
@pytest.mark.parametrize("mode", sorted(OPTIONS))
def test_each_group_of_exact_copies_keeps_one(copies: Dataset, mode: str, keep: str) -> None:
    options = DedupeOptions(**{**OPTIONS[mode].__dict__, "keep": keep})
    plan = find_duplicates(copies, options)
    _check(plan)
    again, _ = plan.output_dataset()
    assert find_duplicates(again, options).dropped() == []


@pytest.mark.parametrize("mode", ["exact", "roi"])
def test_exact_copies_of_a_reference_image_all_go(copies: Dataset, mode: str) -> None:
    ref = copies.subset(img for img in copies.images if img.path.stem == "a_n2")
    new = copies.subset(img for img in copies.images if img.path.stem != "a_n2")
    plan = find_duplicates(new, OPTIONS[mode], reference=ref)
    kept = {plan.images[i].path.stem for i in plan.kept_new()}
    assert kept == {"u0", "u1", next(iter(kept & GROUPS[1]))}
    assert all(
        plan.label(int(plan.resolution.dup_of[i])) == "reference:a_n2.jpg"
        for i in plan.dropped()
        if plan.images[i].path.stem in GROUPS[0]
    )


@pytest.mark.parametrize("keep", KEEPS)
@pytest.mark.parametrize("flags", [["--exact"], ["--roi", "objects"]])
def test_cli_output_has_no_exact_copies_left(
    copies: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], keep: str
) -> None:
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "yolo"
    write_dataset(copies, src, "yolo")
    runner = CliRunner()
    outs = [tmp_path / "once", tmp_path / "twice"]
    for inp, out in zip([src, outs[0]], outs, strict=True):
        args = ["dedupe", str(inp), "--out", str(out), "--keep", keep, "-j", "1", *flags]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    first, second = (json.loads((o / "manifest.json").read_text()) for o in outs)
    dropped = {Path(d["item"]).stem: d["reason"] for d in first["dropped"]}
    assert len(dropped) == sum(len(g) - 1 for g in GROUPS), dropped
    assert set(dropped.values()) <= {"exact-file", "exact-pixels"}
    assert second["dropped"] == []


def test_greedy_puts_exact_copies_in_one_cluster(tmp_path: Path) -> None:
    """QA: a byte copy of a dropped image went to the nearest image kept since, so exact
    copies sat in two clusters (and ``split --groups`` could put them in two splits).

    ``b`` (first dropped, at ``a``) and its copy ``c`` are both duplicates of ``a`` and of
    ``d`` (kept after ``b``, not a duplicate of ``a``); ``d`` is nearer to them."""
    rng = np.random.default_rng(3)  # scenes whose SSIMs are as below
    scene, other = make_scene(rng, 240, 320), make_scene(rng, 240, 320)
    a, d = scene.copy(), scene.copy()
    a[:, :130] = other[:, :130]  # SSIM with b 0.87 at 128 px
    d[:, -30:] = other[:, -30:]  # 0.95 with b, 0.82 with a
    folder = tmp_path / "data"
    for name, arr in (("a", a), ("b", scene), ("d", d)):
        save(arr, folder / f"{name}.png")
    shutil.copyfile(folder / "b.png", folder / "c.png")
    ds = dataset([item(folder / f"{k}.png") for k in "abdc"])
    plan = find_duplicates(ds, DedupeOptions(keep="first"))
    res = plan.resolution
    stem = [img.path.stem for img in plan.images]
    assert {stem[i] for i in plan.kept_new()} == {"a", "d"}
    cluster = {stem[i]: stem[int(res.cluster[i])] for i in plan.dropped()}
    assert cluster == {"b": "a", "c": "a"}
    c = stem.index("c")
    assert res.link_reason[c] == "ssim"
