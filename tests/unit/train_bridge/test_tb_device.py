"""train_bridge.device: CPU fallback, and the CUDA paths (AMP, channels-last) where a GPU exists."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from curate.core.errors import UsageError
from train_bridge.device import (
    autocast,
    grad_scaler,
    prepare_images,
    prepare_model,
    resolve_device,
    use_amp,
)

HAS_CUDA = torch.cuda.is_available()


def test_auto_and_cpu():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if HAS_CUDA else "cpu")
    with pytest.raises(UsageError, match="use auto, cpu or cuda"):
        resolve_device("tpu")


@pytest.mark.skipif(HAS_CUDA, reason="checks the message shown without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(UsageError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_cpu_paths_are_plain_fp32():
    cpu = torch.device("cpu")
    assert not use_amp(cpu, True)
    assert not grad_scaler(cpu, True).is_enabled()
    x = prepare_images(torch.full((1, 3, 4, 4), 255, dtype=torch.uint8), cpu)
    assert x.dtype == torch.float32 and float(x.max()) == 1.0
    model = prepare_model(nn.Conv2d(3, 2, 1), cpu)
    with autocast(cpu, True):
        assert model(x).dtype == torch.float32


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_cuda_amp_and_channels_last():
    cuda = resolve_device("cuda")
    assert use_amp(cuda, True) and grad_scaler(cuda, True).is_enabled()
    model = prepare_model(nn.Conv2d(3, 2, 3), cuda)
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    x = prepare_images(torch.zeros((2, 3, 8, 8), dtype=torch.uint8), cuda)
    assert x.is_contiguous(memory_format=torch.channels_last)
    with autocast(cuda, True):
        assert model(x).dtype == torch.float16


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_one_epoch_on_cuda_with_amp(tmp_path):
    from curate.io import load_dataset
    from train_bridge.config import make_config
    from train_bridge.data import split_images
    from train_bridge.engine import train
    from train_bridge.synthetic import ShapesSpec, make_shapes_dataset

    spec = ShapesSpec(width=64, height=64, splits={"train": 8, "val": 4})
    make_shapes_dataset(tmp_path / "d", spec)
    ds = load_dataset(str(tmp_path / "d"))
    cfg = make_config("cpu-smoke", device="cuda", amp=True, epochs=1, imgsz=64, batch=4, workers=2)
    out = tmp_path / "run"
    out.mkdir()
    result = train(cfg, split_images(ds, "train"), split_images(ds, "val"), ds.categories, out)
    assert result.best.is_file() and result.history[0]["AP50"] >= 0
