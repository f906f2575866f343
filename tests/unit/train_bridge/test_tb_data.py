"""train_bridge.data / config / engine helpers: split loading, samples, schedule, EMA."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from curate.core.dataset import Annotation, Category, Dataset, ImageItem
from curate.core.errors import UsageError
from curate.core.imageio import write_image
from curate.io import load_dataset
from train_bridge.config import PRESETS, AugmentConfig, TrainConfig, make_config
from train_bridge.data import ClassMap, DetectionDataset, collate, split_images
from train_bridge.engine import ModelEMA, lr_at, param_groups, pick_size, resize_batch
from train_bridge.models import ModelConfig, build_model
from train_bridge.synthetic import ShapesSpec, make_shapes_dataset

SPEC = ShapesSpec(width=96, height=64, splits={"train": 6, "val": 2, "test": 3})


@pytest.fixture(scope="module")
def shapes_yolo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shapes") / "yolo"
    make_shapes_dataset(out, SPEC, seed=1, fmt="yolo")
    return out


def test_split_datasets_load_in_both_layouts(shapes_yolo, tmp_path):
    coco = tmp_path / "coco"
    make_shapes_dataset(coco, SPEC, seed=1, fmt="coco")
    assert (coco / "annotations" / "instances_test.json").is_file()
    for spec in (str(shapes_yolo), f"yolo:{shapes_yolo / 'data.yaml'}", str(coco)):
        ds = load_dataset(spec)
        assert {k: len(v) for k, v in ds.splits().items()} == SPEC.splits
        assert [c.name for c in sorted(ds.categories, key=lambda c: c.id)] == list(SPEC.classes)
        assert len(split_images(ds, "train")) == 6


def test_missing_split_is_a_clear_error():
    ds = Dataset([Category(0, "a")], [ImageItem("x.png", Path("x.png"), 4, 4)])
    with pytest.raises(UsageError, match=r"no 'train' split.*curate split"):
        split_images(ds, "train")
    assert split_images(ds, "val", required=False) == []


def test_class_map_and_name_matching():
    cm = ClassMap.from_categories([Category(5, "Smoke"), Category(2, "Fire"), Category(9, "junk")])
    assert cm.ids == (2, 5, 9)
    assert cm.index_of() == {2: 0, 5: 1, 9: 2}
    assert ClassMap.from_dict(cm.to_dict()) == cm
    assert cm.map_to([Category(1, "fire"), Category(2, "smoke")]) == {0: 1, 1: 2}
    with pytest.raises(UsageError):
        ClassMap.from_categories([])


def _one_image(tmp_path: Path) -> tuple[list[ImageItem], ClassMap]:
    img = np.zeros((50, 100, 3), np.uint8)
    img[10:20, 30:50] = 255
    path = tmp_path / "a.png"
    write_image(path, img)
    items = [
        ImageItem(
            "a.png",
            path,
            100,
            50,
            [Annotation((30, 10, 50, 20), 7), Annotation((0, 0, 5, 5), 7, iscrowd=True)],
            split="train",
        )
    ]
    return items, ClassMap((3, 7), ("a", "b"))


def test_plain_sample_is_letterboxed(tmp_path):
    items, cm = _one_image(tmp_path)
    ds = DetectionDataset(items, cm, 64)
    image, target, index = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
    assert index == 0
    # Scale 0.64 (100 px → 64), crowd region left out, class id 7 → index 1.
    np.testing.assert_allclose(target.numpy(), [[1, 19.2, 6.4, 32.0, 12.8]], rtol=1e-6)
    bright = image[0].numpy() > 127
    ys, xs = np.nonzero(bright)
    np.testing.assert_allclose(
        [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], target[0, 1:], atol=1
    )


def test_augmented_samples_are_deterministic(shapes_yolo):
    ds = load_dataset(str(shapes_yolo))
    cm = ClassMap.from_categories(ds.categories)
    aug = AugmentConfig(mosaic_prob=0.5, mixup_prob=0.5, affine_scale=(0.8, 1.2))
    a = DetectionDataset(split_images(ds, "train"), cm, 64, augment=aug, seed=3)
    b = DetectionDataset(split_images(ds, "train"), cm, 64, augment=aug, seed=3, cache=True)
    for i in range(len(a)):
        ia, ta, _ = a[i]
        ib, tb, _ = b[i]
        assert torch.equal(ia, ib) and torch.equal(ta, tb)
        assert ia.shape == (3, 64, 64)
        boxes = ta[:, 1:]
        assert (boxes >= 0).all() and (boxes <= 64).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert set(ta[:, 0].long().tolist()) <= {0, 1, 2}
    a.set_epoch(1)
    assert any(not torch.equal(a[i][0], b[i][0]) for i in range(len(a)))


def test_no_mix_phase_keeps_geometry(shapes_yolo):
    ds = load_dataset(str(shapes_yolo))
    cm = ClassMap.from_categories(ds.categories)
    aug = AugmentConfig(mosaic_prob=1.0, mixup_prob=1.0, hsv_prob=0.0, flip_prob=0.0)
    images = split_images(ds, "train")
    mixed = DetectionDataset(images, cm, 96, augment=aug)
    plain = DetectionDataset(images, cm, 96)
    mixed.mix = False
    for i in range(len(images)):
        assert torch.equal(mixed[i][0], plain[i][0])
        assert torch.equal(mixed[i][1], plain[i][1])


def test_collate_stacks_images_and_lists_targets(tmp_path):
    items, cm = _one_image(tmp_path)
    ds = DetectionDataset(items * 3, cm, 64)
    images, targets, idx = collate([ds[0], ds[1], ds[2]])
    assert images.shape == (3, 3, 64, 64)
    assert [t.shape for t in targets] == [(1, 5)] * 3
    assert idx == [0, 1, 2]


def test_config_presets_and_checks():
    cfg = make_config("cpu-smoke", epochs=2)
    assert cfg.model == PRESETS["cpu-smoke"]["model"]
    assert cfg.epochs == 2
    assert cfg.augment.mosaic_prob == PRESETS["cpu-smoke"]["augment"]["mosaic_prob"]
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert make_config(batch=64).lr == pytest.approx(0.01)
    with pytest.raises(UsageError, match="multiple of 32"):
        make_config(imgsz=100)
    with pytest.raises(UsageError, match="unknown preset"):
        make_config("nope")
    with pytest.raises(UsageError, match="probability"):
        AugmentConfig(mosaic_prob=2)
    with pytest.raises(UsageError):
        make_config(model="huge")


def test_lr_schedule_shape():
    kw = {"base_lr": 0.01, "warmup": 10, "no_aug": 20, "min_ratio": 0.05}
    lrs = [lr_at(i, 100, **kw) for i in range(100)]
    assert lrs[0] == 0.0
    assert lrs[5] == pytest.approx(0.01 * 0.25)  # quadratic warm-up
    assert lrs[10] == pytest.approx(0.01)  # peak after warm-up
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:80]))  # cosine decays
    assert lrs[80:] == [pytest.approx(0.0005)] * 20  # flat no-aug tail


def test_weight_decay_only_on_conv_weights():
    model = build_model(ModelConfig(size="nano", num_classes=2, cbam=True))
    decay, no_decay = param_groups(model, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    decay_ids = {id(p) for p in decay["params"]}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_conv_weight = name == "weight" and isinstance(module, nn.Conv2d)
            assert (id(p) in decay_ids) == is_conv_weight
    n_params = sum(1 for _ in model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == n_params


def test_ema_follows_the_model():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
    ema = ModelEMA(model, decay=0.5, tau=1e-9)  # decay 0.5 from the first update
    with torch.no_grad():
        model[0].weight.fill_(2.0)
    start = ema.module[0].weight.clone()
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, 0.5 * start + 0.5 * 2.0)
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_multiscale_helpers(rng):
    images = torch.rand(2, 3, 64, 64)
    targets = [torch.tensor([[0, 8.0, 8.0, 16.0, 16.0]]), torch.zeros(0, 5)]
    out, scaled = resize_batch(images, targets, 96)
    assert out.shape == (2, 3, 96, 96)
    assert torch.allclose(scaled[0], torch.tensor([[0, 12.0, 12.0, 24.0, 24.0]]))
    assert targets[0][0, 1] == 8.0  # input untouched
    sizes = {pick_size(rng, 64, 128) for _ in range(50)}
    assert sizes == {64, 96, 128}
    assert math.isclose(resize_batch(images, targets, 64)[0].sum(), images.sum())
