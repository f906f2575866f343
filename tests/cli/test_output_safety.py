"""Inputs are never modified: same names in two splits, report files, existing outputs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.core.dataset import Category, Dataset, ImageItem
from curate.core.files import OutputCollisionError, place_file
from curate.io import load_dataset, write_dataset
from curate.synthetic import make_scene

from .conftest import manifest


def _checksums(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def clash(tmp_path: Path) -> Path:
    """A Roboflow-style export whose train/ and valid/ each hold a *different* img_1.jpg."""
    rng = np.random.default_rng(3)
    root = tmp_path / "export"
    for split, n in (("train", 3), ("valid", 2)):
        for i in range(n):
            scene = make_scene(160, 160, rng, fires=1, smokes=0)
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            Image.fromarray(scene.image).save(root / split / "images" / f"img_{i}.jpg", quality=92)
            x1, y1, x2, y2 = scene.objects[0][1]
            (root / split / "labels" / f"img_{i}.txt").write_text(
                f"0 {(x1 + x2) / 320:.6f} {(y1 + y2) / 320:.6f} {(x2 - x1) / 160:.6f} "
                f"{(y2 - y1) / 160:.6f}\n"
            )
    (root / "data.yaml").write_text(
        "names:\n- fire\nnc: 1\ntrain: train/images\nval: valid/images\n"
    )
    return root


def test_same_names_in_two_splits_get_unique_names(clash: Path) -> None:
    ds = load_dataset(str(clash))
    names = sorted(i.file_name for i in ds.images)
    assert names == ["img_0.jpg", "img_1.jpg", "img_2.jpg", "val__img_0.jpg", "val__img_1.jpg"]
    renamed = {i.file_name: i for i in ds.images if "renamed_from" in i.attributes}
    assert renamed["val__img_0.jpg"].path == clash / "valid" / "images" / "img_0.jpg"
    assert renamed["val__img_0.jpg"].attributes["original_split"] == "val"
    assert {c["change"] for c in ds.info["changed"]} == {
        f"renamed to val__img_{k}.jpg: split train holds img_{k}.jpg too" for k in (0, 1)
    }


@pytest.mark.parametrize(
    "extra", [[], ["--link", "copy"], ["--link", "symlink"], ["-f", "yolo", "--link", "copy"]]
)
def test_dedupe_never_writes_through_an_input(run, clash: Path, tmp_path: Path, extra) -> None:
    before = _checksums(clash)
    out = tmp_path / "out"
    r = run("dedupe", clash, "--out", out, "-j", "1", *extra)
    assert _checksums(clash) == before
    if "-f" not in extra:  # a YOLO export is written back as YOLO, and says it is unsplit
        assert (out / "data.yaml").is_file() and "output is not split" in r.output
    renamed = [c for c in manifest(out)["changed"] if "split train holds img_" in c["change"]]
    assert len(renamed) == 2
    written = sorted(p.name for p in out.rglob("*.jpg"))
    kept = manifest(out)["counts"]["written_images"]
    assert len(written) == kept == 5 - manifest(out)["counts"]["dropped"]
    # Each written image is the right photo: its bytes equal those of the input it names.
    ds = load_dataset(str(out))
    for img in ds.images:
        src = {i.file_name: i.path for i in load_dataset(str(clash)).images}[img.file_name]
        assert img.path.read_bytes() == src.read_bytes()


def test_place_file_refuses_an_existing_destination(tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    src.write_bytes(b"original")
    other = tmp_path / "b.jpg"
    other.write_bytes(b"other")
    out = tmp_path / "out"
    place_file(src, out / "x.jpg", "hardlink")
    for mode in ("hardlink", "copy", "symlink"):
        with pytest.raises(OutputCollisionError, match="same file name"):
            place_file(other, out / "x.jpg", mode)
    assert src.read_bytes() == b"original"
    os.symlink(tmp_path / "missing", out / "dangling.jpg")
    with pytest.raises(OutputCollisionError):
        place_file(other, out / "dangling.jpg", "copy")


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_writers_refuse_two_images_with_one_name(tmp_path: Path, fmt: str) -> None:
    paths = []
    for k in range(2):
        p = tmp_path / f"d{k}" / "same.jpg"
        p.parent.mkdir()
        Image.fromarray(np.full((20, 30, 3), 40 * k, np.uint8)).save(p)
        paths.append(p)
    ds = Dataset([Category(0, "fire")], [ImageItem("same.jpg", p, 30, 20) for p in paths])
    before = [p.read_bytes() for p in paths]
    with pytest.raises(Exception, match="same"):
        write_dataset(ds, tmp_path / "out", fmt)
    assert [p.read_bytes() for p in paths] == before


def test_report_and_json_paths_are_checked(run, clash: Path, tmp_path: Path) -> None:
    before = _checksums(clash)
    r = run("dedupe", clash, "--dry-run", "--report", clash / "data.yaml", code=1)
    assert "lies in the input" in r.output
    r = run("dedupe", clash, "--dry-run", "--report", clash / "train" / "r.json", code=1)
    assert "lies in the input" in r.output
    r = run("leaks", clash, "--json", clash / "data.yaml", code=1)
    assert "lies in the input" in r.output
    # A dataset given by its data.yaml stands for its folder.
    r = run("dedupe", clash / "data.yaml", "--dry-run", "--report", clash / "r.json", code=1)
    assert "lies in the input" in r.output
    assert _checksums(clash) == before

    out = tmp_path / "out"
    r = run("dedupe", clash, "--out", out, "--report", out / "r.json", code=1)
    assert "lies in --out" in r.output and not out.exists()

    rep = tmp_path / "rep.json"
    run("dedupe", clash, "--dry-run", "-q", "--report", rep)
    assert json.loads(rep.read_text())["clusters"] is not None and rep.with_suffix(".csv").is_file()
    r = run("dedupe", clash, "--dry-run", "--report", rep, code=1)
    assert "exists; pass --overwrite" in r.output
    run("dedupe", clash, "--dry-run", "-q", "--report", rep, "--overwrite")
    # The CSV beside the JSON is checked too.
    rep.unlink()
    r = run("leaks", clash, "--json", rep, code=1)
    assert "rep.csv" in r.output
    run("leaks", clash, "-q", "--json", rep, "--overwrite")
    assert json.loads(rep.read_text())["command"] == "leaks"


def test_pointless_options_are_refused_or_noted(run, clash: Path) -> None:
    r = run("dedupe", clash, "--dry-run", "-j", "0", code=2)
    assert "--workers" in r.output
    r = run("dedupe", clash, "--dry-run", "--against", clash, code=1)
    assert "is the dataset itself" in r.output
    r = run("dedupe", clash, "--dry-run", "--combine", "any")
    assert "with one test it does nothing" in r.output
    r = run("dedupe", clash, "--dry-run", "--hist", "0.9", "--ssim", "0.85", "--combine", "any")
    assert "does nothing" not in r.output


def test_leaks_report_lists_skipped_items(run, clash: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(clash, data)
    (data / "train" / "labels" / "img_2.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    rep = tmp_path / "leaks.json"
    r = run("leaks", data, "--on-error", "skip", "--json", rep)
    assert "see " + str(rep) in r.output.replace("\n", "")
    report = json.loads(rep.read_text())
    assert report["counts"]["skipped_items"] == 1
    assert report["skipped"][0]["left_out"].endswith("img_2.jpg")
    r = run("dedupe", data, "--on-error", "skip", "--dry-run")
    text = " ".join(r.output.split())  # Rich wraps long lines
    assert "manifest.json" not in text and "image left out" in text
