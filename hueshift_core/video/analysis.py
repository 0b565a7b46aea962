"""Frame analysis: the first stage of the video path, what every later stage reads.

For each frame in display order (uint8 RGB ``[H, W, 3]``, grey or colour; only lightness is used):

* L of the full frame, CIELAB L in [0, 100] (OpenCV's float conversion: fast, within 0.5 units of
  kornia's), kept as float16 for the final merge;
* the *propagation-resolution* copy of L, uint8 ``[h, w]`` (L * 2.55, area filter): what cuts,
  flow, propagation and deflicker run on (:class:`Sizes`: twice the working resolution by default);
* whether it starts a shot (:class:`~hueshift_core.video.keyframes.CutDetector`, or a given plan's cuts);
* inside a shot, DIS flow to and from the previous frame and the confidence of each
  (:mod:`~hueshift_core.video.propagate`).

:class:`FrameAnalyser` is used by the streaming :class:`~hueshift_core.video.pipeline.VideoPipeline` and by
the batch functions of :mod:`~hueshift_core.video.staged` that the ComfyUI nodes call, so both see the
same L, the same cuts and the same flow.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..errors import InputError, VideoError
from ..model.lab import GREY_THRESHOLD
from ..model.sampling import SampleOptions, working_size
from .propagate import compute_flow, flow_confidence

# L of the grey sRGB value v (R = G = B = v), by OpenCV's float conversion of v / 255: frame_l's table
_GREY_L = np.ascontiguousarray(cv2.cvtColor((np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)).repeat(3)
                                            .reshape(1, 256, 3), cv2.COLOR_RGB2Lab)[0, :, 0])


# sRGB code value -> linear light, and the Y row of sRGB's (D65) RGB -> XYZ matrix: L of a colour frame
_LINEAR = np.where(np.arange(256) <= 10, np.arange(256) / 255.0 / 12.92,
                   ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(np.float32)
_Y_ROW = np.array([[0.212671, 0.715160, 0.072169]], np.float32)
_L_EPS = 216.0 / 24389.0  # CIELAB: below this Y, L is linear in Y


def frame_l(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 RGB ``[H, W, 3]`` -> (L float32 ``[H, W]`` in [0, 100], mean |a|,|b| on a sparse grid).

    A grey frame (R = G = B, what a grey video decodes to) takes its L from a 256-entry table made by
    OpenCV's float conversion: the same values, for a seventh of the CPU of converting the frame (the grey
    test compares contiguous planes: strided comparisons cost more than the conversion saves). A colour
    frame's L is CIELAB's formula on Y (linear light by table, one weighted sum, a cube root): within
    0.2 of OpenCV's float conversion (which approximates the curves) for about two thirds of its CPU; its
    a, b are only needed on the sparse grid that measures how much colour it has (``benchmarks/bench_stages.py``)."""
    r, g, b = cv2.split(rgb)
    if np.array_equal(r, g) and np.array_equal(r, b):
        return cv2.LUT(r, _GREY_L), 0.0
    y = cv2.transform(cv2.LUT(rgb, _LINEAR), _Y_ROW)
    l = cv2.pow(y, 1.0 / 3.0)
    l *= 116.0
    l -= 16.0
    if cv2.minMaxLoc(y)[0] <= _L_EPS:
        low = y <= _L_EPS
        l[low] = y[low] * (24389.0 / 27.0)
    grid = cv2.cvtColor(np.ascontiguousarray(rgb[::8, ::8]).astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)
    return l, float(np.abs(grid[..., 1:]).mean())


def half(x: np.ndarray) -> np.ndarray:
    """float32 -> float16 with torch's vectorised conversion (much cheaper than NumPy's; the same values)."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).half().numpy()


def to_prop(l_full: np.ndarray, prop: tuple[int, int]) -> np.ndarray:
    """L float ``[H, W]`` in [0, 100] -> uint8 ``[h, w]`` (L * 2.55, area filter) at ``prop = (h, w)``."""
    l_prop = cv2.resize(l_full * 2.55, prop[::-1], interpolation=cv2.INTER_AREA)
    return (l_prop + 0.5).clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Sizes:
    """The three resolutions of the video path, each (height, width): ``full`` the frames', ``work``
    the model's (short side ``SampleOptions.short_side``, a multiple of the network's ``multiple``),
    ``prop`` where cuts, flow, propagation and deflicker run (``work`` x ``scale``, capped at ``full``)."""

    full: tuple[int, int]
    work: tuple[int, int]
    prop: tuple[int, int]

    @classmethod
    def of(cls, height: int, width: int, sample: SampleOptions = SampleOptions(), multiple: int = 8,
           scale: int = 2) -> Sizes:
        work = working_size(height, width, sample.short_side, multiple, sample.max_long_side)
        return cls((height, width), work, (min(height, work[0] * scale), min(width, work[1] * scale)))


class StageTimer:
    """Wall seconds per stage name: ``with timer("flow"): ...``; ``timer.seconds`` maps name -> seconds."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t


@dataclass
class AnalysedFrame:
    """One frame after analysis. Arrays are numpy at the propagation resolution ``(h, w)`` unless said."""

    index: int  # in the stream (0-based)
    l_full: np.ndarray  # float16 [H, W], L in [0, 100]
    l_prop: np.ndarray  # uint8 [h, w], L * 2.55
    cut: bool  # starts a shot
    flows: tuple[np.ndarray, np.ndarray] | None = None  # (t -> t-1, t-1 -> t) float32 [h, w, 2]; None at a shot start
    conf_back: np.ndarray | None = None  # confidence [h, w] in [0, 1] of flow t -> t-1
    conf_fwd: np.ndarray | None = None  # confidence of flow t-1 -> t
    ab_fw: np.ndarray | None = None  # colour carried forward from the segment's keyframe (set by segments.walk)
    conf_fw: np.ndarray | None = None  # its chained confidence


class PlanCuts:
    """Cuts from a given list of shot starts instead of detected ones (the staged ComfyUI graph, where
    Keyframe Select found them): ``push(l) -> True`` on the frames (counted from 0) that start a shot."""

    def __init__(self, shot_starts) -> None:
        self.starts = frozenset(int(s) for s in shot_starts) | {0}
        self._i = 0

    def push(self, l: np.ndarray) -> bool:
        self._i += 1
        return self._i - 1 in self.starts


class FrameAnalyser:
    """Streaming analysis: ``push(rgb) -> AnalysedFrame`` per uint8 RGB frame ``[H, W, 3]`` in display order.

    ``cuts``: a :class:`~hueshift_core.video.keyframes.CutDetector` (``push(l_prop)``) or a :class:`PlanCuts`;
    ``flow=False`` skips flow and confidence (the cheap first pass that only needs cuts).
    ``colour_input`` turns True when one of the first 8 frames has colour."""

    def __init__(self, sizes: Sizes, cuts, *, timer: StageTimer | None = None, flow: bool = True) -> None:
        self.sizes, self.cuts, self.flow = sizes, cuts, flow
        self.timer = timer if timer is not None else StageTimer()
        self.colour_input = False
        self._prev: AnalysedFrame | None = None
        self._i = 0

    def push(self, rgb: np.ndarray) -> AnalysedFrame:
        i, timer = self._i, self.timer
        if rgb.shape[:2] != self.sizes.full:
            h, w = self.sizes.full
            raise VideoError(f"frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, the video started at {w}x{h}: "
                             "frame size must not change")
        with timer("lab"):
            l_full, chroma = frame_l(rgb)
            if i < 8 and chroma >= GREY_THRESHOLD:
                self.colour_input = True
            l_prop = to_prop(l_full, self.sizes.prop)
        with timer("keyframes"):
            cut = self.cuts.push(l_prop)
        f = AnalysedFrame(i, half(l_full), l_prop, cut)
        prev = self._prev
        if self.flow and prev is not None and not cut:
            with timer("flow"):
                f_back = compute_flow(l_prop, prev.l_prop)
                f_fwd = compute_flow(prev.l_prop, l_prop)
                f.flows = (f_back, f_fwd)
                f.conf_back = flow_confidence(l_prop, prev.l_prop, f_back, f_fwd)
                f.conf_fwd = flow_confidence(prev.l_prop, l_prop, f_fwd, f_back)
        self._prev = f
        self._i += 1
        return f

    def frames(self, batches) -> Iterator[AnalysedFrame]:
        """Analyse every frame of a stream of uint8 RGB batches ``[B, H, W, 3]`` (time spent waiting for
        the next batch counts as ``decode``)."""
        it = iter(batches)
        while True:
            with self.timer("decode"):
                batch = next(it, None)
            if batch is None:
                return
            check_batch(batch)
            for rgb in batch:
                yield self.push(rgb)


def check_batch(batch) -> None:
    """Refuse anything but a uint8 RGB batch ``[B, H, W, 3]``."""
    if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        got = f"{batch.dtype} {batch.shape}" if isinstance(batch, np.ndarray) else type(batch).__name__
        raise InputError(f"frames must be uint8 RGB batches [B, H, W, 3], got {got}")
