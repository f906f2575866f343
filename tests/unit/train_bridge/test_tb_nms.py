"""NMS, batched NMS and Soft-NMS against brute-force Python references; post-processing."""

from __future__ import annotations

import math

import pytest
import torch

from train_bridge.models.nms import batched_nms, detections_to_dicts, nms, postprocess, soft_nms


def _random_boxes(gen: torch.Generator, n: int, extent: float = 100.0) -> torch.Tensor:
    corner = torch.rand(n, 2, generator=gen, dtype=torch.float64) * extent
    size = torch.rand(n, 2, generator=gen, dtype=torch.float64) * extent / 3 + 1
    return torch.cat([corner, corner + size], dim=1)


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _greedy_reference(boxes: list[list[float]], scores: list[float], thr: float) -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        if all(_iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def _soft_reference(
    boxes: list[list[float]], scores: list[float], sigma: float, thr: float
) -> tuple[list[int], list[float]]:
    current = {i: s for i, s in enumerate(scores) if s >= thr}
    keep, kept = [], []
    while current:
        best = max(current, key=lambda i: current[i])
        keep.append(best)
        kept.append(current.pop(best))
        for i in list(current):
            current[i] *= math.exp(-(_iou(boxes[best], boxes[i]) ** 2) / sigma)
            if current[i] < thr:
                del current[i]
    return keep, kept


@pytest.mark.parametrize("thr", [0.1, 0.3, 0.5, 0.7])
def test_nms_matches_greedy_reference(gen: torch.Generator, thr: float) -> None:
    for _ in range(20):
        n = int(torch.randint(0, 60, (1,), generator=gen))
        boxes = _random_boxes(gen, n)
        scores = torch.rand(n, generator=gen, dtype=torch.float64)
        expected = _greedy_reference(boxes.tolist(), scores.tolist(), thr)
        assert nms(boxes, scores, thr).tolist() == expected


def test_batched_nms_only_suppresses_within_a_class(gen: torch.Generator) -> None:
    for _ in range(20):
        n = 40
        boxes = _random_boxes(gen, n)
        scores = torch.rand(n, generator=gen, dtype=torch.float64)
        labels = torch.randint(0, 3, (n,), generator=gen)
        expected: list[int] = []
        for c in range(3):
            idx = (labels == c).nonzero().squeeze(1).tolist()
            kept = _greedy_reference([boxes[i].tolist() for i in idx], scores[idx].tolist(), 0.4)
            expected += [idx[k] for k in kept]
        expected.sort(key=lambda i: -float(scores[i]))
        assert batched_nms(boxes, scores, labels, 0.4).tolist() == expected


@pytest.mark.parametrize("sigma", [0.2, 0.5])
def test_soft_nms_matches_reference(gen: torch.Generator, sigma: float) -> None:
    for _ in range(10):
        n = int(torch.randint(0, 40, (1,), generator=gen))
        boxes = _random_boxes(gen, n)
        scores = torch.rand(n, generator=gen, dtype=torch.float64)
        keep, kept_scores = soft_nms(boxes, scores, sigma, 0.05)
        ref_keep, ref_scores = _soft_reference(boxes.tolist(), scores.tolist(), sigma, 0.05)
        assert keep.tolist() == ref_keep
        torch.testing.assert_close(kept_scores, torch.tensor(ref_scores, dtype=torch.float64))


def test_nms_functions_do_not_change_inputs(gen: torch.Generator) -> None:
    boxes = _random_boxes(gen, 30)
    scores = torch.rand(30, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 2, (30,), generator=gen)
    before = (boxes.clone(), scores.clone(), labels.clone())
    nms(boxes, scores, 0.5)
    batched_nms(boxes, scores, labels, 0.5)
    soft_nms(boxes, scores, 0.5, 0.01, labels)
    torch.testing.assert_close((boxes, scores, labels), before)


def _decoded(boxes: list[list[float]], obj: list[float], cls: list[list[float]]) -> torch.Tensor:
    return torch.cat([torch.tensor(boxes), torch.tensor(obj)[:, None], torch.tensor(cls)], 1)[None]


def test_postprocess_filters_and_suppresses() -> None:
    preds = _decoded(
        [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]],
        [0.9, 0.8, 0.9, 0.01],
        [[0.9, 0.1], [0.9, 0.1], [0.2, 0.7], [0.9, 0.1]],
    )
    (dets,) = postprocess(preds, conf_thr=0.05, nms_thr=0.5)
    # box 3 fails the confidence; box 1 is suppressed by box 0 (same class); box 2 is another class.
    assert dets.shape == (2, 7)
    assert dets[:, 6].tolist() == [0.0, 1.0]
    torch.testing.assert_close(dets[:, 4] * dets[:, 5], torch.tensor([0.81, 0.63]))
    (agnostic,) = postprocess(preds, conf_thr=0.05, nms_thr=0.5, class_agnostic=True)
    assert agnostic.shape == (1, 7)
    (soft,) = postprocess(preds, conf_thr=0.05, nms_thr=0.5, method="soft")
    assert soft.shape == (3, 7)  # soft-NMS only decays the overlapping same-class box
    scores = soft[:, 4] * soft[:, 5]
    assert scores[0] == pytest.approx(0.81) and scores[2] < 0.72
    out = detections_to_dicts([dets])[0]
    assert out["boxes"].shape == (2, 4) and out["labels"].tolist() == [0, 1]


def test_postprocess_empty() -> None:
    preds = torch.zeros(2, 5, 7)
    results = postprocess(preds, conf_thr=0.1, nms_thr=0.5)
    assert [r.shape for r in results] == [(0, 7), (0, 7)]
    soft = postprocess(preds, conf_thr=0.1, nms_thr=0.5, method="soft")
    assert [r.shape for r in soft] == [(0, 7), (0, 7)]
