"""SSIM (Wang et al. 2004) on small grayscale images, with per-image terms reusable across pairs.

Definition: 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma as ``scipy.ndimage``),
K1 = 0.01, K2 = 0.03, data range 255, population (not sample) covariances, the mean of the
SSIM map after cropping the 5-pixel border where the window leaves the image. This is what
``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`` computes; the tests check agreement.

Images of different shapes are compared at a common size: both are resized (area
interpolation when shrinking, linear when growing) to the smaller height and the smaller
width, so an aspect-ratio difference is stretched, not cropped. When that common size has
a side below :data:`MIN_SIDE`, both are enlarged until it reaches it (SSIM needs at least an
11x11 window).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

SIGMA = 1.5
WIN = 11
PAD = (WIN - 1) // 2
C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2
MIN_SIDE = 16
#: Values are centred before filtering so float32 keeps the variances exact enough.
_OFFSET = 128.0


def to_gray(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B) of ``(H, W, 3)`` uint8 RGB, as OpenCV rounds it."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _blur(a: NDArray[np.float32]) -> NDArray[np.float32]:
    return cv2.GaussianBlur(a, (WIN, WIN), SIGMA, borderType=cv2.BORDER_REFLECT)


_SQRT2 = np.float32(np.sqrt(2.0))


@dataclass(frozen=True, slots=True)
class SsimTerms:
    """Per-image terms of SSIM, so a pair costs one joint filter and a few array operations.

    ``xc``: the whole ``(H, W)`` image as float32 minus the centring offset (each pair's
    joint filter multiplies two of them: made once per image, not once per pair). The rest
    cover the interior
    where the SSIM map is averaged (``PAD`` pixels in from each border), float32, scaled
    so that a pair needs as few operations as possible: ``mc`` local means minus the
    centring offset, ``m2 = sqrt(2) * mean``, ``mu2c = mean**2 + C1/2``,
    ``var_c = local variance + C2/2``, ``s2 = sqrt(2) * local standard deviation``.
    """

    xc: NDArray[np.float32]
    mc: NDArray[np.float32]
    m2: NDArray[np.float32]
    mu2c: NDArray[np.float32]
    var_c: NDArray[np.float32]
    s2: NDArray[np.float32]

    @property
    def shape(self) -> tuple[int, int]:
        return self.xc.shape  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.xc, self.mc, self.m2, self.mu2c, self.var_c, self.s2))


def _interior(a: NDArray[np.float32]) -> NDArray[np.float32]:
    h, w = a.shape
    return np.ascontiguousarray(a[PAD : h - PAD, PAD : w - PAD])


def _centred(gray: NDArray[np.uint8]) -> NDArray[np.float32]:
    return gray.astype(np.float32) - np.float32(_OFFSET)


def _mean(a: NDArray[np.float32]) -> float:
    """Mean of a float32 map, accumulated in double precision (OpenCV: no float64 copy)."""
    return float(cv2.mean(a)[0])


def local_stats(gray: NDArray[np.uint8]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Local means minus the centring offset and local variances of the SSIM windows of a
    ``(H, W)`` uint8 image (both sides > 10), over the interior SSIM averages."""
    return _local_stats(_centred(gray))


def _local_stats(x: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """:func:`local_stats` of an image already centred by :func:`_centred`."""
    if min(x.shape) <= 2 * PAD:
        raise ValueError(f"SSIM needs images larger than {WIN - 1} px, got {x.shape}")
    mu_full = _blur(x)
    return _interior(mu_full), _interior(_blur(x * x) - mu_full * mu_full)


def terms(gray: NDArray[np.uint8]) -> SsimTerms:
    """Precompute the per-image SSIM terms of a ``(H, W)`` uint8 image (both sides > 10)."""
    x = _centred(gray)
    mc, var = _local_stats(x)
    mu = mc + np.float32(_OFFSET)
    # Flush tiny variances (flat regions) to 0: products of float32 denormals are very slow.
    var = cv2.threshold(var, 1e-6, 0, cv2.THRESH_TOZERO)[1]
    return SsimTerms(
        x,
        mc,
        mu * _SQRT2,
        mu * mu + np.float32(C1 / 2),
        var + np.float32(C2 / 2),
        np.sqrt(var) * _SQRT2,
    )


def _luminance_den(a: SsimTerms, b: SsimTerms) -> NDArray[np.float32]:
    """``(mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2)`` per window."""
    den = np.add(a.mu2c, b.mu2c)
    den *= np.add(a.var_c, b.var_c)
    return den


def _luminance_num(a: SsimTerms, b: SsimTerms) -> NDArray[np.float32]:
    """``2 mu_a mu_b + C1`` per window."""
    num = np.multiply(a.m2, b.m2)
    num += np.float32(C1)
    return num


def _check_shapes(a: SsimTerms, b: SsimTerms) -> None:
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal shapes, got {a.shape} and {b.shape}")


def _exact(a: SsimTerms, b: SsimTerms, num: NDArray[np.float32], den: NDArray[np.float32]) -> float:
    """SSIM from the luminance factors ``num`` (overwritten) and ``den`` of the pair."""
    # Centred products keep float32 exact enough for the covariance.
    cov2 = _interior(_blur(a.xc * b.xc))
    cov2 -= a.mc * b.mc
    cov2 *= 2
    cov2 += np.float32(C2)
    num *= cov2
    num /= den
    return _mean(num)


def _bound(a: SsimTerms, b: SsimTerms, num: NDArray[np.float32], den: NDArray[np.float32]) -> float:
    """The Cauchy-Schwarz bound of :func:`ssim_upper_bound` from the luminance factors."""
    cs = np.multiply(a.s2, b.s2)
    cs += np.float32(C2)
    cs *= num
    cs /= den
    # Float32 rounding can put the bound a hair under the exact value; keep it an upper bound.
    return _mean(cs) + 1e-4


def ssim_terms(a: SsimTerms, b: SsimTerms) -> float:
    """SSIM of two images of the same shape from their precomputed terms."""
    _check_shapes(a, b)
    return _exact(a, b, _luminance_num(a, b), _luminance_den(a, b))


def ssim_upper_bound(a: SsimTerms, b: SsimTerms) -> float:
    """An upper bound of :func:`ssim_terms` from per-image terms only (no joint filtering).

    Cauchy-Schwarz bounds each window's covariance by ``sd_a * sd_b``, so its SSIM is at
    most ``l * (2 sd_a sd_b + C2) / (var_a + var_b + C2)``; a pair whose bound is below a
    threshold needs no exact SSIM.
    """
    _check_shapes(a, b)
    return _bound(a, b, _luminance_num(a, b), _luminance_den(a, b))


def ssim_above(a: SsimTerms, b: SsimTerms, floor: float) -> tuple[float | None, float]:
    """``(SSIM, bound)`` of a pair, the SSIM None when :func:`ssim_upper_bound` is at or
    below ``floor`` (no exact SSIM needed). The luminance factors the two share are computed
    once; each value equals what :func:`ssim_terms` and :func:`ssim_upper_bound` return."""
    _check_shapes(a, b)
    num, den = _luminance_num(a, b), _luminance_den(a, b)
    bound = _bound(a, b, num, den)
    return (None if bound <= floor else _exact(a, b, num, den)), bound


def common_shape(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """The ``(H, W)`` at which two images of shapes ``a`` and ``b`` are compared."""
    h, w = min(a[0], b[0]), min(a[1], b[1])
    short = min(h, w)
    if short < MIN_SIDE:
        f = MIN_SIDE / short
        h, w = max(MIN_SIDE, round(h * f)), max(MIN_SIDE, round(w * f))
    return h, w


def resize_gray(gray: NDArray[np.uint8], shape: tuple[int, int]) -> NDArray[np.uint8]:
    """Resize ``(H, W)`` uint8 to ``shape``: area when shrinking, linear when growing."""
    if gray.shape == shape:
        return gray
    h, w = shape
    grow = h > gray.shape[0] or w > gray.shape[1]
    interp = cv2.INTER_LINEAR if grow else cv2.INTER_AREA
    return cv2.resize(gray, (w, h), interpolation=interp)


def ssim(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """SSIM of two ``(H, W)`` uint8 grayscale images (resized to a common shape if they differ)."""
    shape = common_shape(a.shape, b.shape)  # type: ignore[arg-type]
    return ssim_terms(terms(resize_gray(a, shape)), terms(resize_gray(b, shape)))
