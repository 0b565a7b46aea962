"""Frame checks, sRGB <-> CIELAB for uint8 frames, the grey baseline and colourfulness.

Frames are numpy ``uint8`` RGB ``[H, W, 3]``, sRGB-encoded, 0..255. CIELAB is D65, 2° observer, ``L`` in
[0, 100]. Colourfulness: D. Hasler, S. Süsstrunk, "Measuring colourfulness in natural images", Proc. SPIE
5007, 2003 (the ``M^(3)`` metric).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from ..model.lab import SRGB_TO_XYZ, srgb_decode, srgb_encode, to_grey

U8Frame = NDArray[np.uint8]
FloatArray = NDArray[np.floating]


def check_frame(frame: np.ndarray, name: str = "frame") -> U8Frame:
    if not isinstance(frame, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"{name} must be a uint8 RGB array [H, W, 3], got {frame.dtype} {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"{name} is empty: {frame.shape}")
    return frame


def check_pair(output: np.ndarray, truth: np.ndarray) -> tuple[U8Frame, U8Frame]:
    check_frame(output, "output")
    check_frame(truth, "truth")
    if output.shape != truth.shape:
        raise InputError(f"output {output.shape} and truth {truth.shape} frames differ in size; resize one first")
    return output, truth


# The sRGB curves and matrix are model/lab.py's (one implementation); the D65 white is the matrix's row sums,
# so that R = G = B maps exactly onto a = b = 0 (the same normalisation as OpenCV and kornia).
_RGB_TO_XYZ = SRGB_TO_XYZ
_WHITE = _RGB_TO_XYZ.sum(axis=1)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_DELTA = 6.0 / 29.0
_srgb_decode, _srgb_encode = srgb_decode, srgb_encode


# uint8 code value -> linear light (float32 is ample: Lab comes out within ~1e-4 of float64).
_LINEAR_LUT_F32 = _srgb_decode(np.arange(256) / 255.0).astype(np.float32)
_RGB_TO_XYZ_WHITE_F32 = (_RGB_TO_XYZ / _WHITE[:, None]).T.astype(np.float32)  # rows @ this = XYZ / white


def frame_to_lab(frame: U8Frame) -> NDArray[np.float32]:
    """sRGB frame -> CIELAB (D65, 2° observer).

    ``frame``: uint8 ``[H, W, 3]`` RGB, 0..255. Returns float32 ``[H, W, 3]`` with ``L`` in
    [0, 100] and true ``a``, ``b`` (about [-86, 98] and [-108, 94] for sRGB colours); grey
    pixels (R = G = B) get ``a = b = 0`` exactly. The sRGB transfer curve (IEC 61966-2-1) and the
    CIE 1976 L*a*b* formulas, through a 256-entry table and float32 arithmetic. (OpenCV's float ``COLOR_RGB2Lab`` computes
    the same thing but through interpolated lookup tables that are off by up to ~0.3 in a, b;
    this agrees with ``skimage.color.rgb2lab`` to ~0.005, the gap being its rounded D65 white.)
    """
    check_frame(frame)
    lin = _LINEAR_LUT_F32[frame.reshape(-1, 3)]
    t = lin @ _RGB_TO_XYZ_WHITE_F32
    small = t <= _DELTA ** 3
    f = np.cbrt(t)
    f[small] = t[small] / (3.0 * _DELTA ** 2) + 4.0 / 29.0
    lab = np.empty_like(f)
    np.multiply(f[:, 1], 116.0, out=lab[:, 0])
    lab[:, 0] -= 16.0
    np.subtract(f[:, 0], f[:, 1], out=lab[:, 1])
    lab[:, 1] *= 500.0
    np.subtract(f[:, 1], f[:, 2], out=lab[:, 2])
    lab[:, 2] *= 200.0
    return lab.reshape(frame.shape)


def lab_to_frame(lab: FloatArray) -> U8Frame:
    """CIELAB (D65) float ``[H, W, 3]`` (``L`` in [0, 100]) -> sRGB uint8 ``[H, W, 3]`` (0..255).

    The exact inverse of :func:`frame_to_lab`; out-of-gamut colours are clipped per channel and
    values rounded to the nearest level.
    """
    lab = np.asarray(lab, dtype=np.float64)
    if lab.ndim != 3 or lab.shape[2] != 3:
        raise InputError(f"lab must be [H, W, 3], got {lab.shape}")
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    t = np.where(f > _DELTA, f ** 3, 3.0 * _DELTA ** 2 * (f - 4.0 / 29.0))
    rgb = _srgb_encode((t * _WHITE) @ _XYZ_TO_RGB.T)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def grey_like(frame: U8Frame) -> U8Frame:
    """The "no colour" version of a frame: same CIELAB ``L``, ``a = b = 0``.

    ``frame``: uint8 ``[H, W, 3]`` sRGB. Returns uint8 ``[H, W, 3]`` with R = G = B (the neutral
    grey of the same lightness): what a colourizer that adds no colour would output. This is
    :func:`hueshift_core.model.lab.to_grey` (the one grey conversion) with the frame checks of this package.
    """
    return to_grey(check_frame(frame))


def colourfulness(frame: U8Frame) -> float:
    """Hasler & Süsstrunk (2003) colourfulness ``M`` of a uint8 RGB frame ``[H, W, 3]``.

    With ``rg = R - G`` and ``yb = (R + G) / 2 - B`` on 0..255 values,
    ``M = sqrt(σ_rg² + σ_yb²) + 0.3 sqrt(μ_rg² + μ_yb²)`` (population standard deviations over
    the pixels). 0 for a grey frame; about 15 "slightly", 33 "moderately", 59 "quite",
    82 "highly", 109+ "extremely colourful" on the authors' scale.
    """
    check_frame(frame)
    rgb = frame.reshape(-1, 3).astype(np.float64)
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    sigma = math.sqrt(float(np.var(rg)) + float(np.var(yb)))
    mu = math.sqrt(float(np.mean(rg)) ** 2 + float(np.mean(yb)) ** 2)
    return sigma + 0.3 * mu
