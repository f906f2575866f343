"""Output shapes for every size and level set, and parameter counts against the YOLOX zoo."""

from __future__ import annotations

import pytest
import torch

from curate.core.errors import UsageError
from train_bridge.models import YOLOX, ModelConfig, build_loss, build_model
from train_bridge.models.backbone import CSPDarknet
from train_bridge.models.neck import MFF, PAFPN

SIZES = ["nano", "tiny", "s", "m", "l", "x"]
# Parameter counts of the YOLOX model zoo (80 classes), in millions.
REFERENCE_PARAMS = {"nano": 0.91, "tiny": 5.06, "s": 8.97, "m": 25.3, "l": 54.2, "x": 99.1}


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build_meta(cfg: ModelConfig) -> YOLOX:
    """Build on the meta device: shapes and counts without allocating or initialising weights."""
    with torch.device("meta"):
        return build_model(cfg)


@pytest.mark.parametrize("size", SIZES)
def test_param_count_matches_yolox_reference(size: str) -> None:
    count = _num_params(_build_meta(ModelConfig(size=size, num_classes=80)))
    assert count / 1e6 == pytest.approx(REFERENCE_PARAMS[size], rel=0.02)


def test_switches_add_parameters() -> None:
    base = _num_params(_build_meta(ModelConfig(size="s")))
    for switch in ("cbam", "mff", "p2"):
        assert _num_params(_build_meta(ModelConfig(size="s", **{switch: True}))) > base


def _expected_hw(strides: tuple[int, ...], size: int) -> list[tuple[int, int]]:
    return [(size // s, size // s) for s in strides]


@pytest.mark.parametrize("p2", [False, True])
@pytest.mark.parametrize("size", ["nano", "tiny", "s", "m"])
def test_forward_shapes(size: str, p2: bool) -> None:
    cfg = ModelConfig(size=size, num_classes=3, p2=p2)
    model = build_model(cfg)
    x = torch.randn(2, 3, 64, 64)
    raw = model(x)
    assert isinstance(raw, list)
    assert [tuple(o.shape) for o in raw] == [(2, 8, h, w) for h, w in _expected_hw(cfg.strides, 64)]
    model.eval()
    with torch.no_grad():
        decoded = model(x)
    anchors = sum(h * w for h, w in _expected_hw(cfg.strides, 64))
    assert decoded.shape == (2, anchors, 8)
    assert torch.all((decoded[..., 4:] >= 0) & (decoded[..., 4:] <= 1))
    assert torch.all(decoded[..., 2] >= decoded[..., 0])
    assert torch.all(decoded[..., 3] >= decoded[..., 1])


@pytest.mark.parametrize("p2", [False, True])
@pytest.mark.parametrize("size", ["l", "x"])
def test_forward_shapes_large_on_meta(size: str, p2: bool) -> None:
    cfg = ModelConfig(size=size, num_classes=80, p2=p2, cbam=True, mff=True)
    model = _build_meta(cfg).eval()
    decoded = model(torch.empty(1, 3, 64, 64, device="meta"))
    anchors = sum(h * w for h, w in _expected_hw(cfg.strides, 64))
    assert decoded.shape == (1, anchors, 85)


@pytest.mark.parametrize("p2", [False, True])
def test_forward_shapes_with_every_switch(p2: bool) -> None:
    cfg = ModelConfig(size="nano", num_classes=2, p2=p2, cbam=True, mff=True, iou_loss="ciou")
    model = build_model(cfg)
    raw = model(torch.randn(1, 3, 96, 64))
    assert [tuple(o.shape[-2:]) for o in raw] == [(96 // s, 64 // s) for s in cfg.strides]
    assert build_loss(cfg).strides == cfg.strides


def test_backbone_channels_strides_and_cbam_count() -> None:
    net = CSPDarknet(0.33, 0.5, ("dark2", "dark3", "dark4", "dark5"), cbam=True)
    assert net.out_channels == [64, 128, 256, 512]
    assert net.out_strides == [4, 8, 16, 32]
    outs = net(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [
        (1, 64, 16, 16),
        (1, 128, 8, 8),
        (1, 256, 4, 4),
        (1, 512, 2, 2),
    ]
    assert sum(type(m).__name__ == "CBAM" for m in net.modules()) == 4


def test_backbone_rejects_bad_out_features() -> None:
    with pytest.raises(ValueError, match="dark6"):
        CSPDarknet(out_features=("dark3", "dark6"))
    with pytest.raises(ValueError, match="fine to coarse"):
        CSPDarknet(out_features=("dark4", "dark3"))


@pytest.mark.parametrize("levels", [3, 4])
def test_neck_cbam_count_and_shapes(levels: int) -> None:
    channels = [16, 32, 64, 128][-levels:]
    neck = PAFPN(channels, depth=0.33, cbam=True)
    assert sum(type(m).__name__ == "CBAM" for m in neck.modules()) == 2 * (levels - 1)
    sizes = [32, 16, 8, 4][-levels:]
    feats = [torch.randn(1, c, s, s) for c, s in zip(channels, sizes, strict=True)]
    outs = neck(feats)
    assert [o.shape for o in outs] == [f.shape for f in feats]


def test_mff_matches_hand_computation_with_identity_refine() -> None:
    # One channel, equal widths (no projections), non-local starts as identity.
    mff = MFF([1, 1, 1])
    f0 = torch.arange(16.0).reshape(1, 1, 4, 4)
    f1 = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]])
    f2 = torch.tensor([[[[10.0]]]])
    # Level 0 is max-pooled over 2×2 blocks, level 2 is repeated; average at 2×2.
    pooled0 = torch.tensor([[5.0, 7.0], [13.0, 15.0]])
    balanced = (pooled0 + f1[0, 0] + 10.0) / 3
    out0, out1, out2 = mff([f0, f1, f2])
    expected0 = f0[0, 0] + balanced.repeat_interleave(2, 0).repeat_interleave(2, 1)
    torch.testing.assert_close(out0[0, 0], expected0)
    torch.testing.assert_close(out1[0, 0], f1[0, 0] + balanced)
    torch.testing.assert_close(out2[0, 0, 0, 0], 10.0 + balanced.max())


def test_mff_projects_unequal_widths() -> None:
    mff = MFF([8, 16, 32, 64])
    assert mff.channels == 8 and mff.refine_level == 2
    feats = [torch.randn(2, c, s, s) for c, s in zip([8, 16, 32, 64], [16, 8, 4, 2], strict=True)]
    assert [o.shape for o in mff(feats)] == [f.shape for f in feats]


def test_model_config_rejects_bad_values() -> None:
    with pytest.raises(UsageError, match="huge"):
        ModelConfig(size="huge")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="num_classes"):
        ModelConfig(num_classes=0)
    with pytest.raises(UsageError, match="diou"):
        ModelConfig(iou_loss="diou")  # type: ignore[arg-type]


def test_model_config_strides() -> None:
    assert ModelConfig().strides == (8, 16, 32)
    assert ModelConfig(p2=True).strides == (4, 8, 16, 32)
    assert ModelConfig(size="nano").depthwise and not ModelConfig(size="tiny").depthwise
