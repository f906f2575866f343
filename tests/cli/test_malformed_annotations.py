"""Annotation files with values of the wrong type or form give one clear error line (exit 1)
or a listed skip, never an internal error (QA round 7 fuzzed them: 57 crash sites)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from .conftest import manifest


def _coco(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
            root / "images" / f"im{k}.jpg"
        )
    data = {
        "images": [
            {"id": k + 1, "file_name": f"im{k}.jpg", "width": 64, "height": 48} for k in range(2)
        ],
        "annotations": [
            {
                "id": k + 1,
                "image_id": k + 1,
                "category_id": 1,
                "bbox": [4, 4, 20, 10],
                "segmentation": [[4, 4, 24, 4, 24, 14, 4, 14]],
            }
            for k in range(2)
        ],
        "categories": [{"id": 1, "name": "fire"}],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``value`` at a dotted path (list indices as numbers) of the COCO dict."""

    def edit(data: dict[str, Any]) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        node: Any = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


CASES: dict[str, Callable[[dict[str, Any]], None]] = {
    "images_not_a_list": _set("images", 5),
    "categories_not_a_list": _set("categories", 5),
    "annotation_not_an_object": _set("annotations.0", 5),
    "image_id_a_list": _set("annotations.0.image_id", [1]),
    "image_entry_id_a_list": _set("images.0.id", [1]),
    "category_id_infinite": _set("categories.0.id", float("inf")),
    "ann_category_id_infinite": _set("annotations.0.category_id", float("inf")),
    "image_width_infinite": _set("images.0.width", float("inf")),
    "score_a_string": _set("annotations.0.score", "x"),
    "bbox_nan": _set("annotations.0.bbox", [4, float("nan"), 20, 10]),
    # written with zero size after the writers' rounding (QA round 7)
    "bbox_tiny": _set("annotations.0.bbox", [10, 10, 1e-4, 1e-4]),
    "polygon_odd_length": _set("annotations.0.segmentation", [[1, 2, 3, 4, 5, 6, 7]]),
    "polygon_strings": _set("annotations.0.segmentation", [["a", 2, 3, 4, 5, 6]]),
    "polygon_null": _set("annotations.0.segmentation", [[4, None, 24, 4, 24, 14]]),
    "rle_counts_null": _set("annotations.0.segmentation", {"size": [48, 64], "counts": None}),
    "rle_size_short": _set("annotations.0.segmentation", {"size": [48], "counts": []}),
    "rle_counts_strings": _set("annotations.0.segmentation", {"size": [48, 64], "counts": ["1"]}),
    "rle_size_not_the_image": _set(
        "annotations.0.segmentation", {"size": [10, 10], "counts": [100]}
    ),
    "license_id_a_list": _set("licenses", [{"id": [1], "name": "x"}]),
    "license_as_text": _set("licenses", ["CC BY 4.0"]),  # only kept: left alone
    "file_name_too_long": _set("images.0.file_name", "x" * 300 + ".jpg"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_coco_is_a_clear_error_or_a_skip(case: str, tmp_path: Path, run) -> None:
    src = _coco(tmp_path / "src")
    data = json.loads((src / "annotations.json").read_text())
    CASES[case](data)
    (src / "annotations.json").write_text(json.dumps(data, allow_nan=True))
    out = tmp_path / "out"
    res = run("convert", src, "--to", "coco", "--out", out, "--on-error", "skip", code=None)
    text = " ".join(res.output.split())
    assert res.exit_code in (0, 1) and "internal error" not in text, text
    if res.exit_code == 0:  # the bad item was skipped and listed, or harmlessly ignored
        written = json.loads((out / "annotations.json").read_text())
        assert "NaN" not in json.dumps(written) and "Infinity" not in json.dumps(written)
        assert manifest(out)["skipped"] or case in ("image_width_infinite", "license_as_text")
    else:
        assert "error:" in text


def test_deeply_nested_json_is_a_clear_error(tmp_path: Path, run) -> None:
    src = _coco(tmp_path / "src")
    data = json.loads((src / "annotations.json").read_text())
    text = json.dumps(data)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (src / "annotations.json").write_text(text)
    res = run("convert", src, "--to", "coco", "--out", tmp_path / "o", code=1)
    assert "nested too deeply" in res.output


def _yolo(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(1)
    for k in range(2):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
            root / "images" / f"im{k}.jpg"
        )
        (root / "labels" / f"im{k}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: images\nnames: [fire]\n")
    return root


@pytest.mark.parametrize(
    ("name", "data"),
    [("data.yaml", b"train: images\nnames: [fire]\n# caf\xe9\n"), ("train.txt", b"\xff\xfe\n")],
)
def test_text_files_not_in_utf8_are_a_clear_error(
    name: str, data: bytes, tmp_path: Path, run
) -> None:
    src = _yolo(tmp_path / "src")
    if name == "train.txt":
        (src / "data.yaml").write_text("train: train.txt\nnames: [fire]\n")
    (src / name).write_bytes(data)
    res = run("convert", src, "--to", "coco", "--out", tmp_path / "o", code=1)
    text = " ".join(res.output.split())
    assert "is not UTF-8 text" in text and "save it as UTF-8" in text


def test_a_class_map_not_in_utf8_is_a_clear_error(tmp_path: Path, run) -> None:
    src = _coco(tmp_path / "src")
    (tmp_path / "map.yaml").write_bytes(b"\xff\xfe")
    res = run("merge", src, "--out", tmp_path / "o", "--class-map", tmp_path / "map.yaml", code=1)
    assert "class map is not UTF-8 text" in " ".join(res.output.split())


@pytest.mark.parametrize("value", ["inf", "nan", "1e400"])
def test_yolo_label_class_that_is_not_a_number_is_a_line_error(
    value: str, tmp_path: Path, run
) -> None:
    src = _yolo(tmp_path / "src")
    (src / "labels" / "im0.txt").write_text(f"{value} 0.5 0.5 0.2 0.2\n")
    out = tmp_path / "out"
    run("convert", src, "--to", "coco", "--out", out, "--on-error", "skip")
    (entry,) = manifest(out)["skipped"]
    assert entry["line"] == 1


@pytest.mark.parametrize(
    "sidecar",
    [
        5,
        {"categories": 5},
        {"categories": [{"id": "a", "name": "fire"}]},
        {"categories": []},
        {"categories": [{"id": 7, "name": "fire"}, {"id": 7, "name": "smoke"}]},
        {"images": {"x.jpg": 5}},
        {"images": {"x.jpg": {"split": 5}}},
        {"images": {"x.jpg": {"annotations": [{"score": "x"}]}}},
    ],
)
def test_a_damaged_sidecar_is_a_clear_error(sidecar: Any, tmp_path: Path, run) -> None:
    """sodkit.json beside a YOLO set, edited by hand or by another tool (QA round 7: 12 sites)."""
    yolo = tmp_path / "yolo"
    run("convert", _coco(tmp_path / "src"), "--to", "yolo", "--out", yolo)
    (yolo / "sodkit.json").write_text(json.dumps(sidecar))
    res = run("convert", yolo, "--to", "coco", "--out", tmp_path / "o", code=1)
    text = " ".join(res.output.split())
    assert "sodkit.json" in text and "remove sodkit.json" in text


def _voc(root: Path) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(root / "JPEGImages" / "a.jpg")
    (root / "Annotations" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>64</width><height>48</height>"
        "</size><object><name>fire</name><bndbox><xmin>4</xmin><ymin>4</ymin><xmax>20</xmax>"
        "<ymax>20</ymax></bndbox></object></annotation>"
    )
    return root


def test_voc_files_that_cannot_be_read_as_xml_are_item_errors(tmp_path: Path, run) -> None:
    src = _voc(tmp_path / "voc")
    (src / "Annotations" / "b.xml").write_text(
        '<?xml version="1.0" encoding="bogus"?><annotation/>'
    )
    (src / "Annotations" / "c.xml").mkdir()  # a folder named like a file
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(src / "JPEGImages" / "d.jpg")
    (src / "Annotations" / "d.xml").write_text(  # a width of inf: read from the image instead
        "<annotation><filename>d.jpg</filename><size><width>inf</width><height>48</height>"
        "</size></annotation>"
    )
    out = tmp_path / "out"
    run("convert", f"voc:{src}", "--to", "coco", "--out", out, "--on-error", "skip")
    errors = {Path(s["file"]).name: s["error"] for s in manifest(out)["skipped"]}
    assert "unknown encoding" in errors["b.xml"] and "c.xml" in errors


@pytest.mark.parametrize(
    "yaml_text",
    [
        "path: 5\ntrain: images\nnames: [fire]\n",
        'path: "a\\0b"\ntrain: images\nnames: [fire]\n',
        "train: images\nnames: {0.5: fire}\n",
    ],
)
def test_dataset_yaml_values_of_the_wrong_type_are_a_clear_error(
    yaml_text: str, tmp_path: Path, run
) -> None:
    src = _yolo(tmp_path / "src")
    (src / "data.yaml").write_text(yaml_text)
    res = run("convert", src, "--to", "coco", "--out", tmp_path / "o", code=1)
    assert "data.yaml" in res.output and "error:" in res.output


@pytest.mark.parametrize(
    "report",
    [
        {"clusters": 5},
        {"clusters": [{"id": "dup-1", "members": [5]}]},
        {"clusters": [{"id": "dup-1", "members": [{"path": "x"}]}]},
    ],
)
def test_a_groups_report_not_as_sodkit_writes_it_is_a_clear_error(
    report: dict[str, Any], tmp_path: Path, run
) -> None:
    src = _coco(tmp_path / "src")
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"schema": "sodkit.dedupe.report/1", **report}))
    res = run("split", src, "--out", tmp_path / "o", "--groups", path, code=1)
    assert "clusters are not as sodkit writes them" in " ".join(res.output.split())


@pytest.mark.parametrize("ratios", ["nan:1:1", "inf:1:1", "1e308:1e308:1e308"])
def test_ratios_that_are_not_finite_are_a_usage_error(ratios: str, tmp_path: Path, run) -> None:
    res = run("split", _coco(tmp_path / "src"), "--out", tmp_path / "o", "--ratios", ratios, code=1)
    assert "--ratios" in res.output


def test_option_values_that_would_exhaust_the_machine_are_refused(tmp_path: Path, run) -> None:
    """QA round 7: --size 1 wrote 46,080 one-pixel tiles; --merge-px 100000 took 19.6 GB."""
    src = _coco(tmp_path / "src")
    res = run("tile", src, "--out", tmp_path / "t", "--size", "1", code=2)
    assert "--size" in res.output
    res = run("merge", src, "--out", tmp_path / "m", "--merge-px", "100000", code=2)
    assert "--merge-px" in res.output


def test_yolo_polygons_stay_inside_the_unit_square(tmp_path: Path, run) -> None:
    """QA round 7: a polygon vertex at 1e308 became a YOLO coordinate far outside [0, 1]."""
    src = _coco(tmp_path / "src")
    data = json.loads((src / "annotations.json").read_text())
    data["annotations"][0]["segmentation"] = [[4, 4, 1e308, 4, 24, 14, 4, 14]]
    (src / "annotations.json").write_text(json.dumps(data))
    out = tmp_path / "yolo"
    run("convert", src, "--to", "yolo", "--out", out)
    values = [float(v) for f in (out / "labels").rglob("*.txt") for v in f.read_text().split()[1:]]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert any("clamped" in c.get("change", "") for c in manifest(out)["changed"])
