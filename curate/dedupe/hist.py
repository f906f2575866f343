"""Colour-histogram similarity, the second dedupe method.

Colour space and bins: HSV as OpenCV computes it from 8-bit RGB (H in 0..179, S and V in
0..255), 16 hue x 4 saturation x 4 value bins = 256 bins, normalised to sum 1. Similarity:
histogram intersection, ``sum(min(a, b))``, in [0, 1] (1 = same colour distribution).

Because ``intersection = 1 - L1(a, b) / 2``, a threshold ``T`` on the intersection is the
exact L1 radius ``2 (1 - T)``. The candidate index searches in Euclidean space, so it holds
the square roots of the histograms (the Hellinger embedding): ``sum((sqrt a - sqrt b)**2)
<= sum(|sqrt a - sqrt b| (sqrt a + sqrt b)) = L1(a, b)``, so every pair with intersection
above ``T`` lies within ``sqrt(2 (1 - T))`` there. That bound is safe and far tighter than
the plain Euclidean distance of the histograms (also at most L1): 256 bins spread the mass so
thin that almost every pair of images is within ``2 (1 - T)`` of each other.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

BINS = (16, 4, 4)
NUM_BINS = BINS[0] * BINS[1] * BINS[2]


def hsv_histogram(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    """``(256,)`` float32 HSV histogram of an ``(H, W, 3)`` uint8 RGB image, summing to 1."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256])
    flat = hist.reshape(-1).astype(np.float32)
    total = float(flat.sum())
    return flat / total if total > 0 else flat


#: An image counts as colour when at least this share of its pixels have HSV saturation and
#: value both 64 or more (bright saturated pixels), else as gray. A gray copy has none; a
#: colour photo, even of smoke, usually far more (Roboflow fire export: 92 % of its photos).
#: Near-gray photos sit on both sides of any small share, as JPEG chroma noise saturates a
#: few pixels: with 1e-4, copies of a gray COCO photo at quality 50 or a quarter size (0.01 %)
#: counted as colour and outranked their original. At 0.5 % near-gray copies count alike and
#: the next keys decide (compression, nearness to the others).
GRAY_COLOUR_SHARE = 0.005
#: ... or when most of its pixels are saturated whatever their value: a night photo has its
#: colour in dark pixels, where saturation is otherwise chroma noise over a small value (a
#: gray photo saved 36 levels darker: 12 % of its pixels saturated, all below value 64; a
#: colour photo at 22 % brightness: 88 %).
DARK_COLOUR_SHARE = 0.5


def is_gray(hist: NDArray[np.float32]) -> bool:
    """Whether a :func:`hsv_histogram` is that of a gray or near-gray image (see
    :data:`GRAY_COLOUR_SHARE` and :data:`DARK_COLOUR_SHARE`)."""
    h = hist.reshape(BINS)
    bright = float(h[:, 1:, 1:].sum(dtype=np.float64))
    anywhere = float(h[:, 1:, :].sum(dtype=np.float64))
    return bright < GRAY_COLOUR_SHARE and anywhere < DARK_COLOUR_SHARE


def intersection(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """Histogram intersection of two normalised histograms, in [0, 1]."""
    return float(np.minimum(a, b).sum(dtype=np.float64))


def l1_radius(threshold: float) -> float:
    """The L1 distance below which two histograms can have intersection >= ``threshold``."""
    return 2.0 * (1.0 - threshold)


def index_features(hists: NDArray[np.float32]) -> NDArray[np.float32]:
    """``(N, NUM_BINS)`` rows for the candidate index: square roots of the histograms."""
    return np.sqrt(np.maximum(hists, 0, dtype=np.float32))


#: Float32 distances in the index are off by about 1e-6; the radius leaves room for that.
_RADIUS_SLACK = 1e-4


def index_radius(threshold: float) -> float:
    """Distance in :func:`index_features` space within which every pair with intersection
    above ``threshold`` lies."""
    return float(np.sqrt(max(0.0, l1_radius(threshold)))) + _RADIUS_SLACK
