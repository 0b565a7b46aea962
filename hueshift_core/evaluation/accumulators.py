"""The streaming accumulator: :class:`VideoMetrics` is fed ``(output, truth)`` frame pairs in display
order and gives a :class:`VideoMetricsSummary` (fidelity, colourfulness, CDC, warp error) at the end, so a
whole video never has to be held in memory."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from .frames import U8Frame, check_pair, colourfulness, grey_like
from .fidelity import mean_ciede2000, psnr
from .temporal import CDC_GAPS, CDCAccumulator, _TruthMotion, _WarpStream

#: PSNR (dB) that :class:`VideoMetrics` uses for an identical frame when averaging (its ``inf``
#: would swamp the mean); the count of such frames is reported separately.
PSNR_CAP = 100.0


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
        check_pair(output, truth)
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
