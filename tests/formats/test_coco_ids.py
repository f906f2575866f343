"""COCO ids, licenses and info survive a rewrite; ids that cannot are renumbered and kept.

Users key predictions, FiftyOne datasets and evaluation results by COCO image ids, so
the writer keeps every image and annotation id when all are integers and unique over
the whole output, and otherwise numbers from 1 with ``original_id`` and a write-result
record saying so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.output import Manifest
from curate.export import export_dataset
from curate.formats.base import ReadOptions, WriteOptions, WriteResult
from curate.io import load_dataset, write_dataset
from curate.merge import ClassMap, merge_datasets

from .conftest import make_dataset

SAMPLE_JSON = "annotations/instances_val2017_subset.json"
NO_COPY = WriteOptions(copy_images=False)
LABELS_ONLY = ReadOptions(check_images=False)  # the generated JSONs name no real images


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _id_changes(result: WriteResult) -> list[dict[str, str]]:
    return [c for c in result.changed if "ids renumbered" in c["change"]]


def _dataset(
    image_ids: list[Any], ann_ids: list[Any] | None = None, *, info: dict[str, Any] | None = None
) -> Dataset:
    """One 64x48 image per entry of ``image_ids``, each with one box (``ann_ids``: its COCO id)."""
    ann_ids = ann_ids if ann_ids is not None else [None] * len(image_ids)
    images = []
    for k, (image_id, ann_id) in enumerate(zip(image_ids, ann_ids, strict=True)):
        ann = Annotation((1.0 + k, 2.0, 20.0 + k, 30.0), 1, id=ann_id)
        images.append(ImageItem(f"img{k}.jpg", Path(f"img{k}.jpg"), 64, 48, [ann], id=image_id))
    return Dataset([Category(1, "fire")], images, dict(info or {}))


@pytest.fixture
def coco_sample(shared_data: Path, tmp_path: Path) -> Path:
    """A writable copy of the real COCO val2017 subset (10 images, 77 annotations)."""
    src = shared_data / "coco-seg-sample"
    if not (src / SAMPLE_JSON).is_file():
        pytest.skip(f"COCO sample not found at {src}")
    root = tmp_path / "coco-sample"
    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    shutil.copyfile(src / SAMPLE_JSON, root / SAMPLE_JSON)
    for img in (src / "images").iterdir():
        shutil.copyfile(img, root / "images" / img.name)
    return root


@pytest.mark.real
def test_real_coco_round_trip_keeps_ids_licenses_and_info(
    coco_sample: Path, tmp_path: Path
) -> None:
    src = _load(coco_sample / SAMPLE_JSON)
    ds = load_dataset(f"coco:{coco_sample}")
    result = write_dataset(ds, tmp_path / "out", "coco")
    out = _load(tmp_path / "out" / "annotations.json")

    assert result.changed == []
    by_id = {i["id"]: i for i in out["images"]}
    assert sorted(by_id) == sorted(i["id"] for i in src["images"])  # 397133-style, gaps kept
    for img in src["images"]:
        for key in ("file_name", "license", "coco_url", "flickr_url", "date_captured"):
            assert by_id[img["id"]][key] == img[key]
        assert "original_id" not in by_id[img["id"]]
    assert {a["id"]: a["image_id"] for a in out["annotations"]} == {
        a["id"]: a["image_id"] for a in src["annotations"]
    }
    assert all("_coco_id" not in a and "original_id" not in a for a in out["annotations"])
    assert out["licenses"] == src["licenses"]
    for key in ("year", "version", "contributor", "url", "date_created"):
        assert out["info"][key] == src["info"][key]
    assert out["info"]["description"] == "written by sodkit"
    assert not {"path", "changed", "dropped", "notes", "coco_info", "coco_licenses"} & set(
        out["info"]
    )

    # A second pass changes nothing but the description sodkit already wrote.
    write_dataset(load_dataset(f"coco:{tmp_path / 'out'}"), tmp_path / "again", "coco")
    again = _load(tmp_path / "again" / "annotations.json")
    assert again["images"] == out["images"]
    assert again["annotations"] == out["annotations"]
    assert again["licenses"] == out["licenses"] and again["info"] == out["info"]


@pytest.mark.real
def test_merged_coco_sources_write_without_crash_or_stray_licenses(
    coco_sample: Path, tmp_path: Path
) -> None:
    src = _load(coco_sample / SAMPLE_JSON)
    a = load_dataset(f"coco:{coco_sample}")
    b = load_dataset(f"coco:{coco_sample}")
    merged, _ = merge_datasets([("a", a), ("b", b)], ClassMap.passthrough())
    write_dataset(merged, tmp_path / "out", "coco", NO_COPY)
    out = _load(tmp_path / "out" / "annotations.json")

    ids = [i["id"] for i in out["images"]]
    assert len(ids) == 20 and len(set(ids)) == 20
    assert len({a["id"] for a in out["annotations"]}) == 2 * len(src["annotations"])
    assert out.get("licenses", src["licenses"]) == src["licenses"]
    assert "path" not in out["info"]


def _write_split_coco(root: Path) -> None:
    """instances_train.json and instances_val.json with sparse, non-contiguous ids."""
    (root / "annotations").mkdir(parents=True)
    licenses = [{"id": 4, "name": "Attribution License", "url": "http://cc.org/by/2.0/"}]
    per_split = {
        "train": ([397133, 37777], [(900100, 397133), (17, 37777), (2500000, 37777)]),
        "val": ([5], [(42, 5)]),
    }
    for split, (image_ids, anns) in per_split.items():
        data = {
            "info": {"year": 2017, "version": "1.0", "description": f"{split} part"},
            "licenses": licenses,
            "images": [
                {"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48, "license": 4}
                for i in image_ids
            ],
            "annotations": [
                {"id": a, "image_id": i, "category_id": 3, "bbox": [2, 3, 10, 12], "iscrowd": 0}
                for a, i in anns
            ],
            "categories": [{"id": 3, "name": "fire"}],
        }
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))


def test_split_coco_keeps_ids_across_split_files(tmp_path: Path) -> None:
    _write_split_coco(tmp_path / "src")
    ds = load_dataset(f"coco:{tmp_path / 'src'}", LABELS_ONLY)
    assert sorted(img.split or "" for img in ds.images) == ["train", "train", "val"]
    result = write_dataset(ds, tmp_path / "out", "coco", NO_COPY)

    assert sorted(result.files) == [
        "annotations/instances_train.json",
        "annotations/instances_val.json",
    ]
    assert _id_changes(result) == []
    train = _load(tmp_path / "out" / "annotations" / "instances_train.json")
    val = _load(tmp_path / "out" / "annotations" / "instances_val.json")
    assert [i["id"] for i in train["images"]] == [397133, 37777]
    assert [i["id"] for i in val["images"]] == [5]
    assert [(a["id"], a["image_id"]) for a in train["annotations"]] == [
        (900100, 397133),
        (17, 37777),
        (2500000, 37777),
    ]
    assert [(a["id"], a["image_id"]) for a in val["annotations"]] == [(42, 5)]
    for part in (train, val):
        assert part["licenses"] == [
            {"id": 4, "name": "Attribution License", "url": "http://cc.org/by/2.0/"}
        ]
        assert part["info"]["year"] == 2017 and part["info"]["version"] == "1.0"
        assert all(i["license"] == 4 for i in part["images"])


def test_ids_colliding_across_split_files_are_renumbered(tmp_path: Path) -> None:
    """Unique within each file is not enough: ids must be unique over the whole output."""
    ds = _dataset([1, 2, 1], [1, 2, 3])
    for img, split in zip(ds.images, ("train", "train", "val"), strict=True):
        img.split = split
    result = write_dataset(ds, tmp_path / "out", "coco", NO_COPY)
    train = _load(tmp_path / "out" / "annotations" / "instances_train.json")
    val = _load(tmp_path / "out" / "annotations" / "instances_val.json")
    assert [(i["id"], i["original_id"]) for i in train["images"] + val["images"]] == [
        (1, 1),
        (2, 2),
        (3, 1),
    ]
    assert [c["item"] for c in _id_changes(result)] == ["images"]  # annotation ids stay
    assert [a["id"] for a in train["annotations"] + val["annotations"]] == [1, 2, 3]


def test_colliding_ids_are_renumbered_with_original_id(tmp_path: Path) -> None:
    """Two sources that both use image id 5 (and annotation id 1), one image with id 7."""
    ds = _dataset([5, 5, 7], [1, 1, 8], info={"layout": "coco"})
    result = write_dataset(ds, tmp_path / "out", "coco", NO_COPY)
    out = _load(tmp_path / "out" / "annotations.json")

    assert [(i["id"], i["original_id"]) for i in out["images"]] == [(1, 5), (2, 5), (3, 7)]
    assert [(a["id"], a["image_id"], a["original_id"]) for a in out["annotations"]] == [
        (1, 1, 1),
        (2, 2, 1),
        (3, 3, 8),
    ]
    assert _id_changes(result) == [
        {
            "item": "images",
            "change": "image ids renumbered from 1: 2 images had colliding/missing ids "
            "(2 colliding); input ids kept as original_id",
        },
        {
            "item": "annotations",
            "change": "annotation ids renumbered from 1: 2 annotations had colliding/missing "
            "ids (2 colliding); input ids kept as original_id",
        },
    ]
    # The dataset itself is not touched: original_id exists only in the written file.
    assert [img.id for img in ds.images] == [5, 5, 7]
    assert all("original_id" not in img.attributes for img in ds.images)


def test_renumbering_reaches_the_manifest(tmp_path: Path) -> None:
    ds = _dataset([5, 5])
    export_dataset(ds, tmp_path / "out", "coco", Manifest("convert"), options=NO_COPY)
    manifest = _load(tmp_path / "out" / "manifest.json")
    assert [c["item"] for c in manifest["changed"]] == ["images"]
    assert "input ids kept as original_id" in manifest["changed"][0]["change"]


def test_some_ids_missing_renumbers_and_keeps_those_that_existed(tmp_path: Path) -> None:
    ds = _dataset([12, None, 30])
    result = write_dataset(ds, tmp_path / "out", "coco", NO_COPY)
    out = _load(tmp_path / "out" / "annotations.json")
    assert [i["id"] for i in out["images"]] == [1, 2, 3]
    assert [i.get("original_id") for i in out["images"]] == [12, None, 30]
    assert _id_changes(result) == [
        {
            "item": "images",
            "change": "image ids renumbered from 1: 1 image had colliding/missing ids "
            "(1 missing); input ids kept as original_id",
        }
    ]


def test_string_image_ids_read_as_before_and_are_renumbered(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    data = {
        "images": [
            {"id": "000123", "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": "000124", "file_name": "b.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 7, "image_id": "000123", "category_id": 1, "bbox": [1, 1, 5, 5]},
            {"id": 8, "image_id": "000124", "category_id": 1, "bbox": [2, 2, 5, 5]},
            {"id": 9, "image_id": "000124", "category_id": 1, "bbox": [3, 3, 5, 5]},
        ],
        "categories": [{"id": 1, "name": "fire"}],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    ds = load_dataset(f"coco:{root}", LABELS_ONLY)
    assert [(img.id, len(img.annotations)) for img in ds.images] == [("000123", 1), ("000124", 2)]

    result = write_dataset(ds, tmp_path / "out", "coco", NO_COPY)
    out = _load(tmp_path / "out" / "annotations.json")
    assert [(i["id"], i["original_id"]) for i in out["images"]] == [(1, "000123"), (2, "000124")]
    assert [(a["id"], a["image_id"]) for a in out["annotations"]] == [(7, 1), (8, 2), (9, 2)]
    assert "(2 not an integer)" in _id_changes(result)[0]["change"]


def test_annotation_id_zero_is_renumbered_image_id_zero_is_kept(tmp_path: Path) -> None:
    """Roboflow numbers from 0; pycocotools' COCOeval counts an annotation id 0 as unmatched."""
    ds = _dataset([0, 1], [0, 1])
    result = write_dataset(ds, tmp_path / "out", "coco", NO_COPY)
    out = _load(tmp_path / "out" / "annotations.json")
    assert [i["id"] for i in out["images"]] == [0, 1]
    assert [(a["id"], a["image_id"], a["original_id"]) for a in out["annotations"]] == [
        (1, 0, 0),
        (2, 1, 1),
    ]
    assert [c["item"] for c in _id_changes(result)] == ["annotations"]
    assert "(1 below 1)" in result.changed[0]["change"]


def test_an_earlier_original_id_is_not_overwritten(tmp_path: Path) -> None:
    ds = _dataset([3, 3])
    ds.images[0].attributes["original_id"] = 397133
    write_dataset(ds, tmp_path / "out", "coco", NO_COPY)
    out = _load(tmp_path / "out" / "annotations.json")
    assert [i["original_id"] for i in out["images"]] == [397133, 3]


def test_yolo_to_coco_numbers_from_one_without_original_id(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    write_dataset(make_dataset(tmp_path, rng, split=False), tmp_path / "yolo", "yolo")
    ds = load_dataset(f"yolo:{tmp_path / 'yolo'}")
    assert all(img.id is None for img in ds.images)
    result = write_dataset(ds, tmp_path / "out", "coco", NO_COPY)
    out = _load(tmp_path / "out" / "annotations.json")

    assert [i["id"] for i in out["images"]] == list(range(1, len(ds) + 1))
    assert [a["id"] for a in out["annotations"]] == list(range(1, ds.num_annotations + 1))
    assert ds.num_annotations > 0
    assert not any("original_id" in e for e in out["images"] + out["annotations"])
    assert _id_changes(result) == []
    assert "licenses" not in out
    assert out["info"] == {"description": "written by sodkit", "layout": "yolo"}


def test_info_never_carries_internal_fields(tmp_path: Path) -> None:
    info = {
        "layout": "coco",
        "path": "/data/in",
        "changed": [{"item": "a.jpg", "change": "clipped"}],
        "dropped": [],
        "notes": ["a note"],
        "coco_info": {"year": 2020, "description": "theirs", "layout": "not sodkit's"},
        "coco_licenses": [],
    }
    write_dataset(_dataset([1], info=info), tmp_path / "out", "coco", NO_COPY)
    out = _load(tmp_path / "out" / "annotations.json")
    assert out["info"] == {"year": 2020, "description": "written by sodkit", "layout": "coco"}
    assert out["licenses"] == []


def test_differing_licenses_across_split_files_keep_the_first(tmp_path: Path) -> None:
    _write_split_coco(tmp_path / "src")
    val_json = tmp_path / "src" / "annotations" / "instances_val.json"
    val = _load(val_json)
    val["licenses"] = [
        {"id": 4, "name": "Something else", "url": ""},
        {"id": 9, "name": "Extra", "url": ""},
    ]
    val_json.write_text(json.dumps(val))
    ds = load_dataset(f"coco:{tmp_path / 'src'}", LABELS_ONLY)
    assert [lic["id"] for lic in ds.info["coco_licenses"]] == [4, 9]
    assert ds.info["coco_licenses"][0]["name"] == "Attribution License"
    assert any("license id 4" in n for n in ds.info["notes"])
    assert ds.info["coco_info"]["description"] == "train part"


@settings(max_examples=40, deadline=None)
@given(
    own=st.lists(
        st.one_of(st.none(), st.integers(-2, 12), st.sampled_from(["007", "x"])),
        min_size=1,
        max_size=8,
    )
)
def test_image_ids_kept_or_renumbered_property(
    own: list[Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    out_dir = tmp_path_factory.mktemp("ids")
    result = write_dataset(_dataset(own), out_dir, "coco", NO_COPY)
    images = _load(out_dir / "annotations.json")["images"]
    ints = [v for v in own if isinstance(v, int)]
    if len(ints) == len(own) and len(set(ints)) == len(ints):
        assert [i["id"] for i in images] == own
        assert not any("original_id" in i for i in images)
        assert _id_changes(result) == []
    else:
        assert [i["id"] for i in images] == list(range(1, len(own) + 1))
        assert [i.get("original_id") for i in images] == own
        assert len(_id_changes(result)) == (1 if any(v is not None for v in own) else 0)
