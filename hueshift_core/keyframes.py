"""Shot cuts and keyframes, decided on luminance only.

* A **cut** starts a new shot when the L histogram of a frame differs from the previous
  frame's by more than ``cut_threshold`` (L1 distance of 32-bin histograms, in [0, 2]) *and*
  by ``cut_ratio`` times the typical recent difference (so fast motion or a pan is not a cut).
* Inside a shot a new **keyframe** is taken when the content has moved on: the share of pixels
  that still track back to the last keyframe along the optical flow (forward-backward
  consistent, see :mod:`hueshift_core.propagate`) falls under ``track_threshold``, or after
  ``max_gap`` frames.

Frames are uint8 L ``[h, w]`` (CIELAB L scaled to 0..255) at the analysis resolution.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .propagate import compute_flow, flow_confidence, warp


@dataclass(frozen=True)
class KeyframeOptions:
    cut_threshold: float = 0.35
    cut_ratio: float = 4.0
    min_shot: int = 4
    max_gap: int = 48
    track_threshold: float = 0.3

    def __post_init__(self) -> None:
        if self.max_gap < 1 or self.min_shot < 1:
            raise InputError("max_gap and min_shot must be >= 1")
        if not 0.0 <= self.track_threshold <= 1.0:
            raise InputError(f"track_threshold must be in [0, 1], got {self.track_threshold}")


@dataclass(frozen=True)
class Decision:
    cut: bool
    keyframe: bool


@dataclass
class KeyframePlan:
    """Frame indices of keyframes and of shot starts (every shot start is a keyframe)."""

    keyframes: list[int] = field(default_factory=list)
    shot_starts: list[int] = field(default_factory=list)


def l_histogram(l: np.ndarray, bins: int = 32) -> np.ndarray:
    """Normalised histogram of a uint8 ``[h, w]`` frame -> float ``[bins]`` summing to 1."""
    hist = np.bincount((l.reshape(-1).astype(np.int32) * bins) >> 8, minlength=bins).astype(np.float64)
    return hist / max(1.0, hist.sum())


class CutDetector:
    """Streaming cut detection: ``push(l) -> True`` when ``l`` starts a new shot."""

    def __init__(self, options: KeyframeOptions = KeyframeOptions()) -> None:
        self.options = options
        self._prev: np.ndarray | None = None
        self._recent: deque[float] = deque(maxlen=12)
        self._since_cut = 0

    def push(self, l: np.ndarray) -> bool:
        hist = l_histogram(l)
        if self._prev is None:
            self._prev, self._since_cut = hist, 1
            return True
        d = float(np.abs(hist - self._prev).sum())
        typical = float(np.median(self._recent)) if self._recent else 0.0
        o = self.options
        cut = d > o.cut_threshold and d > o.cut_ratio * typical and self._since_cut >= o.min_shot
        self._prev = hist
        if cut:
            self._recent.clear()
            self._since_cut = 1
        else:
            self._recent.append(d)
            self._since_cut += 1
        return cut


class KeyframeSelector:
    """Streaming keyframe decisions: ``push(l, tracked) -> Decision``.

    ``tracked`` is the share of pixels of ``l`` still tracking back to the last keyframe
    (``None`` if unknown). Shot starts are always keyframes.
    """

    def __init__(self, options: KeyframeOptions = KeyframeOptions()) -> None:
        self.options = options
        self.cuts = CutDetector(options)
        self._since_key = 0

    def push(self, l: np.ndarray, tracked: float | None = None) -> Decision:
        cut = self.cuts.push(l)
        if cut:
            self._since_key = 0
            return Decision(cut=True, keyframe=True)
        self._since_key += 1
        moved_on = tracked is not None and tracked < self.options.track_threshold
        key = moved_on or self._since_key >= self.options.max_gap
        if key:
            self._since_key = 0
        return Decision(cut=False, keyframe=key)


def tracked_share(conf: np.ndarray, level: float = 0.5) -> float:
    """Share of pixels whose chained confidence is above ``level``."""
    return float((conf > level).mean())


def detect_cuts(l_frames: np.ndarray, options: KeyframeOptions = KeyframeOptions()) -> list[int]:
    """Shot starts of uint8 L frames ``[N, h, w]`` (always includes 0)."""
    det = CutDetector(options)
    return [i for i, l in enumerate(l_frames) if det.push(l)]


def select_keyframes(l_frames: np.ndarray, options: KeyframeOptions = KeyframeOptions()) -> KeyframePlan:
    """Batch keyframe selection over uint8 L frames ``[N, h, w]`` (what the streaming pipeline decides)."""
    if l_frames.ndim != 3 or len(l_frames) == 0:
        raise InputError(f"keyframe selection needs uint8 L frames [N, h, w], got {l_frames.shape}")
    sel = KeyframeSelector(options)
    plan = KeyframePlan()
    conf = None
    for i, l in enumerate(l_frames):
        if conf is not None:
            f_back = compute_flow(l, l_frames[i - 1])
            f_fwd = compute_flow(l_frames[i - 1], l)
            conf = warp(conf, f_back) * flow_confidence(l, l_frames[i - 1], f_back, f_fwd)
        d = sel.push(l, tracked_share(conf) if conf is not None else None)
        if d.cut:
            plan.shot_starts.append(i)
        if d.keyframe:
            plan.keyframes.append(i)
            conf = np.ones(l.shape, np.float32)
    return plan
