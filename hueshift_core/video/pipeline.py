"""The video pipeline: one streaming pass from grey frames to colour frames.

Stages, per frame in display order (all but diffusion and the final upscale at the *propagation
resolution*, by default twice the model's working resolution, e.g. 128x224 for 854x480):

1. L of the full frame (CIELAB, OpenCV's float conversion: fast, within 0.5 units of kornia's);
2. shot cuts on L (:mod:`~hueshift_core.video.keyframes`), then flow to and from the previous frame
   of the shot (DIS) and its confidence (:mod:`~hueshift_core.video.propagate`);
3. keyframes: every shot start, and when under ``track_threshold`` of the pixels still track
   back to the last keyframe, or after ``max_gap`` frames;
4. keyframe colour from the diffusion model at the working resolution. Later keyframes of a
   shot start from the colour carried into them, re-noised to ``warm_start`` (SDEdit, Meng et
   al. 2022), with the shot's one noise tensor (``share_noise``), so they agree with the earlier
   keyframes instead of choosing new colours (with a colour prior: where the colour tracks, the shot's colour
   is the mean of the prior's views of its keyframes so far, ``consensus``);
5. colour carried from the keyframe before and the keyframe after along the flow, blended by
   temporal distance and confidence (:func:`~hueshift_core.video.propagate.blend`);
6. deflicker along the flow (:mod:`~hueshift_core.video.deflicker`), restarted at cuts;
7. chroma upscaled to full resolution guided by the full-resolution L
   (:mod:`~hueshift_core.model.upscale`), merged with that L, to RGB.

Memory: a segment (a keyframe and the frames up to the next one, <= ``max_gap`` + 1 frames) is
held at the propagation resolution plus its full-resolution L as float16; ``max_segment_mb``
shortens segments of very large frames. Nothing else grows with the video's length
(``stats.max_buffered`` counts the frames held).

Keyframes are sampled one at a time: the first keyframe of a shot is needed before its frames
can be finished, and a later one starts from the colour carried into it, which needs the one
before. ``mode="per-frame"`` runs every frame through the model instead (the original's method,
the baseline), in batches of ``sample.batch_size``, with no propagation.

Random draws are per shot: each shot samples from its own generator, seeded from (seed, the shot's
first frame in the whole video; :func:`shot_generator`), and nothing else carries over a cut (cut
detection, keyframe choice and deflicker all restart there). So a run over a piece of a video that
starts at a cut (``VideoPipeline(..., first_frame=k)``) gives exactly the frames a run over the whole
video gives for that piece: what :mod:`hueshift_core.cluster` relies on to split long videos.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputError
from ..hints import FrameColour
from ..model.checkpoint import ColorModel
from ..model.sampling import SampleOptions
from ..model.upscale import Upscale, upscale_merge_u8
from .analysis import AnalysedFrame, FrameAnalyser, Sizes, StageTimer, check_batch
from .deflicker import Deflicker
from .keyframe_colour import KeyframeColorizer, KeyframeStats, shot_generator
from .keyframes import KeyframeOptions, KeyframeSelector
from .overlap import Prefetch, map_ahead
from .segments import SegmentWalker, fill_segment

__all__ = ["CHUNK_PIXELS", "MODES", "PipelineOptions", "PipelineStats", "VideoPipeline", "shot_generator"]

MODES = ("keyframes", "per-frame")
CHUNK_PIXELS = 2_000_000  # full-resolution pixels upscaled, converted and yielded at once (~5 frames of 854x480)
AHEAD_MB = 128  # what each overlap queue may hold: frames analysed ahead, finishing jobs behind
ENCODE_MB = 64  # finished frames waiting for the encoder (colorize_video)


def overlap_depths(height: int, width: int, max_gap: int = KeyframeOptions.max_gap) -> tuple[int, int, int]:
    """(frames analysed ahead, finishing jobs pending, finished batches waiting to be encoded) when stages overlap,
    for frames of ``height`` x ``width``: up to one segment each (``max_gap`` + 1 frames, so the next segment is
    analysed and the last one finished while a keyframe is sampled), within ``AHEAD_MB`` (``ENCODE_MB`` for the
    encoder) each, at least 2. At 854x480: 49 frames, 13 jobs of 4 frames, 13 batches."""
    px = height * width
    chunk = max(1, CHUNK_PIXELS // px)
    frames = max(2, min(max_gap + 1, AHEAD_MB * 2**20 // (4 * px)))  # L float16 and the small arrays
    jobs = max(2, min(-(-(max_gap + 1) // chunk), AHEAD_MB * 2**20 // (5 * px * chunk)))  # L in, RGB out
    encode = max(2, min(jobs, ENCODE_MB * 2**20 // (3 * px * chunk)))  # RGB
    return frames, jobs, encode


@dataclass(frozen=True)
class PipelineOptions:
    mode: str = "keyframes"  # "keyframes" (default) or "per-frame" (every frame through diffusion)
    sample: SampleOptions = SampleOptions()
    keyframes: KeyframeOptions = KeyframeOptions()
    deflicker: float = 0.5  # deflicker strength in [0, 1); 0 = off
    upscale: Upscale = Upscale.GUIDED
    warm_start: float = 0.5  # SDEdit strength for later keyframes of a shot; 1 = sample from scratch
    share_noise: bool = True  # one noise tensor per shot
    consensus: bool = True  # later keyframes of a shot average the prior's views where the colour tracks
    prop_scale: int = 2  # propagation resolution = working resolution x this (capped at the frame size)
    decode_batch: int = 16
    max_segment_mb: int = 1024  # full-resolution L held per segment; very large frames get shorter segments
    overlap: bool = True  # analysis ahead and finishing behind on their own threads (the same frames; False: one thread)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 < self.warm_start <= 1.0:
            raise InputError(f"warm_start must be in (0, 1], got {self.warm_start}")
        if not 0.0 <= self.deflicker < 1.0:
            raise InputError(f"deflicker strength must be in [0, 1), got {self.deflicker}")
        if self.prop_scale < 1 or self.decode_batch < 1 or self.max_segment_mb < 1:
            raise InputError("prop_scale, decode_batch and max_segment_mb must be >= 1")
        try:
            object.__setattr__(self, "upscale", Upscale(self.upscale))
        except ValueError:
            raise InputError(f"upscale must be one of {[u.value for u in Upscale]}, got {self.upscale!r}") from None

    def sizes(self, height: int, width: int, multiple: int = 8) -> Sizes:
        """The full, working and propagation resolutions for frames of ``height`` x ``width``."""
        return Sizes.of(height, width, self.sample, multiple, self.prop_scale)

    def keyframe_colorizer(self, model: ColorModel, sizes: Sizes, **kwargs) -> KeyframeColorizer:
        """The keyframe colour stage these options describe (``kwargs``: KeyframeColorizer's own: first_frame,
        timer, callback, stats)."""
        return KeyframeColorizer(model, sizes, self.sample, warm_start=self.warm_start, share_noise=self.share_noise,
                                 consensus=self.consensus, **kwargs)


@dataclass
class PipelineStats:
    frames: int = 0
    keyframes: int = 0
    shots: int = 0
    colour_input: bool = False
    max_buffered: int = 0  # most frames held at once (a segment and the next keyframe)
    # per later keyframe: mean |ab| (CIELAB) between its sampled colour and the colour carried into it
    # from the keyframe before, over the pixels that still track (chained confidence > 0.5)
    keyframe_jumps: list[float] = field(default_factory=list)
    keyframe_chroma: list[float] = field(default_factory=list)  # mean |ab| of every sampled keyframe (wash-out check)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    devices: dict[str, str] = field(default_factory=dict)  # stage -> device its tensors were on (last seen)


@dataclass
class _Job:
    """Frames to finish: their colour at the propagation resolution (before deflicker) and the run's deflicker."""

    frames: list[AnalysedFrame]
    abs_: list[np.ndarray]
    deflicker: Deflicker


class VideoPipeline:
    """``VideoPipeline(model, options).run(batches)``: uint8 RGB batches ``[B, H, W, 3]`` (grey or
    colour; only L is used) in, colorized uint8 RGB batches ``[B', H, W, 3]`` out, every frame
    once and in order, streaming. Batch boundaries out differ from those in (segments).

    It composes the public stages: :class:`~hueshift_core.video.analysis.FrameAnalyser`,
    :class:`~hueshift_core.video.segments.SegmentWalker` with a
    :class:`~hueshift_core.video.keyframes.KeyframeSelector` and a
    :class:`~hueshift_core.video.keyframe_colour.KeyframeColorizer`, :func:`~hueshift_core.video.segments.fill_segment`,
    :class:`~hueshift_core.video.deflicker.Deflicker` and :func:`~hueshift_core.model.upscale.upscale_merge_u8`.

    ``first_frame``: the index in the whole video of the first frame given (a piece of a longer
    video that starts at one of its cuts); it seeds each shot's random draws (:func:`shot_generator`).
    ``user``: the user's colours, :class:`~hueshift_core.hints.FrameColour` by frame index in the whole video
    (hints or a reference frame, :mod:`hueshift_core.hints`): those frames become keyframes and their colour
    is carried through the shot."""

    def __init__(self, model: ColorModel, options: PipelineOptions = PipelineOptions(), *,
                 first_frame: int = 0, user: dict[int, FrameColour] | None = None) -> None:
        self.model, self.options = model, options
        self.first_frame = int(first_frame)
        self.user = dict(user or {})
        # indices (from the first frame given) of the shot starts seen so far: the writer makes each an IDR
        # frame, so a film encoded in pieces split at cuts is the same file as one encode (issue 22)
        self.shot_starts: set[int] = set()
        # where upscale and LAB -> RGB run: the model's device (on a GPU, everything after decode but the
        # flow, propagation and deflicker at the small propagation resolution); on the CPU, OpenCV's fast path.
        # Set it to a torch.device to choose (torch.device("cpu") with a CPU model is the OpenCV path).
        self.finish_device = torch.device(model.device)
        self.torch_finish = False  # True: the device path (torch upscale, kornia LAB) even on the CPU (tests)
        self.stats = PipelineStats()
        self.timer = StageTimer()
        self.timer.seconds = self.stats.seconds
        self.sizes: Sizes | None = None
        self.colorizer: KeyframeColorizer | None = None
        self._analyser: FrameAnalyser | None = None
        self._selector: KeyframeSelector | None = None

    def _start(self, h: int, w: int, flow: bool = True) -> None:
        """The stages that need the frame size, once the first frame is seen."""
        o = self.options
        self.sizes = o.sizes(h, w, self.model.info.config.multiple)
        kf = o.keyframes
        fit = max(1, o.max_segment_mb * 2**20 // (2 * h * w) - 1)  # float16 L per frame
        if fit < kf.max_gap:
            kf = dataclasses.replace(kf, max_gap=fit, min_gap=min(kf.min_gap, fit))
        self._selector = KeyframeSelector(kf, force=[i - self.first_frame for i in self.user if i >= self.first_frame])
        self._analyser = FrameAnalyser(self.sizes, self._selector.cuts, timer=self.timer, flow=flow)
        # the colorizer records keyframe jumps and chroma straight into this run's stats
        self.colorizer = o.keyframe_colorizer(self.model, self.sizes, first_frame=self.first_frame, timer=self.timer,
                                              stats=KeyframeStats(self.stats.keyframe_jumps, self.stats.keyframe_chroma),
                                              user=self.user)
        on_device = self.finish_device.type != "cpu" or self.torch_finish
        self._finish_on = self.finish_device if on_device else None  # None: OpenCV on the CPU
        self._finish_where = str(torch.empty(0, device=self._finish_on).device) if on_device else "cpu"  # cuda:0

    def _frames(self, batches: Iterator[np.ndarray], flow: bool = True) -> Iterator[AnalysedFrame]:
        """Decoded RGB batches -> analysed frames; the stages are set up from the first frame's size."""
        it = iter(batches)
        with self.timer("decode"):
            first = next(it, None)
        if first is None:
            return
        check_batch(first)
        if len(first) == 0:  # an empty batch: look at the next one
            yield from self._frames(it, flow)
            return
        self._start(*first.shape[1:3], flow=flow)
        for f in self._analyser.frames(itertools.chain([first], it)):
            if f.cut:
                self.shot_starts.add(f.index)
            yield f
            self.stats.colour_input = self._analyser.colour_input

    def scan(self, batches: Iterator[np.ndarray]) -> tuple[list[int], int]:
        """The cheap first pass: (shot starts, frame count) of a stream of uint8 RGB batches, exactly
        as :meth:`run` would cut it (same L, same detector), without flow or diffusion."""
        starts, n = [], 0
        for f in self._frames(batches, flow=False):
            if f.cut:
                starts.append(f.index)
            n += 1
        return starts, n

    def run(self, batches: Iterator[np.ndarray], progress: Callable[[int], None] | None = None
            ) -> Iterator[np.ndarray]:
        """Colorize a stream of uint8 RGB batches; ``progress(n)`` is told of every n frames yielded.

        With ``options.overlap`` (default) analysis runs up to a segment ahead on one thread and finishing
        (deflicker, upscale, LAB -> RGB) up to a segment behind on another (:func:`overlap_depths`,
        :mod:`~hueshift_core.video.overlap`), so the stages share the cores; each stage still sees its items in
        order, and the frames are the same."""
        it = iter(batches)
        first = next(it, None)  # the frame size sets the queues' depths
        if first is None:
            return
        frames = self._frames(itertools.chain([first], it))
        ahead = None
        if self.options.overlap and isinstance(first, np.ndarray) and first.ndim == 4:
            n_ahead, n_jobs, _ = overlap_depths(*first.shape[1:3], self.options.keyframes.max_gap)
            frames = ahead = Prefetch(frames, n_ahead, "hueshift-analysis")
        jobs = self._run_per_frame(frames) if self.options.mode == "per-frame" else self._run_keyframes(frames)
        out = map_ahead(self._merge, jobs, n_jobs, "hueshift-finish") if ahead is not None else map(self._merge, jobs)
        try:
            for batch in out:
                self.stats.frames += len(batch)
                if progress is not None:
                    progress(len(batch))
                yield batch
        finally:
            close = getattr(out, "close", None)
            if close is not None:
                close()
            jobs.close()
            if ahead is not None:
                ahead.close()

    def _finish(self, frames: list[AnalysedFrame], abs_: list[np.ndarray], deflicker: Deflicker
                ) -> Iterator[_Job]:
        """Frames with ab at the propagation resolution -> finishing jobs of at most ``CHUNK_PIXELS``
        full-resolution pixels (full-resolution work never holds a whole segment) for :meth:`_merge`."""
        self.stats.devices["diffusion"] = self.colorizer.stats.device or "cpu"
        h, w = self.sizes.full
        chunk = max(1, CHUNK_PIXELS // (h * w))
        for i in range(0, len(frames), chunk):
            yield _Job(frames[i:i + chunk], abs_[i:i + chunk], deflicker)

    def _merge(self, job: _Job) -> np.ndarray:
        """Finish one job: deflicker (jobs come in order, one at a time, so its state runs through the video in
        order), upscale, merge -> uint8 RGB ``[B, H, W, 3]``."""
        with self.timer("deflicker"):
            abs_ = [job.deflicker.push(f.l_prop, ab, cut=f.cut, flows=f.flows, conf=f.conf_back)
                    for f, ab in zip(job.frames, job.abs_)]
        out = upscale_merge_u8(np.stack([f.l_full for f in job.frames]), np.stack(abs_), self.options.upscale,
                               self._finish_on, timer=self.timer)
        self.stats.devices["upscale"] = self.stats.devices["to_rgb"] = self._finish_where
        return out

    def _run_per_frame(self, frames: Iterator[AnalysedFrame]) -> Iterator[_Job]:
        deflicker = Deflicker(self.options.deflicker)
        pending: list[AnalysedFrame] = []
        for f in frames:
            pending.append(f)
            self.stats.max_buffered = max(self.stats.max_buffered, len(pending))
            self.stats.shots += f.cut
            if len(pending) == self.options.sample.batch_size:
                yield from self._per_frame_batch(pending, deflicker)
                pending = []
        if pending:
            yield from self._per_frame_batch(pending, deflicker)

    def _per_frame_batch(self, frames: list[AnalysedFrame], deflicker: Deflicker
                         ) -> Iterator[_Job]:
        self.stats.keyframes += len(frames)
        mine = [f for f in frames if self.first_frame + f.index in self.user]  # the user's colour, one at a time
        rest = [f for f in frames if self.first_frame + f.index not in self.user]
        ab = dict(zip((f.index for f in rest), self.colorizer.colour([f.l_prop for f in rest]) if rest else []))
        ab.update({f.index: self.colorizer(f) for f in mine})
        return self._finish(frames, [ab[f.index] for f in frames], deflicker)

    def _run_keyframes(self, frames: Iterator[AnalysedFrame]) -> Iterator[_Job]:
        deflicker = Deflicker(self.options.deflicker)
        # the selector and colorizer are made when the first frame is analysed: reach them late
        walker = SegmentWalker(lambda cut, tracked: self._selector.decide(cut, tracked),
                               lambda f, init, conf: self.colorizer(f, init, conf), timer=self.timer,
                               on_shot=lambda f: self.colorizer.start_shot(f))
        for seg in walker.walk(frames):
            with self.timer("propagate"):
                abs_ = fill_segment(seg)
            self.stats.shots, self.stats.keyframes = walker.shots, walker.keyframes
            self.stats.max_buffered = walker.max_buffered
            yield from self._finish(seg.frames, abs_, deflicker)
