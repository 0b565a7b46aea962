"""Optical flow on L and colour carried along it, with forward-backward confidence.

Arrays are numpy at the propagation resolution ``(h, w)``:

* L: uint8 ``[h, w]`` (CIELAB L scaled to 0..255) — what DIS flow is computed on;
* flow: float32 ``[h, w, 2]`` (dx, dy) in pixels; ``flow_ab`` maps a pixel of frame a to
  its position in frame b;
* ab: float32 ``[h, w, 2]`` in CIELAB units; confidence: float32 ``[h, w]`` in [0, 1].

Flow is DIS (Kroeger et al. 2016, OpenCV's ``DISOpticalFlow``), fast on a CPU. Confidence is
the forward-backward consistency check of Sundaram et al. 2010 / Ruder et al. 2016, softened.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ..errors import InputError


def _dis(preset: int) -> cv2.DISOpticalFlow:
    """A new DIS object for every flow: a reused one keeps buffers from its earlier calls that change its
    results slightly (seen at 48x80), so the same frames would get a flow that depends on what ran before
    in the process (and a split video would not equal its single-process run). Costs ~1 ms per flow."""
    return cv2.DISOpticalFlow_create(preset)


def compute_flow(l_a: np.ndarray, l_b: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST) -> np.ndarray:
    """Flow from ``l_a`` to ``l_b`` (uint8 ``[h, w]``) -> float32 ``[h, w, 2]``."""
    if l_a.shape != l_b.shape or l_a.ndim != 2:
        raise InputError(f"flow needs two grey frames of one size, got {l_a.shape} and {l_b.shape}")
    if min(l_a.shape) < 8:  # DIS needs a few pixels per patch; tiny frames do not move
        return np.zeros((*l_a.shape, 2), np.float32)
    return _dis(preset).calc(np.ascontiguousarray(l_a), np.ascontiguousarray(l_b), None)


@functools.lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y), float32 ``[h, w]`` each; cached per size (read only)."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def _targets(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel lands, ``p + flow(p)``, as float32 (x, y) maps ``[h, w]``."""
    gx, gy = _pixel_grid(*flow.shape[:2])
    return gx + flow[..., 0], gy + flow[..., 1]


def warp(x: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``x`` (``[h, w]`` or ``[h, w, C]``) at ``p + flow(p)``: pulls frame b's values into frame a
    when ``flow`` is the flow from a to b. Borders replicate."""
    tx, ty = _targets(flow)
    return cv2.remap(x, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def fb_confidence(flow_ab: np.ndarray, flow_ba: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Confidence in [0, 1] that ``flow_ab`` is right at each pixel of frame a.

    A pixel is consistent when going a -> b -> a lands where it started:
    ``|f + b(p + f)|^2 <= alpha (|f|^2 + |b(p + f)|^2) + beta``; the score decays smoothly
    past that bound (1 inside it, 0 at 4x the bound). Occluded pixels fail the check.
    """
    tx, ty = _targets(flow_ab)
    return _fb_confidence(flow_ab, flow_ba, tx, ty, alpha, beta)


def _fb_confidence(flow_ab: np.ndarray, flow_ba: np.ndarray, tx: np.ndarray, ty: np.ndarray, alpha: float,
                   beta: float) -> np.ndarray:
    """:func:`fb_confidence` given the targets ``(tx, ty)`` of ``flow_ab``; plane by plane (contiguous ``[h, w]``
    arrays: NumPy's sums over a last axis of 2 are slow at these sizes), the same values."""
    fx, fy = cv2.split(flow_ab)
    bx, by = cv2.split(cv2.remap(flow_ba, tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    ex, ey = fx + bx, fy + by
    err = ex * ex + ey * ey
    bound = fx * fx + fy * fy
    bound += bx * bx + by * by
    bound *= alpha
    bound += beta
    err -= bound
    err /= 3.0 * bound
    return np.clip(1.0 - err, 0.0, 1.0, out=err)


def flow_confidence(l_a: np.ndarray, l_b: np.ndarray, flow_ab: np.ndarray, flow_ba: np.ndarray,
                    photo_tol: float = 10.0) -> np.ndarray:
    """Confidence in [0, 1] that ``flow_ab`` tracks each pixel of frame a into frame b.

    The product of three checks: forward-backward consistency (:func:`fb_confidence`), brightness
    constancy (``|L_a - L_b(p + f)|`` within ``photo_tol`` levels, falling to 0 at 3x that: catches new content
    that a smooth flow field cannot reveal), and the target staying inside frame b (content that
    left the view cannot be tracked).
    """
    tx, ty = _targets(flow_ab)
    conf = _fb_confidence(flow_ab, flow_ba, tx, ty, 0.01, 0.5)
    l_b_at = cv2.remap(l_b.astype(np.float32), tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = np.abs(l_a.astype(np.float32) - l_b_at)
    conf *= np.clip(1.0 - (diff - photo_tol) / (2.0 * photo_tol), 0.0, 1.0)
    h, w = flow_ab.shape[:2]
    inside = (tx >= -0.5) & (tx <= w - 0.5) & (ty >= -0.5) & (ty <= h - 0.5)
    conf *= inside
    return conf


def carry(ab: np.ndarray, conf: np.ndarray, flow_to_src: np.ndarray, step_conf: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """One link of a propagation chain: colour and confidence of a source frame pulled into the
    next frame along ``flow_to_src`` (flow from the new frame to the source); confidence
    multiplies by the link's own ``step_conf``."""
    return warp(ab, flow_to_src), warp(conf, flow_to_src) * step_conf


def blend(ab_fw: np.ndarray, conf_fw: np.ndarray, ab_bw: np.ndarray, conf_bw: np.ndarray, t: float,
          floor: float = 0.05) -> np.ndarray:
    """Blend colour carried forward from the keyframe before (at fraction ``t`` in [0, 1] of the way
    to the next one) with colour carried backward from the keyframe after.

    Weights are temporal closeness times confidence; ``floor`` keeps a temporal-only blend where
    both chains lost track (occlusions, fast motion), so the result falls back to the nearer
    keyframe's colour rather than to grey.
    """
    w_fw = (1.0 - t) * (conf_fw + floor)
    w_bw = t * (conf_bw + floor)
    s = w_fw + w_bw
    return ((w_fw[..., None] * ab_fw + w_bw[..., None] * ab_bw) / s[..., None]).astype(np.float32)
