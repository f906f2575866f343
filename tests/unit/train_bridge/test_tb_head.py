"""YOLOXHead initialisation and the grid decoding of its raw outputs."""

from __future__ import annotations

import math

import pytest
import torch

from train_bridge.models.head import YOLOXHead, decode_outputs, flatten_outputs, make_grid


def test_prior_bias_init() -> None:
    head = YOLOXHead(3, [16, 32], hidden_channels=8, strides=(8, 16))
    expected = -math.log(0.99 / 0.01)
    for conv in (*head.cls_preds, *head.obj_preds):
        torch.testing.assert_close(conv.bias, torch.full_like(conv.bias, expected))
    head.eval()
    with torch.no_grad():
        decoded = head([torch.zeros(1, 16, 4, 4), torch.zeros(1, 32, 2, 2)])
    assert decoded.shape == (1, 20, 8)


def test_make_grid_is_row_major_xy() -> None:
    assert make_grid(2, 3).tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]


def test_decode_by_hand() -> None:
    raw = torch.zeros(1, 6, 2, 3)  # one class, stride 16
    raw[0, :, 1, 2] = torch.tensor([0.25, 0.5, math.log(2.0), 0.0, 0.0, 2.0])
    decoded = decode_outputs([raw], (16,), "cxcywh")
    # Cell (gx, gy) = (2, 1) is flat index 1·3 + 2 = 5: centre ((0.25 + 2)·16, (0.5 + 1)·16).
    torch.testing.assert_close(
        decoded[0, 5], torch.tensor([36.0, 24.0, 32.0, 16.0, 0.5, 1 / (1 + math.exp(-2.0))])
    )
    xyxy = decode_outputs([raw], (16,), "xyxy")
    torch.testing.assert_close(xyxy[0, 5, :4], torch.tensor([20.0, 16.0, 52.0, 32.0]))
    # An all-zero cell decodes to a stride-sized box whose top-left corner is half a cell out.
    torch.testing.assert_close(xyxy[0, 0, :4], torch.tensor([-8.0, -8.0, 8.0, 8.0]))


def test_flatten_outputs_levels_and_strides() -> None:
    raw, grid, strides = flatten_outputs(
        [torch.zeros(2, 7, 4, 4), torch.zeros(2, 7, 2, 2)], (8, 16)
    )
    assert raw.shape == (2, 20, 7) and grid.shape == (20, 2)
    assert strides.tolist() == [8.0] * 16 + [16.0] * 4
    with pytest.raises(ValueError, match="strides"):
        flatten_outputs([torch.zeros(1, 7, 4, 4)], (8, 16))
