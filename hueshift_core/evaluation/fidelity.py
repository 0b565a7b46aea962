"""Fidelity of an output frame to its truth: PSNR (dB) and CIEDE2000 (ΔE00).

CIEDE2000 after G. Sharma, W. Wu, E. N. Dalal, "The CIEDE2000 Color-Difference Formula: Implementation
Notes, Supplementary Test Data, and Mathematical Observations", Color Res. Appl. 30(1):21-30, 2005.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from .frames import FloatArray, U8Frame, check_pair, frame_to_lab

_CHUNK = 1 << 18  # pixels per CIEDE2000 chunk: bounds the temporaries (~1 MB each)


def psnr(output: U8Frame, truth: U8Frame) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 RGB frames ``[H, W, 3]`` (peak 255).

    ``10 log10(255^2 / MSE)`` with the MSE over all pixels and the three channels.
    Returns ``math.inf`` for identical frames (MSE = 0).
    """
    check_pair(output, truth)
    diff = output.astype(np.float64) - truth.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0 ** 2 / mse)


def ciede2000(lab1: FloatArray, lab2: FloatArray, k_l: float = 1.0, k_c: float = 1.0,
              k_h: float = 1.0, dtype: type[np.floating] = np.float64) -> NDArray[np.floating]:
    """CIEDE2000 colour difference ΔE00, element-wise (Sharma, Wu & Dalal 2005, Eqs. 1-22).

    ``lab1``, ``lab2``: float arrays ``[..., 3]`` of CIELAB ``(L, a, b)`` (``L`` in [0, 100]),
    broadcastable against each other. ``k_l``, ``k_c``, ``k_h``: parametric weights (1 for the
    reference conditions). ``dtype``: the arithmetic precision (float64 by default; float32 is
    3-4x faster and good to ~1e-4). Returns ``[...]`` of ``dtype``, >= 0, symmetric in its
    arguments; in float64 it agrees with the paper's 34 test pairs to 1e-4.
    """
    lab1 = np.asarray(lab1, dtype=dtype)
    lab2 = np.asarray(lab2, dtype=dtype)
    if lab1.shape[-1] != 3 or lab2.shape[-1] != 3:
        raise InputError(f"CIELAB arrays must end in 3 channels, got {lab1.shape} and {lab2.shape}")
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    pow25_7 = 25.0 ** 7

    # Eqs. 2-7: a' (chroma-dependent a stretch), C', h' in degrees [0, 360).
    c_bar = 0.5 * (np.hypot(a1, b1) + np.hypot(a2, b2))
    c_bar7 = c_bar ** 7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + pow25_7)))
    a1p = (1.0 + g) * a1
    a2p = (1.0 + g) * a2
    c1p = np.hypot(a1p, b1)
    c2p = np.hypot(a2p, b2)
    # atan2(0, 0) = 0, which is the paper's convention h' = 0 for a' = b = 0.
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0

    # Eqs. 8-12: differences.
    c_prod = c1p * c2p
    zero_chroma = c_prod == 0.0
    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(zero_chroma, 0.0, dh)
    dhh = 2.0 * np.sqrt(c_prod) * np.sin(np.radians(0.5 * dh))

    # Eqs. 13-22: means, weighting functions and the rotation term.
    l_bar = 0.5 * (l1 + l2)
    cp_bar = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    h_bar = np.where(
        zero_chroma, h_sum,
        np.where(np.abs(h1p - h2p) <= 180.0, 0.5 * h_sum,
                 np.where(h_sum < 360.0, 0.5 * (h_sum + 360.0), 0.5 * (h_sum - 360.0))))
    t = (1.0 - 0.17 * np.cos(np.radians(h_bar - 30.0)) + 0.24 * np.cos(np.radians(2.0 * h_bar))
         + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0)) - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0)))
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    cp_bar7 = cp_bar ** 7
    r_c = 2.0 * np.sqrt(cp_bar7 / (cp_bar7 + pow25_7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c

    tl = dl / (k_l * s_l)
    tc = dc / (k_c * s_c)
    th = dhh / (k_h * s_h)
    # The sum is >= 0 in exact arithmetic; clamp rounding noise before the root.
    return np.sqrt(np.maximum(tl * tl + tc * tc + th * th + r_t * tc * th, 0.0))


def mean_ciede2000(output: U8Frame, truth: U8Frame) -> float:
    """Mean CIEDE2000 ΔE00 over the pixels of two uint8 RGB frames ``[H, W, 3]``.

    Both frames go sRGB -> CIELAB (D65) with :func:`frame_to_lab`; :func:`ciede2000` runs in
    float32 (3-4x faster than float64; per-pixel error < 1e-4, the mean's ~1e-7) over chunks of
    pixels to bound memory, and the mean is accumulated in float64. 0 for identical frames;
    typically 0..~50.
    """
    check_pair(output, truth)
    lab_o = frame_to_lab(output).reshape(-1, 3)
    lab_t = frame_to_lab(truth).reshape(-1, 3)
    total = 0.0
    for start in range(0, lab_o.shape[0], _CHUNK):
        de = ciede2000(lab_o[start:start + _CHUNK], lab_t[start:start + _CHUNK], dtype=np.float32)
        total += float(np.sum(de, dtype=np.float64))
    return total / lab_o.shape[0]


def hue_errors(output: U8Frame, truth: U8Frame) -> tuple[float, float]:
    """The two colour mistakes, as shares of all pixels of two uint8 RGB frames ``[H, W, 3]`` (CIELAB,
    ``C = sqrt(a² + b²)``):

    * *wrong hue*: truth C > 10, output C > 10 and hue angles more than 60° apart;
    * *lost colour*: truth C > 15 and output C < 5.
    """
    check_pair(output, truth)
    lo = frame_to_lab(output).reshape(-1, 3)[:, 1:].astype(np.float64)
    lt = frame_to_lab(truth).reshape(-1, 3)[:, 1:].astype(np.float64)
    co, ct = np.hypot(lo[:, 0], lo[:, 1]), np.hypot(lt[:, 0], lt[:, 1])
    cos = (lo * lt).sum(1) / np.maximum(co * ct, 1e-9)
    wrong = (ct > 10) & (co > 10) & (cos < 0.5)  # cos 60° = 0.5
    lost = (ct > 15) & (co < 5)
    return float(wrong.mean()), float(lost.mean())
