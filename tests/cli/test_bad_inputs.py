"""Bad input gives one clear line (exit 1) under --on-error fail, and a manifest entry under skip."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate.core.errors import CorruptImageError, ImageTooLargeError
from curate.core.imageio import probe, read_image

from .conftest import manifest


def _jpeg(path: Path, w: int = 64, h: int = 48, exif_orientation: int | None = None) -> None:
    img = Image.fromarray(np.full((h, w, 3), 128, np.uint8))
    kwargs = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", **kwargs)


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG that claims w x h: enough for a header probe; never decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def make_yolo(
    root: Path, labels: dict[str, str], names: tuple[str, ...] = ("fire", "smoke")
) -> Path:
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    for stem, text in labels.items():
        _jpeg(root / "images" / "train" / f"{stem}.jpg")
        (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text(f"train: images/train\nnames: {list(names)}\n")
    return root


GOOD = "0 0.5 0.5 0.2 0.2\n"

CASES = {
    "four_numbers": ("0 0.5 0.5 0.2\n", "line 1: expected 5 values"),
    "class_out_of_range": ("7 0.5 0.5 0.2 0.2\n", "class id 7 but the YAML names 2 classes"),
    "box_outside": ("0 3.5 3.5 0.2 0.2\n", "outside the 64x48 image"),
    "degenerate": ("0 0.5 0.5 0 0.2\n", "degenerate"),
    "not_numeric": ("0 0.5 abc 0.2 0.2\n", "non-numeric"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_label_lines(case: str, tmp_path: Path, run) -> None:
    text, message = CASES[case]
    src = make_yolo(tmp_path / "src", {"good": GOOD, "bad": text})
    res = run("convert", src, "--to", "coco", "--out", tmp_path / "out", code=1)
    assert message in res.output
    assert "bad.txt" in res.output
    assert not (tmp_path / "out").exists()
    run("convert", src, "--to", "coco", "--out", tmp_path / "out", "--on-error", "skip")
    m = manifest(tmp_path / "out")
    assert m["counts"]["images_written"] == 1
    assert len(m["skipped"]) == 1 and message.split(":")[-1].strip() in m["skipped"][0]["error"]
    # The entry names the label file at fault and the image it left out.
    assert m["skipped"][0]["left_out"].endswith("bad.jpg")


def test_coco_images_sharing_an_id_are_bad_items(tmp_path: Path, run) -> None:
    """QA round 10: two images with one id; one got the other's box (clipped) and lost its
    own, with no word. Both are bad items now; the third image is read."""
    src = tmp_path / "coco"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _jpeg(src / "images" / name)
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10]}
    size = {"width": 64, "height": 48}
    (src / "annotations.json").write_text(
        json.dumps(
            {
                "images": [
                    {"id": 1, "file_name": "a.jpg", **size},
                    {"id": 1, "file_name": "b.jpg", **size},
                    {"id": 2, "file_name": "c.jpg", **size},
                ],
                "annotations": [ann, {**ann, "id": 2, "image_id": 2}],
                "categories": [{"id": 1, "name": "fire"}],
            }
        )
    )
    res = run("convert", f"coco:{src}", "--to", "yolo", "--out", tmp_path / "out", code=1)
    assert "image id 1 is used by 2 images (a.jpg, b.jpg)" in " ".join(res.output.split())
    run("convert", f"coco:{src}", "--to", "yolo", "--out", tmp_path / "out", "--on-error", "skip")
    m = manifest(tmp_path / "out")
    assert m["counts"]["images_written"] == 1 and m["counts"]["annotations_written"] == 1
    assert sorted(Path(s["left_out"]).name for s in m["skipped"]) == ["a.jpg", "b.jpg"]


def test_coco_annotations_of_no_image(tmp_path: Path, run) -> None:
    src = tmp_path / "coco"
    _jpeg(src / "images" / "a.jpg")
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10]}
    (src / "annotations.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
                "annotations": [ann, {**ann, "id": 2, "image_id": 99}, {**ann, "id": 3}],
                "categories": [{"id": 1, "name": "fire"}],
            }
        )
    )
    res = run("convert", f"coco:{src}", "--to", "yolo", "--out", tmp_path / "out", code=1)
    assert "image_id 99" in res.output and "no image has" in res.output
    run("convert", f"coco:{src}", "--to", "yolo", "--out", tmp_path / "out", "--on-error", "skip")
    m = manifest(tmp_path / "out")
    assert m["counts"]["images_written"] == 1 and m["counts"]["annotations_written"] == 2
    assert [s["field"] for s in m["skipped"]] == ["image_id"]


def test_truncated_and_empty_images(tmp_path: Path, run) -> None:
    src = make_yolo(tmp_path / "src", {"good": GOOD, "trunc": GOOD, "empty": GOOD})
    data = (src / "images/train/trunc.jpg").read_bytes()
    (src / "images/train/trunc.jpg").write_bytes(data[: len(data) // 2])
    (src / "images/train/empty.jpg").write_bytes(b"")
    res = run("convert", src, "--to", "coco", "--out", tmp_path / "out", code=1)
    assert "error:" in res.output
    # The way on is named (QA round 10: five bad images met one run at a time).
    assert "--on-error skip leaves such items out" in " ".join(res.output.split())
    run("convert", src, "--to", "coco", "--out", tmp_path / "out", "--on-error", "skip")
    m = manifest(tmp_path / "out")
    errors = " ".join(s["error"] for s in m["skipped"])
    assert "truncated" in errors and "empty" in errors
    assert m["counts"]["images_written"] == 1


def test_a_dry_run_lists_what_it_would_skip_without_pointing_at_a_manifest(
    tmp_path: Path, run
) -> None:
    """QA round 5: '--dry-run --on-error skip' said 'see manifest.json', which a dry run
    does not write; it lists every skipped item instead."""
    src = make_yolo(tmp_path / "src", {"good": GOOD, "empty": GOOD})
    (src / "images/train/empty.jpg").write_bytes(b"")
    for cmd, args in (("convert", ("--to", "coco")), ("merge", ()), ("split", ())):
        res = run(cmd, src, *args, "--out", tmp_path / cmd, "--dry-run", "--on-error", "skip")
        text = " ".join(res.output.split())
        assert "skipped 1 bad item(s)" in text and "manifest.json" not in text, cmd
        assert "empty.jpg: image file is empty" in text and not (tmp_path / cmd).exists()


def test_nothing_is_written_when_every_image_is_skipped(tmp_path: Path, run) -> None:
    """QA round 5: convert wrote an empty dataset and exited 0."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (src / name).write_bytes(b"")
    for cmd, args in (("convert", ("--to", "coco")), ("merge", ()), ("split", ())):
        for extra in ((), ("--dry-run",)):
            out = tmp_path / f"{cmd}{len(extra)}"
            res = run(
                cmd, f"images:{src}", *args, "--out", out, "--on-error", "skip", *extra, code=1
            )
            text = " ".join(res.output.split())
            assert "nothing to write: every image was skipped (2 bad item(s), listed above)" in text
            assert "a.jpg: image file is empty" in text and "manifest.json" not in text
            assert "0 image(s) without labels" not in text and not out.exists()


def test_a_skipped_image_says_how_many_annotations_left_with_it(tmp_path: Path, run) -> None:
    """QA round 5: the boxes of a skipped image were counted nowhere."""
    src = tmp_path / "coco"
    (src / "images").mkdir(parents=True)
    _jpeg(src / "images" / "good.jpg")
    _jpeg(src / "images" / "cut.jpg")
    data = (src / "images" / "cut.jpg").read_bytes()
    sos = data.index(b"\xff\xda")
    (src / "images" / "cut.jpg").write_bytes(data[: sos + 40] + data[-2:])  # scan cut short
    coco = {
        "images": [
            {"id": 1, "file_name": "good.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "cut.jpg", "width": 64, "height": 48},
            {"id": 3, "file_name": "gone.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": k, "image_id": i, "category_id": 1, "bbox": [4, 4, 10, 10]}
            for k, i in enumerate([1, 2, 2, 3, 3, 3], start=1)
        ],
        "categories": [{"id": 1, "name": "fire"}],
    }
    (src / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    res = run("convert", src, "--to", "yolo", "--out", out, "--verify", "--on-error", "skip")
    text = " ".join(res.output.split())
    assert "gone.jpg, with its 3 annotation(s))" in text
    assert "cut.jpg, with its 2 annotation(s))" in text
    got = {
        Path(s["left_out"]).name: s.get("left_out_annotations") for s in manifest(out)["skipped"]
    }
    assert got == {"gone.jpg": 3, "cut.jpg": 2}


def test_yolo_and_voc_skips_count_the_annotations_that_left(tmp_path: Path, run) -> None:
    """The YOLO and VOC readers said which image left, not that its boxes went with it."""
    src = make_yolo(
        tmp_path / "yolo", {"good": GOOD, "bad": GOOD * 3, "badline": GOOD + "9 0 0 0 0\n"}
    )
    (src / "images" / "train" / "bad.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    res = run("convert", src, "--to", "coco", "--out", out, "--on-error", "skip")
    text = " ".join(res.output.split())
    assert "bad.jpg, with its 3 annotation(s))" in text
    got = {
        Path(s["left_out"]).name: s.get("left_out_annotations") for s in manifest(out)["skipped"]
    }
    assert got == {"bad.jpg": 3, "badline.jpg": 2}

    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "JPEGImages").mkdir()
    obj = "<object><name>fire</name><bndbox><xmin>4</xmin><ymin>4</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object>"
    for stem, n in (("ok", 1), ("broken", 2)):
        _jpeg(voc / "JPEGImages" / f"{stem}.jpg")
        (voc / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>64</width>"
            f"<height>48</height></size>{obj * n}</annotation>"
        )
    (voc / "JPEGImages" / "broken.jpg").write_bytes(b"\xff\xd8 cut")
    out = tmp_path / "out_voc"
    res = run("convert", voc, "--to", "coco", "--out", out, "--on-error", "skip")
    assert "with its 2 annotation(s))" in " ".join(res.output.split())
    assert [s.get("left_out_annotations") for s in manifest(out)["skipped"]] == [2]


def test_missing_image_and_orphan_label(tmp_path: Path, run) -> None:
    src = make_yolo(tmp_path / "src", {"good": GOOD})
    (src / "labels/train/orphan.txt").write_text(GOOD)
    res = run("convert", src, "--to", "coco", "--out", tmp_path / "out", code=1)
    assert "orphan.txt" in res.output and "no matching image" in res.output


def test_malformed_json_xml_yaml(tmp_path: Path, run) -> None:
    (tmp_path / "coco").mkdir()
    (tmp_path / "coco" / "annotations.json").write_text('{"images": [}')
    res = run(
        "convert",
        "coco:" + str(tmp_path / "coco"),
        "--to",
        "yolo",
        "--out",
        tmp_path / "o1",
        code=1,
    )
    assert "invalid JSON" in res.output and "line 1" in res.output

    voc = tmp_path / "voc"
    (voc / "Annotations").mkdir(parents=True)
    _jpeg(voc / "JPEGImages" / "a.jpg")
    _jpeg(voc / "JPEGImages" / "b.jpg")
    (voc / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><object><name>fire</name>"
    )
    (voc / "Annotations" / "b.xml").write_text(
        "<annotation><filename>b.jpg</filename><object><name>fire</name><bndbox><xmin>2</xmin><ymin>2</ymin>"
        "<xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    res = run("convert", f"voc:{voc}", "--to", "coco", "--out", tmp_path / "o2", code=1)
    assert "a.xml" in res.output and "invalid XML" in res.output
    run("convert", f"voc:{voc}", "--to", "coco", "--out", tmp_path / "o2", "--on-error", "skip")
    assert manifest(tmp_path / "o2")["counts"]["images_written"] == 1

    y = make_yolo(tmp_path / "y", {"a": GOOD})
    (y / "data.yaml").write_text("train: images/train\nnames: [fire, smoke\n")
    res = run("convert", y, "--to", "coco", "--out", tmp_path / "o3", code=1)
    assert "invalid YAML" in res.output


def test_exif_rotated_photo_labels_in_display_frame(tmp_path: Path, run) -> None:
    src = make_yolo(tmp_path / "src", {"rot": GOOD})
    _jpeg(
        src / "images/train/rot.jpg", w=200, h=100, exif_orientation=6
    )  # shown 100 wide, 200 tall
    info = probe(src / "images/train/rot.jpg")
    assert (info.width, info.height, info.orientation) == (100, 200, 6)
    assert read_image(src / "images/train/rot.jpg").shape == (200, 100, 3)
    run("convert", src, "--to", "coco", "--out", tmp_path / "out")
    coco = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (100, 200)
    assert coco["annotations"][0]["bbox"] == [40.0, 80.0, 20.0, 40.0]


def test_sixteen_bit_grayscale_and_rgba_decode_to_rgb8(tmp_path: Path) -> None:
    g16 = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 30).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out.shape == (32, 64, 3)
    np.testing.assert_array_equal(out[..., 0], (g16 >> 8).astype(np.uint8))
    Image.fromarray(np.zeros((10, 12, 4), np.uint8)).save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "rgba.png").shape == (10, 12, 3)
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "gray.jpg")
    assert read_image(tmp_path / "gray.jpg").shape == (10, 12, 3)
    assert probe(tmp_path / "g16.png").mode in ("I;16", "I")


def test_huge_image_is_a_clear_error(tmp_path: Path, run) -> None:
    src = make_yolo(tmp_path / "src", {"ok": GOOD})
    _png_header_only(src / "images/train/huge.png", 30000, 30000)
    (src / "labels/train/huge.txt").write_text(GOOD)
    with pytest.raises(ImageTooLargeError, match="30000x30000"):
        probe(src / "images/train/huge.png", max_pixels=178_956_970)
    with pytest.raises(ImageTooLargeError):
        read_image(src / "images/train/huge.png")
    res = run("convert", src, "--to", "coco", "--out", tmp_path / "out", code=1)
    assert "30000x30000" in res.output and "--max-pixels" in res.output
    run("convert", src, "--to", "coco", "--out", tmp_path / "out", "--on-error", "skip")
    assert manifest(tmp_path / "out")["skipped"][0]["kind"] == "too-large"


def test_corrupt_bytes_with_image_name(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"not an image at all")
    with pytest.raises(CorruptImageError, match="not a readable image"):
        probe(tmp_path / "x.jpg")
    buf = io.BytesIO()
    Image.new("RGB", (50, 40)).save(buf, format="PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[:-20])
    with pytest.raises(CorruptImageError, match="truncated"):
        probe(tmp_path / "t.png")
