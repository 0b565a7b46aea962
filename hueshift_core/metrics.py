"""Video colourization metrics: a colourized video against its ground-truth colour video.

Everything here works on single frames or frame pairs, so a whole video never has to be held in
memory; :class:`VideoMetrics` is the streaming accumulator that is fed ``(output, truth)`` frame
pairs in display order and gives a :class:`VideoMetricsSummary` at the end.

Frame convention (every frame argument): numpy ``uint8`` RGB arrays ``[H, W, 3]``, sRGB-encoded, values
0..255, as decoded from video. An output and its truth frame must have the same shape.

Metrics and their sources:

* **PSNR** (dB): RGB, 8-bit, peak 255, over all pixels and channels. Identical frames give ``inf``.
* **CIEDE2000** (ΔE00): the CIE 2000 colour difference in CIELAB (D65), implemented after
  G. Sharma, W. Wu, E. N. Dalal, "The CIEDE2000 Color-Difference Formula: Implementation Notes,
  Supplementary Test Data, and Mathematical Observations", Color Res. Appl. 30(1):21-30, 2005.
  sRGB -> CIELAB: the sRGB transfer curve (IEC 61966-2-1), D65 white, CIE 1976 L*a*b*.
* **Colourfulness**: D. Hasler, S. Süsstrunk, "Measuring colourfulness in natural images",
  Proc. SPIE 5007, Human Vision and Electronic Imaging VIII, 2003 (the ``M^(3)`` metric).
* **CDC** (colour-distribution consistency): Jensen-Shannon divergence of per-channel RGB
  histograms between frames ``i`` and ``i + d``, ``d in (1, 2, 4)``, as in the evaluation code of
  Y. Liu et al., "Temporally Consistent Video Colorization with Deep Feature Propagation and
  Self-regularization Learning" (TCVC, 2021), reused by ColorMNet (Yang et al., ECCV 2024).
  Lower is more consistent.
* **Warp error**: W.-S. Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018
  (Eq. 7 and their evaluation code), with the occlusion / motion-boundary test of M. Ruder,
  A. Dosovitskiy, T. Brox, "Artistic style transfer for videos", GCPR 2016. Flow is OpenCV's
  DIS (T. Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016) computed
  on the ground truth. Lower is more temporally stable.

Reference floors: feed the truth as the output (:class:`VideoMetrics` does this for you with
``baselines=True``) to get the temporal floor of CDC and warp error of the real video, and feed
:func:`grey_like` frames (CIELAB ``a = b = 0``) to get the "no colour at all" baseline. Read the
temporal metrics (CDC, warp error) together with fidelity and the colourfulness ratio: a grey or
washed-out output is trivially stable and can score below the truth's own floor.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from .errors import InputError

__all__ = [
    "CDC_GAPS", "PSNR_CAP", "CDCAccumulator", "FrameMetrics", "VideoMetrics", "VideoMetricsSummary",
    "WarpErrorAccumulator", "cdc", "channel_histograms", "ciede2000", "colourfulness", "dis_flow",
    "evaluate_video", "frame_to_lab", "grey_like", "js_divergence", "lab_to_frame", "mean_ciede2000",
    "occlusion_mask", "psnr", "warp_error", "warp_error_pair", "warp_frame",
]

U8Frame = NDArray[np.uint8]
FloatArray = NDArray[np.floating]

#: PSNR (dB) that :class:`VideoMetrics` uses for an identical frame when averaging (its ``inf``
#: would swamp the mean); the count of such frames is reported separately.
PSNR_CAP = 100.0

#: Frame gaps of CDC and their weights, as in the TCVC / ColorMNet evaluation.
CDC_GAPS: tuple[int, ...] = (1, 2, 4)

_CHUNK = 1 << 18  # pixels per CIEDE2000 chunk: bounds the temporaries (~1 MB each)


# --------------------------------------------------------------------------------------------
# Input checks and colour conversion
# --------------------------------------------------------------------------------------------

def _check_frame(frame: np.ndarray, name: str = "frame") -> U8Frame:
    if not isinstance(frame, np.ndarray):
        raise InputError(f"{name} must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"{name} must be a uint8 RGB array [H, W, 3], got {frame.dtype} {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError(f"{name} is empty: {frame.shape}")
    return frame


def _check_pair(output: np.ndarray, truth: np.ndarray) -> tuple[U8Frame, U8Frame]:
    _check_frame(output, "output")
    _check_frame(truth, "truth")
    if output.shape != truth.shape:
        raise InputError(f"output {output.shape} and truth {truth.shape} frames differ in size; resize one first")
    return output, truth


# sRGB (IEC 61966-2-1) linear RGB -> XYZ, and the D65 white as its row sums, so that R = G = B
# maps exactly onto a = b = 0 (the same normalisation as OpenCV and kornia).
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_WHITE = _RGB_TO_XYZ.sum(axis=1)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_DELTA = 6.0 / 29.0


def _srgb_decode(v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb_encode(v: NDArray[np.float64]) -> NDArray[np.float64]:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1.0 / 2.4) - 0.055)


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
    _check_frame(frame)
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
    grey of the same lightness): what a colourizer that adds no colour would output.
    """
    lab = frame_to_lab(frame)
    lab[..., 1:] = 0.0
    return lab_to_frame(lab)


# --------------------------------------------------------------------------------------------
# Fidelity: PSNR and CIEDE2000
# --------------------------------------------------------------------------------------------

def psnr(output: U8Frame, truth: U8Frame) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 RGB frames ``[H, W, 3]`` (peak 255).

    ``10 log10(255^2 / MSE)`` with the MSE over all pixels and the three channels.
    Returns ``math.inf`` for identical frames (MSE = 0).
    """
    _check_pair(output, truth)
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
    _check_pair(output, truth)
    lab_o = frame_to_lab(output).reshape(-1, 3)
    lab_t = frame_to_lab(truth).reshape(-1, 3)
    total = 0.0
    for start in range(0, lab_o.shape[0], _CHUNK):
        de = ciede2000(lab_o[start:start + _CHUNK], lab_t[start:start + _CHUNK], dtype=np.float32)
        total += float(np.sum(de, dtype=np.float64))
    return total / lab_o.shape[0]


# --------------------------------------------------------------------------------------------
# Colourfulness
# --------------------------------------------------------------------------------------------

def colourfulness(frame: U8Frame) -> float:
    """Hasler & Süsstrunk (2003) colourfulness ``M`` of a uint8 RGB frame ``[H, W, 3]``.

    With ``rg = R - G`` and ``yb = (R + G) / 2 - B`` on 0..255 values,
    ``M = sqrt(σ_rg² + σ_yb²) + 0.3 sqrt(μ_rg² + μ_yb²)`` (population standard deviations over
    the pixels). 0 for a grey frame; about 15 "slightly", 33 "moderately", 59 "quite",
    82 "highly", 109+ "extremely colourful" on the authors' scale.
    """
    _check_frame(frame)
    rgb = frame.reshape(-1, 3).astype(np.float64)
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    sigma = math.sqrt(float(np.var(rg)) + float(np.var(yb)))
    mu = math.sqrt(float(np.mean(rg)) ** 2 + float(np.mean(yb)) ** 2)
    return sigma + 0.3 * mu


# --------------------------------------------------------------------------------------------
# CDC: colour-distribution consistency
# --------------------------------------------------------------------------------------------

def channel_histograms(frame: U8Frame) -> NDArray[np.float64]:
    """Per-channel 256-bin histograms of a uint8 RGB frame ``[H, W, 3]``, divided by ``H * W``.

    Returns float64 ``[3, 256]`` (rows R, G, B), each row summing to 1.
    """
    _check_frame(frame)
    n = frame.shape[0] * frame.shape[1]
    flat = frame.reshape(-1, 3)
    return np.stack([np.bincount(flat[:, c], minlength=256) for c in range(3)]).astype(np.float64) / n


def js_divergence(p: FloatArray, q: FloatArray) -> NDArray[np.float64] | float:
    """Jensen-Shannon divergence (natural log) along the last axis.

    ``p``, ``q``: non-negative arrays ``[..., K]`` (histograms; each is normalised to sum 1 along
    the last axis, as ``scipy.stats.entropy`` does). Returns ``[...]`` (a float for 1-D inputs) in
    [0, ln 2]: ``JS = KL(p || m) / 2 + KL(q || m) / 2`` with ``m = (p + q) / 2`` and
    ``0 log 0 = 0``. It is the square of ``scipy.spatial.distance.jensenshannon``.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / np.sum(p, axis=-1, keepdims=True)
    q = q / np.sum(q, axis=-1, keepdims=True)
    m = 0.5 * (p + q)

    def kl_to_m(x: NDArray[np.float64]) -> NDArray[np.float64]:
        pos = x > 0  # m > 0 wherever x > 0
        ratio = np.divide(x, m, out=np.ones_like(x), where=pos)
        return np.sum(np.where(pos, x * np.log(ratio), 0.0), axis=-1)

    js = 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)
    js = np.maximum(js, 0.0)
    return float(js) if js.ndim == 0 else js


def _combine_cdc(sums: dict[int, NDArray[np.float64]], counts: dict[int, int], gaps: Sequence[int],
                 weights: Sequence[float]) -> float:
    """Weighted mean over gaps of the per-channel mean JS, then the mean over channels."""
    used = [(g, w) for g, w in zip(gaps, weights) if counts[g] > 0]
    if not used:
        return math.nan
    wsum = sum(w for _, w in used)
    per_channel = sum(w * sums[g] / counts[g] for g, w in used) / wsum
    return float(np.mean(per_channel))


def _check_gaps(gaps: Sequence[int], weights: Sequence[float] | None) -> tuple[tuple[int, ...], tuple[float, ...]]:
    gaps = tuple(int(g) for g in gaps)
    if not gaps or min(gaps) < 1:
        raise InputError(f"CDC gaps must be positive frame distances, got {gaps}")
    weights = tuple(float(w) for w in (weights if weights is not None else [1.0 / len(gaps)] * len(gaps)))
    if len(weights) != len(gaps) or min(weights) < 0 or sum(weights) <= 0:
        raise InputError(f"CDC needs one non-negative weight per gap, got gaps {gaps} and weights {weights}")
    return gaps, weights


def cdc(frames: Sequence[U8Frame], gaps: Sequence[int] = CDC_GAPS, weights: Sequence[float] | None = None) -> float:
    """Colour-distribution consistency of a whole (short) video, batch form.

    ``frames``: a sequence of uint8 RGB frames ``[H, W, 3]`` in display order (all held; use
    :class:`CDCAccumulator` for streaming). For each gap ``d`` the JS divergence
    (:func:`js_divergence`) of each channel's histogram between frames ``i`` and ``i + d`` is
    averaged over ``i``; the gaps are combined with ``weights`` (default equal, i.e. 1/3 each for
    ``(1, 2, 4)``) and the result is the mean over R, G, B. Returns a float in [0, ln 2]; 0 for a
    video whose colour histograms never change.

    Gaps longer than the video have no pairs: they are left out and the remaining weights
    renormalised (the reference code would return NaN for such short clips). Fewer than two
    frames -> NaN.
    """
    gaps, weights = _check_gaps(gaps, weights)
    hists = [channel_histograms(f) for f in frames]
    sums: dict[int, NDArray[np.float64]] = {}
    counts: dict[int, int] = {}
    for g in gaps:
        pairs = [js_divergence(hists[i], hists[i + g]) for i in range(len(hists) - g)]
        sums[g] = np.sum(pairs, axis=0) if pairs else np.zeros(3)
        counts[g] = len(pairs)
    return _combine_cdc(sums, counts, gaps, weights)


class CDCAccumulator:
    """Streaming CDC: ``update(frame)`` per frame in display order, ``value()`` at any time.

    Keeps only the histograms (float64 ``[3, 256]``) of the last ``max(gaps)`` frames in a ring
    buffer, plus per-gap running sums; gives exactly :func:`cdc` of the frames seen so far.
    """

    def __init__(self, gaps: Sequence[int] = CDC_GAPS, weights: Sequence[float] | None = None) -> None:
        self.gaps, self.weights = _check_gaps(gaps, weights)
        self._history: deque[NDArray[np.float64]] = deque(maxlen=max(self.gaps))
        self._sums = {g: np.zeros(3) for g in self.gaps}
        self._counts = {g: 0 for g in self.gaps}

    def update(self, frame: U8Frame) -> None:
        """Add the next uint8 RGB frame ``[H, W, 3]``."""
        hist = channel_histograms(frame)
        for g in self.gaps:
            if len(self._history) >= g:
                self._sums[g] = self._sums[g] + js_divergence(self._history[-g], hist)
                self._counts[g] += 1
        self._history.append(hist)

    def value(self) -> float:
        """CDC of the frames so far, in [0, ln 2]; NaN before the second frame."""
        return _combine_cdc(self._sums, self._counts, self.gaps, self.weights)


# --------------------------------------------------------------------------------------------
# Warp error
# --------------------------------------------------------------------------------------------

def _grey(frame: U8Frame) -> U8Frame:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _dis() -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def dis_flow(src: NDArray[np.uint8], dst: NDArray[np.uint8], dis: cv2.DISOpticalFlow | None = None
             ) -> NDArray[np.float32]:
    """Dense optical flow from ``src`` to ``dst`` with OpenCV DIS (``PRESET_MEDIUM``).

    ``src``, ``dst``: uint8 grey ``[H, W]`` or RGB ``[H, W, 3]`` frames (RGB is converted to
    grey). Returns float32 ``[H, W, 2]`` ``(dx, dy)`` in pixels such that
    ``src(p) ≈ dst(p + flow(p))``. ``dis``: a reusable ``cv2.DISOpticalFlow`` (one per thread).
    """
    if src.ndim == 3:
        src = _grey(_check_frame(src, "src"))
    if dst.ndim == 3:
        dst = _grey(_check_frame(dst, "dst"))
    if src.shape != dst.shape or src.ndim != 2 or src.dtype != np.uint8 or dst.dtype != np.uint8:
        raise InputError(f"flow needs two uint8 frames of one size, got {src.dtype} {src.shape} and "
                         f"{dst.dtype} {dst.shape}")
    return (dis or _dis()).calc(np.ascontiguousarray(src), np.ascontiguousarray(dst), None)


def _sample_grid(flow: NDArray[np.float32]) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx + flow[..., 0], gy + flow[..., 1]


def warp_frame(image: np.ndarray, flow: NDArray[np.float32]) -> np.ndarray:
    """Backward-warp: sample ``image`` at ``p + flow(p)`` (bilinear, borders replicated).

    ``image``: ``[H, W]`` or ``[H, W, C]`` (float32 or uint8); ``flow``: float32 ``[H, W, 2]``.
    With ``flow`` the flow from frame t to frame t+1 and ``image`` frame t+1, the result is
    frame t+1 pulled back onto frame t's pixel grid. Returns ``image``'s shape and dtype.
    """
    if image.shape[:2] != flow.shape[:2]:
        raise InputError(f"image {image.shape} and flow {flow.shape} differ in size")
    map_x, map_y = _sample_grid(flow)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def occlusion_mask(flow_fw: NDArray[np.float32], flow_bw: NDArray[np.float32],
                   exclude_outside: bool = True) -> NDArray[np.bool_]:
    """Pixels of frame t whose flow to frame t+1 cannot be trusted (True = excluded).

    ``flow_fw``: float32 ``[H, W, 2]`` flow t -> t+1 (on frame t's grid; the flow used to warp
    t+1 back to t). ``flow_bw``: float32 ``[H, W, 2]`` flow t+1 -> t. With ``f = flow_fw`` and
    ``b_w = flow_bw`` sampled at ``p + f(p)``, a pixel is excluded when (Ruder et al. 2016, as in
    Lai et al. 2018's ``detect_occlusion``):

    * forward-backward check fails: ``|f + b_w|² > 0.01 (|f|² + |b_w|²) + 0.5``, or
    * it is on a motion boundary: ``|∇f_x|² + |∇f_y|² > 0.01 |f|² + 0.002`` (forward
      differences; Ruder et al. write this on the flow that does the warping, their ``ŵ``), or
    * ``exclude_outside`` and ``p + f(p)`` falls outside frame t+1 (no correspondence there; an
      addition to Lai et al., whose warping would replicate the border instead).

    Returns bool ``[H, W]``.
    """
    if flow_fw.shape != flow_bw.shape or flow_fw.ndim != 3 or flow_fw.shape[2] != 2:
        raise InputError(f"flows must both be [H, W, 2], got {flow_fw.shape} and {flow_bw.shape}")
    f = flow_fw.astype(np.float32, copy=False)
    map_x, map_y = _sample_grid(f)
    b_w = cv2.remap(flow_bw.astype(np.float32, copy=False), map_x, map_y, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    f_mag = np.sum(f * f, axis=-1)
    fb = f + b_w
    occluded = np.sum(fb * fb, axis=-1) > 0.01 * (f_mag + np.sum(b_w * b_w, axis=-1)) + 0.5

    du = np.zeros_like(f)
    dv = np.zeros_like(f)
    du[:, :-1] = f[:, 1:] - f[:, :-1]
    dv[:-1, :] = f[1:, :] - f[:-1, :]
    grad_mag = np.sum(du * du + dv * dv, axis=-1)
    occluded |= grad_mag > 0.01 * f_mag + 0.002

    if exclude_outside:
        h, w = f.shape[:2]
        occluded |= (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
    return occluded


def _masked_warp_mse(out_t: U8Frame, out_t1: U8Frame, flow_fw: NDArray[np.float32],
                     occluded: NDArray[np.bool_]) -> float:
    valid = ~occluded
    n = int(np.count_nonzero(valid))
    if n == 0:
        return math.nan
    scale = np.float32(1.0 / 255.0)
    warped = warp_frame(out_t1.astype(np.float32) * scale, flow_fw)
    diff = (out_t.astype(np.float32) * scale - warped)[valid].astype(np.float64)
    return float(np.sum(diff * diff)) / (3 * n)


def warp_error_pair(out_t: U8Frame, out_t1: U8Frame, truth_t: U8Frame, truth_t1: U8Frame,
                    dis: cv2.DISOpticalFlow | None = None, exclude_outside: bool = True) -> float:
    """Warp error of one consecutive pair of output frames (Lai et al. 2018, Eq. 7).

    All four frames: uint8 RGB ``[H, W, 3]`` of one size. The flow t -> t+1 and t+1 -> t is DIS
    (:func:`dis_flow`) on the ground truth ``truth_t``, ``truth_t1``; output frame t+1 is warped
    back onto frame t (:func:`warp_frame`) and the squared difference with output frame t is
    averaged over the pixels not excluded by :func:`occlusion_mask` and over the three channels,
    on values in [0, 1] (RGB / 255). Returns a float in [0, 1]; NaN if every pixel is excluded.
    """
    _check_pair(out_t, truth_t)
    _check_pair(out_t1, truth_t1)
    _check_pair(out_t, out_t1)
    dis = dis or _dis()
    g_t, g_t1 = _grey(truth_t), _grey(truth_t1)
    flow_fw = dis_flow(g_t, g_t1, dis)
    flow_bw = dis_flow(g_t1, g_t, dis)
    return _masked_warp_mse(out_t, out_t1, flow_fw, occlusion_mask(flow_fw, flow_bw, exclude_outside))


def warp_error(outputs: Sequence[U8Frame], truths: Sequence[U8Frame], exclude_outside: bool = True) -> float:
    """Warp error of a whole (short) output video, batch form: the mean of
    :func:`warp_error_pair` over consecutive pairs (pairs with no valid pixel are skipped).

    ``outputs``, ``truths``: equal-length sequences of uint8 RGB frames ``[H, W, 3]``. Returns a
    float in [0, 1] (lower is more stable); NaN for fewer than two frames.
    Streaming form: :class:`WarpErrorAccumulator`.
    """
    if len(outputs) != len(truths):
        raise InputError(f"{len(outputs)} output frames but {len(truths)} truth frames")
    dis = _dis()
    errs = [warp_error_pair(outputs[i], outputs[i + 1], truths[i], truths[i + 1], dis, exclude_outside)
            for i in range(len(outputs) - 1)]
    errs = [e for e in errs if not math.isnan(e)]
    return float(np.mean(errs)) if errs else math.nan


class _TruthMotion:
    """Flow between consecutive truth frames and its occlusion mask, one pair at a time.

    Shared by every output stream of a :class:`VideoMetrics`, so the flow is computed once.
    """

    def __init__(self, exclude_outside: bool = True) -> None:
        self._dis = _dis()
        self._prev: U8Frame | None = None
        self.exclude_outside = exclude_outside

    def update(self, truth: U8Frame) -> tuple[NDArray[np.float32], NDArray[np.bool_]] | None:
        """Next truth frame -> ``(flow t-1 -> t, occluded mask on t-1)``, or None for the first."""
        grey = _grey(truth)
        prev, self._prev = self._prev, grey
        if prev is None:
            return None
        if prev.shape != grey.shape:
            raise InputError(f"frame size changed from {prev.shape} to {grey.shape} mid-video")
        flow_fw = dis_flow(prev, grey, self._dis)
        flow_bw = dis_flow(grey, prev, self._dis)
        return flow_fw, occlusion_mask(flow_fw, flow_bw, self.exclude_outside)


class _WarpStream:
    """Running warp error of one output stream, given the truth motion of each step."""

    def __init__(self) -> None:
        self._prev: U8Frame | None = None
        self._sum = 0.0
        self._pairs = 0

    def update(self, output: U8Frame, motion: tuple[NDArray[np.float32], NDArray[np.bool_]] | None) -> None:
        if self._prev is not None and motion is not None:
            err = _masked_warp_mse(self._prev, output, *motion)
            if not math.isnan(err):
                self._sum += err
                self._pairs += 1
        self._prev = output.copy()  # the caller may reuse its decode buffer

    def value(self) -> float:
        return self._sum / self._pairs if self._pairs else math.nan


class WarpErrorAccumulator:
    """Streaming warp error: ``update(output, truth)`` per frame in display order, ``value()``.

    Keeps one previous output frame and one previous grey truth frame; equals :func:`warp_error`
    of the frames seen so far.
    """

    def __init__(self, exclude_outside: bool = True) -> None:
        self._motion = _TruthMotion(exclude_outside)
        self._stream = _WarpStream()

    def update(self, output: U8Frame, truth: U8Frame) -> None:
        """Add the next pair of uint8 RGB frames ``[H, W, 3]`` (the flow is taken from ``truth``)."""
        _check_pair(output, truth)
        self._stream.update(output, self._motion.update(truth))

    def value(self) -> float:
        """Mean warp error so far, in [0, 1]; NaN before the second frame."""
        return self._stream.value()


# --------------------------------------------------------------------------------------------
# The accumulator
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameMetrics:
    """Per-frame numbers for one ``(output, truth)`` pair.

    ``psnr``: dB (``inf`` when identical); ``ciede2000``: mean ΔE00 (>= 0);
    ``colourfulness_output`` / ``colourfulness_truth``: Hasler & Süsstrunk ``M`` (>= 0).
    """

    psnr: float
    ciede2000: float
    colourfulness_output: float
    colourfulness_truth: float


@dataclass(frozen=True)
class VideoMetricsSummary:
    """Summary of one output video against the truth.

    * ``frames``: number of frame pairs seen.
    * ``psnr``: mean per-frame PSNR in dB, identical frames counted as :data:`PSNR_CAP`
      (``psnr_identical_frames`` of them); NaN with no frames.
    * ``ciede2000``: mean per-frame mean ΔE00 (0 = identical colours).
    * ``colourfulness_output``, ``colourfulness_truth``: mean per-frame Hasler & Süsstrunk ``M``;
      ``colourfulness_ratio`` = output / truth (1 = as colourful as the truth, < 1 washed out;
      ``inf`` or NaN if the truth is grey).
    * ``cdc``: colour-distribution consistency of the output in [0, ln 2] (lower = steadier).
    * ``warp_error``: Lai et al. warp error of the output in [0, 1] (lower = steadier).
    """

    frames: int
    psnr: float
    psnr_identical_frames: int
    ciede2000: float
    colourfulness_output: float
    colourfulness_truth: float
    colourfulness_ratio: float
    cdc: float
    warp_error: float

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (for JSON / tables)."""
        return asdict(self)


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.nan if num == 0 or math.isnan(num) else math.inf


class _OutputStream:
    """Running sums for one output stream against the shared truth."""

    def __init__(self, psnr_cap: float, gaps: Sequence[int], weights: Sequence[float] | None) -> None:
        self.psnr_cap = psnr_cap
        self.frames = 0
        self.identical = 0
        self.psnr_sum = 0.0
        self.de_sum = 0.0
        self.colour_out_sum = 0.0
        self.colour_truth_sum = 0.0
        self.cdc = CDCAccumulator(gaps, weights)
        self.warp = _WarpStream()

    def update(self, output: U8Frame, truth: U8Frame, truth_colour: float,
               motion: tuple[NDArray[np.float32], NDArray[np.bool_]] | None) -> FrameMetrics:
        if output is truth:  # the temporal-floor stream: fidelity is known
            p, de, colour_out = math.inf, 0.0, truth_colour
        else:
            p, de, colour_out = psnr(output, truth), mean_ciede2000(output, truth), colourfulness(output)
        self.frames += 1
        if math.isinf(p):
            self.identical += 1
        self.psnr_sum += min(p, self.psnr_cap)
        self.de_sum += de
        self.colour_out_sum += colour_out
        self.colour_truth_sum += truth_colour
        self.cdc.update(output)
        self.warp.update(output, motion)
        return FrameMetrics(p, de, colour_out, truth_colour)

    def summary(self) -> VideoMetricsSummary:
        n = self.frames
        mean = (lambda s: s / n) if n else (lambda s: math.nan)
        c_out, c_truth = mean(self.colour_out_sum), mean(self.colour_truth_sum)
        return VideoMetricsSummary(
            frames=n, psnr=mean(self.psnr_sum), psnr_identical_frames=self.identical,
            ciede2000=mean(self.de_sum), colourfulness_output=c_out, colourfulness_truth=c_truth,
            colourfulness_ratio=_ratio(c_out, c_truth) if n else math.nan,
            cdc=self.cdc.value(), warp_error=self.warp.value())


class VideoMetrics:
    """Streaming evaluation of a colourized video against its ground truth.

    Feed ``update(output, truth)`` once per frame in display order (uint8 RGB ``[H, W, 3]``,
    same size throughout); ``summary()`` gives the output's :class:`VideoMetricsSummary` at any
    point. Memory: a few frames (the previous output and grey truth, the last four histograms).

    With ``baselines=True`` two reference streams run alongside, sharing the truth's flow:
    ``"truth"`` (the truth scored as the output: the temporal floor of CDC and warp error, PSNR
    capped, ΔE00 0, ratio 1) and ``"grey"`` (:func:`grey_like` of the truth: what no colour
    scores). ``summaries()`` returns them all by name.

    ``psnr_cap``: dB that identical frames count as in the mean PSNR. ``cdc_gaps`` /
    ``cdc_weights``: see :func:`cdc`. ``exclude_outside``: see :func:`occlusion_mask`.
    """

    def __init__(self, baselines: bool = False, psnr_cap: float = PSNR_CAP,
                 cdc_gaps: Sequence[int] = CDC_GAPS, cdc_weights: Sequence[float] | None = None,
                 exclude_outside: bool = True) -> None:
        self._motion = _TruthMotion(exclude_outside)
        names = ("output", "truth", "grey") if baselines else ("output",)
        self._streams = {name: _OutputStream(psnr_cap, cdc_gaps, cdc_weights) for name in names}
        self._shape: tuple[int, ...] | None = None

    @property
    def frames(self) -> int:
        """Number of frame pairs seen so far."""
        return self._streams["output"].frames

    def update(self, output: U8Frame, truth: U8Frame) -> FrameMetrics:
        """Add the next frame pair (uint8 RGB ``[H, W, 3]`` each); returns the output's
        per-frame :class:`FrameMetrics`."""
        _check_pair(output, truth)
        if self._shape is not None and output.shape != self._shape:
            raise InputError(f"frame size changed from {self._shape} to {output.shape} mid-video")
        self._shape = output.shape
        motion = self._motion.update(truth)
        truth_colour = colourfulness(truth)
        result = self._streams["output"].update(output, truth, truth_colour, motion)
        if "truth" in self._streams:
            self._streams["truth"].update(truth, truth, truth_colour, motion)
            self._streams["grey"].update(grey_like(truth), truth, truth_colour, motion)
        return result

    def summary(self) -> VideoMetricsSummary:
        """The output's summary over the frames seen so far."""
        return self._streams["output"].summary()

    def summaries(self) -> dict[str, VideoMetricsSummary]:
        """``{"output": ...}``, plus ``"truth"`` and ``"grey"`` when built with ``baselines=True``."""
        return {name: stream.summary() for name, stream in self._streams.items()}


def evaluate_video(outputs: Iterable[U8Frame], truths: Iterable[U8Frame], baselines: bool = False,
                   **options: Any) -> dict[str, VideoMetricsSummary]:
    """Run :class:`VideoMetrics` over two frame iterables (e.g. two decoders), streaming.

    ``outputs``, ``truths``: iterables of uint8 RGB frames ``[H, W, 3]`` of equal length;
    ``options`` go to :class:`VideoMetrics`. Returns :meth:`VideoMetrics.summaries`.
    """
    vm = VideoMetrics(baselines=baselines, **options)
    sentinel = object()
    out_it, truth_it = iter(outputs), iter(truths)
    while True:
        o, t = next(out_it, sentinel), next(truth_it, sentinel)
        if o is sentinel and t is sentinel:
            break
        if o is sentinel or t is sentinel:
            raise InputError(f"the videos differ in length: one ended after {vm.frames} frames")
        vm.update(o, t)
    return vm.summaries()
