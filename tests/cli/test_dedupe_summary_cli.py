"""dedupe's summary line counts every image of the input: keep + drop + skip add up to it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.io import write_dataset

from .conftest import manifest, scene

SUMMARY = re.compile(r"(\d+) images: keep (\d+), drop (\d+) in \d+ clusters(?:, skip (\d+))?")


def _summary(output: str) -> tuple[int, int, int, int]:
    m = SUMMARY.search(output)
    assert m, output
    total, keep, drop, skip = (int(g or 0) for g in m.groups())
    return total, keep, drop, skip


@pytest.fixture
def badtree(tmp_path: Path) -> Path:
    """An image tree as the QA's badtree: 6 photos, 2 byte copies, and 4 files that cannot
    be used (0 bytes, text named .jpg, a truncated JPEG, a PNG whose IHDR CRC is wrong)."""
    rng = np.random.default_rng(5)
    root = tmp_path / "tree"
    (root / "train").mkdir(parents=True)
    for k in range(6):
        Image.fromarray(scene(rng)).save(root / "train" / f"good{k}.jpg", quality=90)
    shutil.copyfile(root / "train" / "good0.jpg", root / "train" / "copy0.jpg")
    shutil.copyfile(root / "train" / "good1.jpg", root / "train" / "copy1.jpg")
    (root / "train" / "empty.jpg").write_bytes(b"")
    (root / "train" / "notanimage.jpg").write_text("this is not a JPEG")
    whole = (root / "train" / "good2.jpg").read_bytes()
    (root / "train" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    Image.fromarray(scene(rng)).save(root / "train" / "ihdrcrc.png")
    png = bytearray((root / "train" / "ihdrcrc.png").read_bytes())
    k = png.find(b"IHDR")
    png[k + 4 + 13] ^= 0xFF
    (root / "train" / "ihdrcrc.png").write_bytes(bytes(png))
    return root


def test_summary_counts_every_image_of_the_input(run, badtree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run("dedupe", badtree, "--out", out, "--on-error", "skip", "-j", "1")
    total, keep, drop, skip = _summary(res.output)
    assert total == 12  # every file in the tree
    assert (keep, drop, skip) == (6, 2, 4)
    c = manifest(out)["counts"]
    assert c["images"] + c["not_read"] == 12
    assert c["kept"] + c["dropped"] + c["not_compared"] == c["images"]


@pytest.fixture
def yolo_with_bad_labels(tmp_path: Path) -> Path:
    """YOLO: 5 photos and a copy; one label line of 4 values (its image is left out) and a
    label file without an image (a bad item, but no image)."""
    rng = np.random.default_rng(9)
    raw = tmp_path / "raw"
    raw.mkdir()
    items = []
    for k in range(5):
        Image.fromarray(scene(rng)).save(raw / f"s{k}.jpg", quality=92)
    shutil.copyfile(raw / "s0.jpg", raw / "s0_copy.jpg")
    for name in ("s0", "s1", "s2", "s3", "s4", "s0_copy"):
        ann = [Annotation((20.0, 20.0, 60.0, 70.0), 0)]
        items.append(ImageItem(f"{name}.jpg", raw / f"{name}.jpg", 160, 120, ann, split="train"))
    out = tmp_path / "yolo"
    out.mkdir()
    write_dataset(Dataset([Category(0, "fire")], items), out, "yolo")
    labels = next(p for p in out.rglob("s3.txt")).parent
    (labels / "s3.txt").write_text("0 0.5 0.5 0.2\n")
    (labels / "orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    return out


def test_skip_counts_images_not_bad_items(run, yolo_with_bad_labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run("dedupe", yolo_with_bad_labels, "--out", out, "--on-error", "skip", "-j", "1")
    assert _summary(res.output) == (6, 4, 1, 1)
    assert "skipped 2 bad item(s)" in res.output
    c = manifest(out)["counts"]
    assert (c["images"], c["not_read"], c["skipped_items"]) == (5, 1, 2)


@pytest.fixture
def skies(tmp_path: Path) -> Path:
    """An image tree of 8 overcast-sky crops of different brightness and 3 textured photos."""
    rng = np.random.default_rng(11)
    root = tmp_path / "skies"
    root.mkdir()
    for k in range(8):
        ramp = np.linspace(170 + 6 * k, 182 + 6 * k, 192, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(ramp, (192, 192, 3)) + np.float32([-6, -2, 8])
        img = img + rng.normal(0, 1.5, img.shape).astype(np.float32)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"sky{k}.jpg")
    for k in range(3):
        Image.fromarray(scene(rng)).save(root / f"photo{k}.jpg", quality=90)
    return root


def test_flat_clusters_get_a_note_on_screen_and_in_the_manifest(
    run, skies: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    res = run("dedupe", skies, "--out", out, "-j", "1")
    text = " ".join(res.output.split())  # Rich wraps long lines
    assert (
        "note: 1 cluster(s) (8 images; largest dup-00001, 8 images) are mostly nearly flat" in text
    )
    assert "--hist 0.9 --combine all" in text
    (note,) = manifest(out)["notes"]
    assert note.startswith("1 cluster(s) (8 images")
    # The remedy the note names: colours must match too, and the note goes.
    out2 = tmp_path / "out2"
    res = run("dedupe", skies, "--out", out2, "--hist", "0.9", "--combine", "all", "-j", "1")
    assert "nearly flat" not in res.output and manifest(out2)["notes"] == []


def test_leaks_gives_the_flat_note_and_counts_what_it_could_not_read(
    run, skies: Path, tmp_path: Path
) -> None:
    """leaks clusters as dedupe does: the same note on flat clusters, and its report counts
    the images the reader left out."""
    for k, split in ((0, "train"), (1, "train"), (2, "val"), (3, "val")):
        (skies / split).mkdir(exist_ok=True)
        (skies / f"sky{k}.jpg").rename(skies / split / f"sky{k}.jpg")
    (skies / "val" / "broken.jpg").write_bytes(b"not a jpeg")
    rep = tmp_path / "leaks.json"
    res = run("leaks", skies, "--json", rep, "--on-error", "skip", "-j", "1")
    assert "are mostly nearly flat" in " ".join(res.output.split())
    report = json.loads(rep.read_text())
    assert report["counts"]["not_read"] == 1 and report["notes"]


def test_decode_skip_counts_the_annotations_it_took_out(
    run, yolo_with_bad_labels: Path, tmp_path: Path
) -> None:
    """An image the reader accepts but dedupe cannot decode (its middle scrambled) is
    skipped with its boxes counted, as the readers count theirs (QA round 10: the record
    had no ``left_out_annotations``)."""
    img = next(yolo_with_bad_labels.rglob("s2.jpg"))
    data = bytearray(img.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 800] = np.random.default_rng(3).integers(0, 256, 800, np.uint8).tobytes()
    img.write_bytes(bytes(data))
    out = tmp_path / "out"
    run("dedupe", yolo_with_bad_labels, "--out", out, "--on-error", "skip", "-j", "1")
    (rec,) = [s for s in manifest(out)["skipped"] if Path(str(s.get("left_out"))).name == "s2.jpg"]
    assert rec["left_out_annotations"] == 1


def test_the_stats_line_names_the_search_not_exact_copies(
    run, badtree: Path, tmp_path: Path
) -> None:
    """QA round 10: "N candidate pairs (exact)" read as N exact duplicates."""
    for name in ("empty.jpg", "notanimage.jpg", "truncated.jpg", "ihdrcrc.png"):
        (badtree / "train" / name).unlink()
    res = run("dedupe", badtree, "--dry-run", "-j", "1")
    text = " ".join(res.output.split())
    assert re.search(r"\d+ candidate pairs \(complete radius search\), \d+ pairs scored", text)
    assert "(exact)" not in text


def test_the_summary_counts_the_annotations_of_dropped_images(
    run, yolo_with_bad_labels: Path, tmp_path: Path
) -> None:
    """QA round 10: counts.dropped_annotations (what the writer left out) read 0 while 607
    boxes went with the dropped images; the summary and the counts now say so."""
    args = ("--on-error", "skip", "-j", "1")
    out = tmp_path / "out"
    res = run("dedupe", yolo_with_bad_labels, "--out", out, *args)
    text = " ".join(res.output.split())
    assert "the dropped images hold 1 annotation(s); their survivors hold the same boxes" in text
    assert manifest(out)["counts"]["dropped_image_annotations"] == 1
    # The copy's box moves: a label conflict, lost unless --merge-labels carries it.
    next(yolo_with_bad_labels.rglob("s0_copy.txt")).write_text("0 0.7 0.7 0.2 0.2\n")
    res = run("dedupe", yolo_with_bad_labels, "--dry-run", *args)
    assert "listed as label conflicts and are lost without --merge-labels" in " ".join(
        res.output.split()
    )
    res = run("dedupe", yolo_with_bad_labels, "--dry-run", "--merge-labels", *args)
    assert "go to their survivors (--merge-labels)" in " ".join(res.output.split())


def test_exact_copies_are_named_wherever_they_were_dropped(run, tmp_path: Path) -> None:
    """QA round 10: a byte copy of an image dropped as a near-duplicate is dropped at the
    kept image ("ssim, duplicate of ..."); the report and the manifest also name the image
    it copies, count such copies, and list exact copies that span splits."""
    rng = np.random.default_rng(21)
    root = tmp_path / "tree"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
    photo = scene(rng)
    Image.fromarray(photo).save(root / "train" / "a.png")
    brighter = np.clip(photo.astype(np.int16) + 12, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(root / "train" / "b.png")
    shutil.copyfile(root / "train" / "b.png", root / "val" / "b_copy.png")
    Image.fromarray(scene(rng)).save(root / "train" / "other.png")
    out = tmp_path / "out"
    res = run("dedupe", root, "--out", out, "--keep", "first", "-j", "1")
    text = " ".join(res.output.split())
    assert "1 of the dropped images are exact copies" in text
    assert "1 group(s) of exact copies span splits (2 images" in text
    rep = json.loads((out / "dedupe_report.json").read_text())
    (cluster,) = rep["clusters"]
    by_name = {Path(m["path"]).name: m for m in cluster["members"]}
    assert by_name["b_copy.png"]["duplicate_of"].endswith("a.png")
    assert by_name["b_copy.png"]["exact_copy_of"].endswith("b.png")
    assert "exact_copy_of" not in by_name["b.png"]
    assert rep["counts"]["dropped_exact_copies"] == 1
    assert [len(g["images"]) for g in rep["exact_leaks"]] == [2]
    (drop,) = [d for d in manifest(out)["dropped"] if d["item"].endswith("b_copy.png")]
    assert drop["exact_copy_of"].endswith("b.png")


def test_nothing_is_written_when_every_image_is_skipped(run, tmp_path: Path) -> None:
    """QA round 10: with every image bad, dedupe wrote an empty dataset and exited 0;
    convert, merge and split refuse."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (src / name).write_bytes(b"")
    for extra in ((), ("--dry-run",)):
        out = tmp_path / f"out{len(extra)}"
        res = run("dedupe", src, "--out", out, "--on-error", "skip", *extra, code=1)
        text = " ".join(res.output.split())
        assert "every image was skipped (2 bad item(s), listed above)" in text
        assert "a.jpg: image file is empty" in text and not out.exists()


def test_paths_that_look_like_markup_are_printed_as_they_are(run, tmp_path: Path) -> None:
    """QA round 10: a path holding '[/y]' raised Rich's MarkupError (a traceback, exit 1
    after the dataset was written) and '[bold]a.jpg' was shown as 'a.jpg'."""
    rng = np.random.default_rng(4)
    src = tmp_path / "br2[" / "y]"
    src.mkdir(parents=True)
    photo = scene(rng)
    Image.fromarray(photo).save(src / "[bold]a.png")
    Image.fromarray(photo).save(src / "[bold]b.png")
    Image.fromarray(scene(rng)).save(src / "c.png")
    out = tmp_path / "o[/p]"
    res = run("dedupe", src, "--out", out, "--report", tmp_path / "r[/r]" / "rep.json")
    text = " ".join(res.output.split())
    assert "[bold]a.png" in text and "o[/p]" in text and "r[/r]" in text
    assert (out / "manifest.json").is_file()
    (src / "d.png").write_bytes(b"")
    res = run("dedupe", src, "--out", tmp_path / "o2", code=1)
    assert "y]/d.png" in " ".join(res.output.split())
