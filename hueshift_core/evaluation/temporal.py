"""Temporal steadiness: CDC (colour-distribution consistency) and warp error, as functions and as
streaming accumulators.

* **CDC**: Jensen-Shannon divergence of per-channel RGB histograms between frames ``i`` and ``i + d``,
  ``d in (1, 2, 4)``, as in the evaluation code of TCVC (Liu et al., 2021), reused by ColorMNet. Lower is
  more consistent.
* **Warp error**: Lai et al., ECCV 2018 (Eq. 7), with the occlusion / motion-boundary test of Ruder et al.,
  GCPR 2016; flow is OpenCV's DIS computed on the ground truth. Lower is more stable.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from .frames import FloatArray, U8Frame, check_frame, check_pair

#: Frame gaps of CDC and their weights, as in the TCVC / ColorMNet evaluation.
CDC_GAPS: tuple[int, ...] = (1, 2, 4)


def channel_histograms(frame: U8Frame) -> NDArray[np.float64]:
    """Per-channel 256-bin histograms of a uint8 RGB frame ``[H, W, 3]``, divided by ``H * W``.

    Returns float64 ``[3, 256]`` (rows R, G, B), each row summing to 1.
    """
    check_frame(frame)
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


def _luma(frame: U8Frame) -> U8Frame:
    """OpenCV luma (Y' of BT.601 weights on the encoded values): what DIS flow is computed on, not a colour baseline."""
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
        src = _luma(check_frame(src, "src"))
    if dst.ndim == 3:
        dst = _luma(check_frame(dst, "dst"))
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
    check_pair(out_t, truth_t)
    check_pair(out_t1, truth_t1)
    check_pair(out_t, out_t1)
    dis = dis or _dis()
    g_t, g_t1 = _luma(truth_t), _luma(truth_t1)
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
        grey = _luma(truth)
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
        check_pair(output, truth)
        self._stream.update(output, self._motion.update(truth))

    def value(self) -> float:
        """Mean warp error so far, in [0, 1]; NaN before the second frame."""
        return self._stream.value()
