"""``curate dedupe`` and ``curate leaks`` through the real CLI app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.io import write_dataset

from .conftest import manifest, scene


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A YOLO set: 4 scenes in train, an exact copy of one in val, a brighter copy in train."""
    rng = np.random.default_rng(7)
    raw = tmp_path / "raw"
    raw.mkdir()
    items = []
    scenes = [scene(rng) for _ in range(4)]
    for k, img in enumerate(scenes):
        Image.fromarray(img).save(raw / f"s{k}.jpg", quality=92)
    shutil.copyfile(raw / "s0.jpg", raw / "s0_copy.jpg")
    bright = np.clip(scenes[1].astype(int) + 25, 0, 255).astype(np.uint8)
    Image.fromarray(bright).save(raw / "s1_bright.jpg", quality=92)
    for name in ("s0", "s1", "s2", "s3", "s0_copy", "s1_bright"):
        split = "val" if name == "s0_copy" else "train"
        ann = [Annotation((20.0, 20.0, 60.0, 70.0), 0)]
        items.append(ImageItem(f"{name}.jpg", raw / f"{name}.jpg", 160, 120, ann, split=split))
    out = tmp_path / "yolo"
    out.mkdir()
    write_dataset(Dataset([Category(0, "fire")], items), out, "yolo")
    return out


def test_dedupe_writes_dataset_manifest_and_report(run, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run("dedupe", data, "--out", out, "--workers", "1")
    assert "drop 2" in res.output
    m = manifest(out)
    assert {d["item"] for d in m["dropped"]} == {"s0_copy.jpg", "s1_bright.jpg"}
    assert all(d["duplicate_of"] and d["reason"] for d in m["dropped"])
    report = json.loads((out / "dedupe_report.json").read_text())
    assert report["schema"] == "sodkit.dedupe.report/1" and report["counts"]["clusters"] == 2
    assert (out / "dedupe_report.csv").is_file()
    assert (out / "data.yaml").is_file()  # YOLO in, YOLO out


def test_dry_run_writes_nothing_but_the_asked_report(run, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "never"
    report = tmp_path / "plan.json"
    res = run("dedupe", data, "--out", out, "--dry-run", "--report", report, "-j", "1")
    assert "would keep 4 and drop 2" in res.output
    assert not out.exists()
    assert json.loads(report.read_text())["counts"]["dropped"] == 2
    assert report.with_suffix(".csv").is_file()


def test_refuses_a_non_empty_output(run, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    out.mkdir()
    (out / "x.txt").write_text("keep me")
    res = run("dedupe", data, "--out", out, code=1)
    assert "--overwrite" in res.output
    assert (out / "x.txt").read_text() == "keep me"


def test_out_is_required_unless_dry_run(run, data: Path) -> None:
    res = run("dedupe", data, code=1)
    assert "--out" in res.output


def test_bad_threshold_is_one_clear_line(run, data: Path, tmp_path: Path) -> None:
    res = run("dedupe", data, "--out", tmp_path / "o", "--ssim", "1.5", code=1)
    assert "--ssim 1.5" in res.output


def test_refine_auto_runs_and_conflicts_with_a_band(run, data: Path, tmp_path: Path) -> None:
    res = run("dedupe", data, "--dry-run", "--refine", "auto", "-j", "1")
    assert "would keep 4 and drop 2" in res.output
    res = run("dedupe", data, "--dry-run", "--refine", "auto", "--refine-band", "0.1", code=1)
    assert "--refine auto" in res.output and "Traceback" not in res.output


def test_sweep_prints_a_table(run, data: Path) -> None:
    res = run("dedupe", data, "--sweep", "-j", "1")
    for t in ("0.80", "0.85", "0.98", "greedy", "connected"):
        assert t in res.output


def test_exact_only(run, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "exact"
    run("dedupe", data, "--out", out, "--exact", "-j", "1", "--format", "coco")
    m = manifest(out)
    assert [d["item"] for d in m["dropped"]] == ["s0_copy.jpg"]
    assert m["dropped"][0]["reason"] == "exact-file"
    assert list((out / "annotations").glob("*.json"))  # COCO, one file per split


def test_leaks_counts_and_fails_on_request(run, data: Path, tmp_path: Path) -> None:
    js = tmp_path / "leaks.json"
    res = run("leaks", data, "--json", js, "-j", "1")
    assert "1 leaking cluster" in res.output
    rep = json.loads(js.read_text())
    leak = [c for c in rep["clusters"] if c["leak"]]
    assert len(leak) == 1 and leak[0]["splits"] == ["train", "val"]
    # leaks drops nothing: no kept/dropped or reference counts to misread (QA round 5)
    assert not {"kept", "dropped", "reference_images"} & set(rep["counts"])
    run("leaks", data, "--fail-on-leak", "-j", "1", code=1)


def test_against_reference(run, data: Path, tmp_path: Path) -> None:
    ref_out = tmp_path / "clean"
    run("dedupe", data, "--out", ref_out, "-j", "1")
    out = tmp_path / "inc"
    res = run("dedupe", data, "--against", ref_out, "--out", out, "-j", "1")
    # Every image is in the reference (or duplicates one there).
    assert "keep 0" in res.output
    assert len(manifest(out)["dropped"]) == 6


def test_frame_window_from_the_cli(run, data: Path, tmp_path: Path) -> None:
    """Images that are no video frames are compared as usual; the option is recorded."""
    report = tmp_path / "plan.json"
    res = run("dedupe", data, "--dry-run", "--frame-window", "5", "--report", report, "-j", "1")
    assert "would keep 4 and drop 2" in res.output
    assert json.loads(report.read_text())["options"]["frame_window"] == 5
    res = run("dedupe", data, "--dry-run", "--frame-window", "0", code=2)
    assert "--frame-window" in res.output and "Traceback" not in res.output


def _relabel(data: Path, out: Path, name: str) -> Path:
    """``data`` written again with its one class renamed to ``name`` (same images, boxes)."""
    from curate.io import load_dataset

    ds = load_dataset(str(data))
    ds.categories = [Category(0, name)]
    write_dataset(ds, out, "yolo")
    return out


def test_against_the_dataset_itself_however_spelled(run, data: Path) -> None:
    for a, b in ((data / "data.yaml", data), (data, data / "data.yaml")):
        res = run("dedupe", a, "--against", b, "--dry-run", "-j", "1", code=1)
        assert "very files of the dataset" in res.output


def test_against_says_what_is_already_in_the_reference(run, data: Path, tmp_path: Path) -> None:
    ref = tmp_path / "clean"
    run("dedupe", data, "--out", ref, "-j", "1")
    copy = tmp_path / "again"
    shutil.copytree(data, copy)
    res = run("dedupe", copy, "--against", ref, "--dry-run", "-j", "1")
    text = " ".join(res.output.split())
    # 5 are byte copies of the 4 reference images, the brighter copy a near one.
    assert "6 new images are copies of reference images (5 exact), 0 duplicate" in text
    assert "none of the 6 new images survives" in text
    assert "static camera" not in text


def test_against_other_class_names_notes_and_class_map(run, data: Path, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    run("dedupe", data, "--out", clean, "-j", "1")
    ref = _relabel(clean, tmp_path / "flame", "Flame")
    new = tmp_path / "new"
    shutil.copytree(data, new)
    args = ("dedupe", new, "--against", ref, "--roi", "objects", "--dry-run", "-j", "1")
    res = run(*args)
    assert "only --against has Flame; only the dataset has fire" in " ".join(res.output.split())
    # The brighter copy's box is 'fire', its reference twin's 'Flame': no match, kept.
    assert "would keep 1 and drop 5" in res.output
    cmap = tmp_path / "map.yaml"
    cmap.write_text("classes: [fire]\nsynonyms: {flame: fire}\n")
    res = run(*args, "--class-map", cmap)
    assert "would keep 0 and drop 6" in res.output and "classes differ" not in res.output
    # Case alone never separates classes.
    res = run(*args[:3], _relabel(clean, tmp_path / "upper", "FIRE"), *args[4:])
    assert "would keep 0 and drop 6" in res.output and "classes differ" not in res.output
    cmap.write_text("classes: [fire]\ndrop: [smoke]\n")
    res = run(*args, "--class-map", cmap, code=1)
    assert "drop" in res.output


def test_inert_and_refused_later_options_are_noted(run, data: Path, tmp_path: Path) -> None:
    res = run("dedupe", data, "--sweep", "--report", tmp_path / "r.json", "-j", "1")
    assert (
        "writes no --report" in " ".join(res.output.split()) and not (tmp_path / "r.json").exists()
    )
    res = run("dedupe", data, "--hist", "0.9", "--refine", "auto", "--dry-run", "-j", "1")
    assert "without --ssim they do nothing" in res.output
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("keep me")
    res = run("dedupe", data, "--dry-run", "--out", full, "-j", "1")
    assert "without --dry-run would stop here" in res.output and "--overwrite" in res.output
    tail = " ".join(res.output.split()).rsplit("dry run: would keep", 1)[1]
    assert "would stop: " in tail and "--overwrite" in tail
    res = run("dedupe", data, "--sweep", "--ssim", "0.85", "--hist", "0.9", "--combine", "any")
    assert "or histogram above 0.90, fixed" in " ".join(res.output.split())


def _labelled_copies(tmp_path: Path) -> Path:
    """COCO: a scene and its half-size copy; the copy has one box more, which merges."""
    rng = np.random.default_rng(3)
    raw = tmp_path / "raw_ml"
    raw.mkdir()
    img = scene(rng)
    Image.fromarray(img).save(raw / "a.png")
    Image.fromarray(cv2.resize(img, (80, 60), interpolation=cv2.INTER_AREA)).save(raw / "b.png")
    items = [
        ImageItem("a.png", raw / "a.png", 160, 120, [Annotation((20, 20, 60, 70), 0)]),
        ImageItem(
            "b.png",
            raw / "b.png",
            80,
            60,
            [Annotation((10, 10, 30, 35), 0), Annotation((50, 30, 70, 50), 0)],
        ),
    ]
    out = tmp_path / "coco_ml"
    write_dataset(Dataset([Category(0, "fire")], items), out, "coco")
    return out


def test_merge_labels_preview_matches_the_run_and_conflicts_state_frames(
    run, tmp_path: Path
) -> None:
    data = _labelled_copies(tmp_path)
    common = ("--merge-labels", "--keep", "largest", "-j", "1")
    res = run("dedupe", data, "--dry-run", *common)
    text = " ".join(res.output.split())
    assert "--merge-labels would carry 1 box(es) to 1 survivor(s)" in text
    assert "leave" not in text  # nothing left: no clause about it
    out = tmp_path / "merged"
    res = run("dedupe", data, "--out", out, *common)
    assert "carried 1 box(es) to 1 survivor(s); see manifest.json" in " ".join(res.output.split())
    assert manifest(out)["counts"]["merge_labels"] == {
        "carried": 1,
        "survivors": 1,
        "left": 0,
        "left_outside": 0,
        "left_class": 0,
    }
    (conflict,) = json.loads((out / "dedupe_report.json").read_text())["clusters"][0][
        "label_conflicts"
    ]
    assert conflict["dropped_size"] == [80, 60] and conflict["kept_size"] == [160, 120]
    (box,) = conflict["only_in_dropped"]
    assert box["bbox"] == [50, 30, 70, 50] and box["bbox_in_kept"] == [100, 60, 140, 100]


def _interrupted(*args: object, **kwargs: object) -> None:
    """Stands in for a step of the command that a Ctrl+C cuts short."""
    raise KeyboardInterrupt


def test_an_interrupt_before_the_output_leaves_no_report_either(
    run, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--report is written after --out: output and report both there, or both absent."""
    import curate.commands.dedupe as cmd

    monkeypatch.setattr(cmd, "write_deduped", _interrupted)
    report = tmp_path / "r.json"
    res = run("dedupe", data, "--out", tmp_path / "out", "--report", report, "-j", "1", code=130)
    assert "nothing was written" in res.output
    assert not report.exists() and not report.with_suffix(".csv").exists()


def test_a_failed_report_write_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curate.dedupe.report as rep

    def broken(report: object, tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(rep, "_write_csv", broken)
    with pytest.raises(KeyboardInterrupt):
        rep.write_report({"clusters": []}, tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_after_the_output_says_it_was_written(
    run, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curate.commands.dedupe as cmd

    monkeypatch.setattr(cmd, "_print_written", _interrupted)
    out, report = tmp_path / "out", tmp_path / "r.json"
    res = run("dedupe", data, "--out", out, "--report", report, "-j", "1", code=130)
    text = " ".join(res.output.split())
    assert f"interrupted: {out} was written" in text and "nothing was written" not in text
    assert (out / "manifest.json").is_file() and not report.exists()


def test_an_interrupt_once_all_is_written_names_what_was(run, data: Path, tmp_path: Path) -> None:
    """A Ctrl+C after dedupe's last step (QA: SIGINT as the --report file appears, when
    the command was returning) says the output and the report were written, not
    'nothing was written'."""
    import typer

    from curate.commands import common

    out, report = tmp_path / "out", tmp_path / "r.json"
    run("dedupe", data, "--out", out, "--report", report, "-j", "1")
    assert common.WRITTEN == [str(out), str(report)]

    @common.cli_errors
    def returning() -> None:  # the command's own steps are done; the interrupt comes late
        common.WRITTEN.extend([str(out), str(report)])
        raise KeyboardInterrupt

    with pytest.raises(typer.Exit):
        returning()
    assert common.interrupted_message() == f"interrupted: {out} and {report} were written"
    common.WRITTEN.clear()
    assert common.interrupted_message() == "interrupted: nothing was written"


def test_an_interrupt_as_the_report_lands_says_both_were_written(
    run, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA round 4: SIGINT just as the --report files appear said only 'OUT was written'."""
    import curate.commands.dedupe as cmd

    real = cmd._save_report

    def saved_then_interrupted(rep: object, path: Path) -> None:
        real(rep, path)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "_save_report", saved_then_interrupted)
    out, report = tmp_path / "out", tmp_path / "r.json"
    res = run("dedupe", data, "--out", out, "--report", report, "-j", "1", code=130)
    text = " ".join(res.output.split())
    assert f"interrupted: {out} and {report} were written" in text
    assert "--report copy was not" not in text
    assert report.is_file() and report.with_suffix(".csv").is_file()


def test_skipped_items_print_brackets_and_clusters_without_split_are_null(
    run, tmp_path: Path
) -> None:
    """Rich took '[x,y,w,h]' in a skip message for markup and dropped it; a cluster of
    images in no split listed its splits as the string 'None'."""
    data = _labelled_copies(tmp_path)
    ann = data / "annotations.json"
    if not ann.is_file():
        (ann,) = data.rglob("*.json")
    coco = json.loads(ann.read_text())
    first = coco["images"][0]
    shutil.copyfile(data / "images" / first["file_name"], data / "images" / "c.png")
    coco["images"].append(dict(first, id=99, file_name="c.png"))
    coco["annotations"].append({"id": 999, "image_id": 99, "category_id": 1})  # no bbox
    ann.write_text(json.dumps(coco))
    report = tmp_path / "r.json"
    res = run("dedupe", data, "--dry-run", "--on-error", "skip", "--report", report, "-j", "1")
    assert "[x,y,w,h]" in res.output
    (cluster,) = json.loads(report.read_text())["clusters"]
    assert cluster["splits"] == [None] and cluster["leak"] is False


def test_bad_items_of_the_reference_are_marked_as_such(run, tmp_path: Path) -> None:
    """A broken file in --against is listed as the reference's (the dataset itself is fine)."""
    rng = np.random.default_rng(21)
    new, ref = tmp_path / "new", tmp_path / "ref"
    for folder in (new, ref):
        folder.mkdir()
        for k in range(3):
            Image.fromarray(scene(rng)).save(folder / f"{folder.name}{k}.jpg", quality=90)
    (ref / "empty.jpg").write_bytes(b"")  # left out while reading the reference
    big = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    Image.fromarray(big).save(ref / "late.png")  # damaged past what the reader probes
    data = bytearray((ref / "late.png").read_bytes())
    data[-20] ^= 0x01  # inside the last IDAT chunk: found when its signature is computed
    (ref / "late.png").write_bytes(bytes(data))
    out = tmp_path / "out"
    res = run("dedupe", new, "--against", ref, "--out", out, "--on-error", "skip", "-j", "1")
    skipped = {Path(s["file"]).name: s for s in manifest(out)["skipped"]}
    assert sorted(skipped) == ["empty.jpg", "late.png"]
    assert all(s["against"] is True for s in skipped.values())
    assert "--against " in res.output and len(list(out.rglob("*.jpg"))) == 3
    # Both count, as the reference's: one its reader left out, one unreadable at decode.
    counts = json.loads((out / "dedupe_report.json").read_text())["counts"]
    assert (counts["reference_images"], counts["reference_not_read"]) == (4, 1)
    assert (counts["reference_not_compared"], counts["not_read"], counts["images"]) == (1, 0, 3)
    text = " ".join(res.output.split())
    assert "against the reference (5 images, 2 skipped: copies of them are not found)" in text
    # The reference reader's notes say they are the reference's (QA round 5).
    assert "note: 3 image(s) without labels" in text
    assert "note: --against: 4 image(s) without labels" in text
    # A reference none of whose images can be used says so (QA round 5: no line at all).
    bad = tmp_path / "bad_ref"
    bad.mkdir()
    for name in ("empty.jpg", "late.png"):
        (bad / name).write_bytes((ref / name).read_bytes())
    res = run("dedupe", new, "--against", bad, "--dry-run", "--on-error", "skip", "-j", "1")
    text = " ".join(res.output.split())
    assert "against the reference (2 images, 2 skipped: copies of them are not found)" in text
    assert "none of the 2 reference images could be read" in text
    empty_only = tmp_path / "empty_ref"
    empty_only.mkdir()
    (empty_only / "empty.jpg").write_bytes(b"")
    res = run("dedupe", new, "--against", empty_only, "--sweep", "--on-error", "skip", "-j", "1")
    assert "none of the reference's 1 images could be read" in " ".join(res.output.split())
    # With --on-error fail the one error line says the file is the reference's, whether the
    # reader finds it or the signature step does.
    res = run("dedupe", new, "--against", ref, "--dry-run", "-j", "1", code=1)
    text = " ".join(res.output.split())
    assert "empty.jpg': in the --against reference: " in text
    (ref / "empty.jpg").unlink()
    res = run("dedupe", new, "--against", ref, "--dry-run", "-j", "1", code=1)
    assert "late.png': in the --against reference: PNG is damaged" in " ".join(res.output.split())


def test_the_cache_writes_are_done_when_the_command_returns(
    run, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature cache is closed at the end of the pass: its background writer has
    finished (a Ctrl+C at interpreter exit can no longer cost the last batch)."""
    import threading

    def writers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("sodkit-cache")}

    before = writers()  # other tests' caches may not be collected yet
    monkeypatch.setenv("SODKIT_CACHE_DIR", str(tmp_path / "cache"))
    run("dedupe", data, "--dry-run", "-j", "1")
    assert writers() <= before
    run("leaks", data, "-j", "1")
    assert writers() <= before


def test_connected_clusters_from_the_cli(run, data: Path, tmp_path: Path) -> None:
    """``--cluster connected`` (the literature's reading: union-find components) runs from
    the CLI and says so in the report; on this set it drops what greedy drops."""
    report = tmp_path / "connected.json"
    res = run("dedupe", data, "--cluster", "connected", "--dry-run", "--report", report, "-j", "1")
    assert "would keep 4 and drop 2" in " ".join(res.output.split())
    rep = json.loads(report.read_text())
    assert rep["rule"]["cluster"] == "connected" and rep["counts"]["clusters"] == 2


def test_merge_labels_of_a_cropped_copy_carries_nothing_it_already_has(run, tmp_path: Path) -> None:
    """QA round 8: the boxes of a 5 % crop, only scaled, missed their objects and were
    carried as second boxes; compared through the images' alignment they all match. (Here
    2.5 %: a random texture loses SSIM faster than a photo.)"""
    rng = np.random.default_rng(5)
    # Detail at several scales, as a photo's (random fields at 1/128, 1/64, 1/32 of it).
    layers = [rng.uniform(-1, 1, (480 // s + 1, 640 // s + 1, 3)) for s in (128, 64, 32)]
    img = 128 + sum(cv2.resize(f.astype(np.float32), (640, 480)) * 60 for f in layers)
    img = np.clip(img, 0, 255).astype(np.uint8)
    crop = img[6:474, 8:632]
    raw = tmp_path / "raw_crop"
    raw.mkdir()
    Image.fromarray(img).save(raw / "a.png")
    Image.fromarray(crop).save(raw / "b.png")
    boxes = [
        (100.0 + 45 * k, 90.0 + 30 * (k % 3), 112.0 + 45 * k, 104.0 + 30 * (k % 3))
        for k in range(8)
    ]
    items = [
        ImageItem("a.png", raw / "a.png", 640, 480, annotations=[Annotation(b, 0) for b in boxes]),
        ImageItem(
            "b.png",
            raw / "b.png",
            624,
            468,
            annotations=[
                Annotation((x1 - 8, y1 - 6, x2 - 8, y2 - 6), 0) for x1, y1, x2, y2 in boxes
            ],
        ),
    ]
    data = tmp_path / "coco_crop"
    write_dataset(Dataset([Category(0, "fire")], items), data, "coco")
    out = tmp_path / "merged_crop"
    res = run("dedupe", data, "--out", out, "--merge-labels", "--keep", "largest", "-j", "1")
    text = " ".join(res.output.split())
    assert "keep 1, drop 1 in 1 clusters" in text and "no box to carry" in text
    assert "static camera" not in text  # two photos are no clip (QA round 8)
    (cluster,) = json.loads((out / "dedupe_report.json").read_text())["clusters"]
    assert cluster["label_conflicts"] == []
    assert manifest(out)["counts"]["merge_labels"]["carried"] == 0


def test_a_clip_that_collapses_to_one_frame_is_warned_about(run, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    base = scene(rng).astype(np.int16)
    clip = tmp_path / "clip"
    clip.mkdir()
    for k in range(20):  # a static camera: sensor noise only
        frame = np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(frame).save(clip / f"f{k:02d}.png")
    res = run("dedupe", f"images:{clip}", "--dry-run", "-j", "1")
    text = " ".join(res.output.split())
    assert "only 1 of 20 images survive: on a static camera every frame can pass" in text


def test_byte_copies_alone_raise_no_static_camera_warning(run, tmp_path: Path) -> None:
    """QA round 9: 20 copies of one file are exact copies, not a static camera."""
    rng = np.random.default_rng(12)
    clip = tmp_path / "copies"
    clip.mkdir()
    Image.fromarray(scene(rng)).save(clip / "f00.png")
    for k in range(1, 20):
        shutil.copy(clip / "f00.png", clip / f"f{k:02d}.png")
    res = run("dedupe", f"images:{clip}", "--dry-run", "-j", "1")
    text = " ".join(res.output.split())
    assert "keep 1, drop 19" in text and "static camera" not in text


def test_format_images_of_labelled_data_is_refused_before_the_work(
    run, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA round 10: the run computed everything, then failed, suggesting voc (which dedupe
    does not write); --dry-run said nothing of it."""
    import curate.commands.dedupe as cmd

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("find_duplicates ran")

    out = tmp_path / "imgs"
    with monkeypatch.context() as m:
        m.setattr(cmd, "find_duplicates", never)
        res = run("dedupe", data, "--out", out, "--format", "images", "-j", "1", code=1)
    text = " ".join(res.output.split())
    assert "--format images holds no labels, and 6 image(s) have annotations" in text
    assert "--format coco or yolo" in text and "voc" not in text
    assert not out.exists()
    res = run("dedupe", data, "--dry-run", "--format", "images", "-j", "1")
    text = " ".join(res.output.split())
    assert "without --dry-run would stop here: --format images holds no labels" in text
    assert "would keep 4 and drop 2" in text
    # QA round 11: the last line says it again (the first note sits above the table).
    assert "would stop: --format images" in text.rsplit("dry run: would keep", 1)[1]
