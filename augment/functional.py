"""Pure detection augmentations: arrays in, new arrays out, randomness passed in.

Images are ``(H, W, 3)`` uint8 RGB arrays; boxes are absolute-pixel XYXY float
``(N, 4)`` arrays with pixel-edge coordinates (a box covering pixel 0 only is
``(0, 0, 1, 1)``); labels are ``(N,)`` integer arrays aligned with the boxes. No function
changes its inputs. Every random choice is drawn from the ``rng`` argument
(``numpy.random.Generator``), so a seed fixes the result.

Boxes that leave the frame are clipped; a clipped remnant is dropped when it is smaller
than ``min_area`` pixels or keeps less than ``min_visible`` of its transformed area
(see :func:`keep_visible`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

from curate.core import boxes as B

Image = NDArray[np.uint8]
Boxes = NDArray[np.float64]
Labels = NDArray[np.int64]

#: Grey used by YOLOX for padding and empty mosaic quadrants.
PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class LetterboxParams:
    """How :func:`letterbox` mapped the input: ``out = in * scale + pad`` per axis."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def unmap(self, boxes: ArrayLike) -> Boxes:
        """Map XYXY boxes of the letterboxed image back to the original image."""
        b = B.translate(boxes, -self.pad_x, -self.pad_y)
        return B.scale(b, 1.0 / self.scale_x, 1.0 / self.scale_y)


def _labels(labels: ArrayLike, n: int) -> Labels:
    out = np.array(labels, dtype=np.int64, copy=True).reshape(-1)
    if len(out) != n:
        raise ValueError(f"{len(out)} labels for {n} boxes")
    return out


def _affine_image(
    image: Image,
    sx: float,
    sy: float,
    tx: float,
    ty: float,
    out_w: int,
    out_h: int,
    pad_value: int,
) -> Image:
    """Warp ``image`` by the edge-coordinate map ``x' = sx·x + tx`` (same for y).

    OpenCV works in pixel-centre coordinates (pixel i has its centre at i); the box
    convention puts it at i + 0.5. Converting the translation keeps boxes and pixels exact.
    """
    m = np.array([[sx, 0.0, tx + 0.5 * sx - 0.5], [0.0, sy, ty + 0.5 * sy - 0.5]], dtype=np.float64)
    interp = cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(
        image,
        m,
        (out_w, out_h),
        flags=interp,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(pad_value, pad_value, pad_value),
    )


def keep_visible(
    transformed: ArrayLike,
    clipped: ArrayLike,
    *,
    min_area: float = 4.0,
    min_visible: float = 0.25,
    min_size: float = 1.0,
) -> NDArray[np.bool_]:
    """``(N,)`` True for clipped boxes worth keeping.

    ``transformed`` are the boxes after the geometric change, before clipping; ``clipped``
    the same boxes clipped to the frame. A box is kept when its clipped area is at least
    ``min_area`` px², at least ``min_visible`` of its transformed area, and both sides are
    at least ``min_size`` px.
    """
    full = B.area(transformed)
    vis = B.area(clipped)
    wh = B.widths_heights(clipped)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(full > 0, vis / full, 0.0)
    return (
        (vis >= min_area) & (frac >= min_visible) & (wh[:, 0] >= min_size) & (wh[:, 1] >= min_size)
    )


def letterbox(
    image: Image,
    boxes: ArrayLike,
    size: int | tuple[int, int],
    *,
    pad_value: int = PAD_VALUE,
    center: bool = False,
) -> tuple[Image, Boxes, LetterboxParams]:
    """Resize keeping the aspect ratio so the image fits ``size`` (``int`` or ``(h, w)``), then pad.

    The image is placed top-left (YOLOX's convention) or centred with ``center=True``.
    Returns the ``(h, w, 3)`` image, the mapped boxes and the :class:`LetterboxParams`
    that map predictions back (``params.unmap(boxes)``).
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    h, w = image.shape[:2]
    r = min(out_h / h, out_w / w)
    new_w, new_h = max(1, round(w * r)), max(1, round(h * r))
    interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp) if r != 1 else image
    pad_x = (out_w - new_w) // 2 if center else 0
    pad_y = (out_h - new_h) // 2 if center else 0
    out = np.full((out_h, out_w, 3), pad_value, dtype=np.uint8)
    out[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
    params = LetterboxParams(new_w / w, new_h / h, float(pad_x), float(pad_y))
    b = B.translate(B.scale(boxes, params.scale_x, params.scale_y), pad_x, pad_y)
    return out, b, params


def hflip(image: Image, boxes: ArrayLike) -> tuple[Image, Boxes]:
    """Mirror left-right; ``x1' = W - x2``, ``x2' = W - x1``."""
    w = image.shape[1]
    b = B.as_boxes(boxes)
    out = b.copy()
    out[:, 0] = w - b[:, 2]
    out[:, 2] = w - b[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), out


def hsv_jitter(
    image: Image,
    rng: np.random.Generator,
    *,
    hue: float = 0.015,
    saturation: float = 0.7,
    value: float = 0.4,
) -> Image:
    """Random colour change: hue shifted by up to ``±hue`` of a turn, S and V scaled by ``1 ± gain``."""
    gains = rng.uniform(-1.0, 1.0, 3) * np.array([hue, saturation, value]) + np.array([0, 1, 1])
    h, s, v = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float64)
    # OpenCV's 8-bit hue runs over 0..179.
    lut_h = ((x + gains[0] * 180) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def random_affine(
    image: Image,
    boxes: ArrayLike,
    labels: ArrayLike,
    rng: np.random.Generator,
    *,
    out_size: tuple[int, int] | None = None,
    scale: tuple[float, float] = (0.5, 1.5),
    translate: float = 0.1,
    pad_value: int = PAD_VALUE,
    min_area: float = 4.0,
    min_visible: float = 0.25,
) -> tuple[Image, Boxes, Labels]:
    """Random zoom about the centre plus a random shift, into an ``out_size`` ``(h, w)`` frame.

    The factor is drawn from ``scale`` (relative to fitting nothing: 1 keeps pixel size)
    and the shift from ``±translate`` of the output size. With no rotation or shear, boxes
    map exactly. ``out_size`` defaults to the input size; Mosaic's ``2s`` canvas uses
    ``(s, s)``. Clipped remnants are filtered with :func:`keep_visible`.
    """
    h, w = image.shape[:2]
    out_h, out_w = out_size if out_size is not None else (h, w)
    s = float(rng.uniform(*scale))
    dx, dy = rng.uniform(-translate, translate, 2) * np.array([out_w, out_h])
    tx = out_w / 2 - s * w / 2 + dx
    ty = out_h / 2 - s * h / 2 + dy
    out = _affine_image(image, s, s, tx, ty, out_w, out_h, pad_value)
    moved = B.translate(B.scale(boxes, s, s), tx, ty)
    clipped = B.clip(moved, out_w, out_h)
    keep = keep_visible(moved, clipped, min_area=min_area, min_visible=min_visible)
    return out, clipped[keep], _labels(labels, len(moved))[keep]


def mosaic(
    images: Sequence[Image],
    boxes: Sequence[ArrayLike],
    labels: Sequence[ArrayLike],
    size: int,
    rng: np.random.Generator,
    *,
    center_range: tuple[float, float] = (0.5, 1.5),
    pad_value: int = PAD_VALUE,
    min_area: float = 4.0,
    min_visible: float = 0.25,
) -> tuple[Image, Boxes, Labels]:
    """Four images tiled around a random centre of a ``2·size × 2·size`` canvas (YOLOX Mosaic).

    Each image is resized so its longer side is ``size``, then placed in its quadrant
    touching the centre ``(xc, yc)``, drawn from ``center_range · size``; parts beyond the
    canvas are cut off. Boxes are shifted, clipped and filtered with :func:`keep_visible`.

    The canvas is twice the training size, so the usual next step
    (:func:`random_affine` with ``out_size=(size, size)``) roughly halves every object.
    That shrinks already small objects below what the detector can see; run Mosaic with a
    probability (and not in the last epochs) on small-object data.
    """
    if not (len(images) == len(boxes) == len(labels) == 4):
        raise ValueError(
            f"mosaic needs 4 images, boxes and labels, got {len(images)}, {len(boxes)}, {len(labels)}"
        )
    canvas = np.full((2 * size, 2 * size, 3), pad_value, dtype=np.uint8)
    xc = int(rng.uniform(*center_range) * size)
    yc = int(rng.uniform(*center_range) * size)
    out_boxes: list[Boxes] = []
    out_labels: list[Labels] = []
    for k, (img, bx, lb) in enumerate(zip(images, boxes, labels, strict=True)):
        h0, w0 = img.shape[:2]
        r = size / max(h0, w0)
        w, h = max(1, round(w0 * r)), max(1, round(h0 * r))
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        img_r = cv2.resize(img, (w, h), interpolation=interp) if (w, h) != (w0, h0) else img
        # Quadrant k: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right of the centre.
        x0 = xc - w if k in (0, 2) else xc
        y0 = yc - h if k in (0, 1) else yc
        cx1, cy1 = max(x0, 0), max(y0, 0)
        cx2, cy2 = min(x0 + w, 2 * size), min(y0 + h, 2 * size)
        canvas[cy1:cy2, cx1:cx2] = img_r[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
        moved = B.translate(B.scale(bx, w / w0, h / h0), x0, y0)
        # Clip to the visible patch of this image, not just the canvas.
        clipped = moved.copy()
        clipped[:, [0, 2]] = np.clip(moved[:, [0, 2]], cx1, cx2)
        clipped[:, [1, 3]] = np.clip(moved[:, [1, 3]], cy1, cy2)
        keep = keep_visible(moved, clipped, min_area=min_area, min_visible=min_visible)
        out_boxes.append(clipped[keep])
        out_labels.append(_labels(lb, len(moved))[keep])
    return canvas, np.concatenate(out_boxes), np.concatenate(out_labels)


def mixup(
    image: Image,
    boxes: ArrayLike,
    labels: ArrayLike,
    other: Image,
    other_boxes: ArrayLike,
    other_labels: ArrayLike,
    rng: np.random.Generator,
    *,
    scale: tuple[float, float] = (0.5, 1.5),
    flip: float = 0.5,
    alpha: float = 0.5,
    pad_value: int = PAD_VALUE,
    min_area: float = 4.0,
    min_visible: float = 0.25,
) -> tuple[Image, Boxes, Labels]:
    """YOLOX MixUp: blend ``other`` (jittered, maybe flipped, cropped) into ``image``.

    ``other`` is letterboxed into ``image``'s size, zoomed by a factor from ``scale``,
    flipped with probability ``flip``, and a random ``image``-sized window of it is
    blended as ``(1 - alpha)·image + alpha·other``. The result keeps every box of
    ``image`` and the visible boxes of ``other`` (filtered with :func:`keep_visible`).
    """
    h, w = image.shape[:2]
    oh, ow = other.shape[:2]
    jitter = float(rng.uniform(*scale))
    r = min(h / oh, w / ow) * jitter
    nw, nh = max(1, round(ow * r)), max(1, round(oh * r))
    interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(other, (nw, nh), interpolation=interp)
    ob = B.scale(other_boxes, nw / ow, nh / oh)
    if rng.random() < flip:
        resized, ob = hflip(resized, ob)
    ph, pw = max(h, nh), max(w, nw)
    padded = np.full((ph, pw, 3), pad_value, dtype=np.uint8)
    padded[:nh, :nw] = resized
    ox = int(rng.integers(0, pw - w + 1))
    oy = int(rng.integers(0, ph - h + 1))
    window = padded[oy : oy + h, ox : ox + w]
    moved = B.translate(ob, -ox, -oy)
    clipped = B.clip(moved, w, h)
    keep = keep_visible(moved, clipped, min_area=min_area, min_visible=min_visible)
    blended = cv2.addWeighted(image, 1.0 - alpha, window, alpha, 0.0)
    out_boxes = np.concatenate([B.as_boxes(boxes), clipped[keep]])
    out_labels = np.concatenate(
        [_labels(labels, len(B.as_boxes(boxes))), _labels(other_labels, len(moved))[keep]]
    )
    return blended, out_boxes, out_labels
