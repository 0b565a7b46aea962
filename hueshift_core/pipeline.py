"""The video pipeline: one streaming pass from grey frames to colour frames.

Stages, per frame in display order (all but diffusion and the final upscale at the *propagation
resolution*, by default twice the model's working resolution, e.g. 128x224 for 854x480):

1. L of the full frame (CIELAB, OpenCV's float conversion: fast, within 0.5 units of kornia's);
2. shot cuts on L (:mod:`~hueshift_core.keyframes`), then flow to and from the previous frame
   of the shot (DIS) and its confidence (:mod:`~hueshift_core.propagate`);
3. keyframes: every shot start, and when under ``track_threshold`` of the pixels still track
   back to the last keyframe, or after ``max_gap`` frames;
4. keyframe colour from the diffusion model at the working resolution. Later keyframes of a
   shot start from the colour carried into them, re-noised to ``warm_start`` (SDEdit, Meng et
   al. 2022), with the shot's one noise tensor (``share_noise``), so they agree with the earlier
   keyframes instead of choosing new colours;
5. colour carried from the keyframe before and the keyframe after along the flow, blended by
   temporal distance and confidence (:func:`~hueshift_core.propagate.blend`);
6. deflicker along the flow (:mod:`~hueshift_core.deflicker`), restarted at cuts;
7. chroma upscaled to full resolution guided by the full-resolution L
   (:mod:`~hueshift_core.upscale`), merged with that L, to RGB.

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
import hashlib
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import ColorModel
from .color import denormalize_ab, lab_to_rgb, lab_to_rgb_u8, normalize_ab, normalize_l
from .colorize import SampleOptions, get_model, make_noise, sample_ab, working_size
from .deflicker import Deflicker
from .errors import InputError, VideoError
from .keyframes import KeyframeOptions, KeyframeSelector, tracked_share
from .propagate import blend, carry, compute_flow, flow_confidence
from .upscale import Upscale, upscale_ab
from .sequence import SequenceWriter, check_sequence_output, is_pattern, is_sequence, probe_sequence, read_sequence
from .video import VideoWriter, check_writable, probe, read_frames

MODES = ("keyframes", "per-frame")
# L of the grey sRGB value v (R = G = B = v), by OpenCV's float conversion of v / 255: VideoPipeline._lab's table
_GREY_L = np.ascontiguousarray(cv2.cvtColor((np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0)).repeat(3)
                                            .reshape(1, 256, 3), cv2.COLOR_RGB2Lab)[0, :, 0])
CHUNK_PIXELS = 2_000_000  # full-resolution pixels upscaled, converted and yielded at once (~5 frames of 854x480)


@dataclass(frozen=True)
class PipelineOptions:
    mode: str = "keyframes"  # "keyframes" (default) or "per-frame" (every frame through diffusion)
    sample: SampleOptions = SampleOptions()
    keyframes: KeyframeOptions = KeyframeOptions()
    deflicker: float = 0.5  # deflicker strength in [0, 1); 0 = off
    upscale: Upscale = Upscale.GUIDED
    warm_start: float = 0.5  # SDEdit strength for later keyframes of a shot; 1 = sample from scratch
    share_noise: bool = True  # one noise tensor per shot
    prop_scale: int = 2  # propagation resolution = working resolution x this (capped at the frame size)
    decode_batch: int = 16
    max_segment_mb: int = 1024  # full-resolution L held per segment; very large frames get shorter segments

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


@dataclass
class _Frame:
    index: int
    l_full: np.ndarray  # float16 [H, W], L in [0, 100]
    l_prop: np.ndarray  # uint8 [h, w], L * 2.55
    cut: bool
    flows: tuple[np.ndarray, np.ndarray] | None = None  # (t -> t-1, t-1 -> t), None at a shot start
    conf_back: np.ndarray | None = None  # confidence of flow t -> t-1
    conf_fwd: np.ndarray | None = None  # confidence of flow t-1 -> t
    ab_fw: np.ndarray | None = None  # colour carried forward from the segment's keyframe
    conf_fw: np.ndarray | None = None  # its chained confidence


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


def shot_generator(seed: int, start: int) -> torch.Generator:
    """The random generator of the shot starting at frame ``start`` of a video (0-based, in the whole
    video): seeded with ``seed`` itself for the first shot, and a hash of (seed, start) for later ones,
    so a shot's colours do not depend on what came before it."""
    if start == 0:
        return torch.Generator().manual_seed(seed)
    digest = hashlib.blake2b(f"hueshift-shot:{seed}:{start}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


class VideoPipeline:
    """``VideoPipeline(model, options).run(batches)``: uint8 RGB batches ``[B, H, W, 3]`` (grey or
    colour; only L is used) in, colorized uint8 RGB batches ``[B', H, W, 3]`` out, every frame
    once and in order, streaming. Batch boundaries out differ from those in (segments).

    ``first_frame``: the index in the whole video of the first frame given (a piece of a longer
    video that starts at one of its cuts); it seeds each shot's random draws (:func:`shot_generator`)."""

    def __init__(self, model: ColorModel, options: PipelineOptions = PipelineOptions(), *,
                 first_frame: int = 0) -> None:
        self.model, self.options = model, options
        self.first_frame = int(first_frame)
        # where upscale and LAB -> RGB run: the model's device (on a GPU, everything after decode but the
        # flow, propagation and deflicker at the small propagation resolution); on the CPU, OpenCV's fast path.
        # Set it to a torch.device to choose (torch.device("cpu") with a CPU model is the OpenCV path).
        self.finish_device = torch.device(model.device)
        self.torch_finish = False  # True: the device path (torch upscale, kornia LAB) even on the CPU (tests)
        self.stats = PipelineStats()
        self._gen = torch.Generator().manual_seed(options.sample.seed)
        self._noise: torch.Tensor | None = None
        self._selector: KeyframeSelector | None = None

    @contextmanager
    def _timed(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.stats.seconds[name] += time.perf_counter() - t

    def _start(self, h: int, w: int) -> None:
        """Sizes and the keyframe selector, once the first frame's size is known."""
        opts = self.options.sample
        self.work = working_size(h, w, opts.short_side, self.model.info.config.multiple, opts.max_long_side)
        s = self.options.prop_scale
        self.prop = (min(h, self.work[0] * s), min(w, self.work[1] * s))
        self.full = (h, w)
        kf = self.options.keyframes
        fit = max(1, self.options.max_segment_mb * 2**20 // (2 * h * w) - 1)  # float16 L per frame
        if fit < kf.max_gap:
            kf = dataclasses.replace(kf, max_gap=fit, min_gap=min(kf.min_gap, fit))
        self._selector = KeyframeSelector(kf)

    def _analyse(self, rgb: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """Frame ``i`` (uint8 RGB ``[H, W, 3]``) -> (L float32 ``[H, W]``, uint8 L at the propagation
        resolution, starts a shot): what both the pipeline and :meth:`scan` see."""
        if i == 0:
            self._start(*rgb.shape[:2])
        elif rgb.shape[:2] != self.full:
            raise VideoError(f"frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, the video started at "
                             f"{self.full[1]}x{self.full[0]}: frame size must not change")
        with self._timed("lab"):
            l_full, chroma = self._lab(rgb)
            if i < 8 and chroma > 2.0:
                self.stats.colour_input = True
            l_prop = cv2.resize(l_full * 2.55, self.prop[::-1], interpolation=cv2.INTER_AREA)
            l_prop = (l_prop + 0.5).clip(0, 255).astype(np.uint8)
        with self._timed("keyframes"):
            cut = self._selector.cuts.push(l_prop)
        return l_full, l_prop, cut

    def scan(self, batches: Iterator[np.ndarray]) -> tuple[list[int], int]:
        """The cheap first pass: (shot starts, frame count) of a stream of uint8 RGB batches, exactly
        as :meth:`run` would cut it (same L, same detector), without flow or diffusion."""
        starts: list[int] = []
        i = 0
        for batch in batches:
            _check_batch(batch)
            for rgb in batch:
                if self._analyse(rgb, i)[2]:
                    starts.append(i)
                i += 1
        return starts, i

    def _lab(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """uint8 RGB ``[H, W, 3]`` -> (L float32 ``[H, W]`` in [0, 100], mean |a|,|b| on a sparse grid).

        A grey frame (R = G = B, what a grey video decodes to) takes its L from a 256-entry table made by
        the same OpenCV conversion: the same values, about 6x less CPU than converting the frame."""
        r = rgb[..., 0]
        if np.array_equal(r[0], rgb[0, :, 1]) and np.array_equal(r[0], rgb[0, :, 2]) \
                and np.array_equal(r, rgb[..., 1]) and np.array_equal(r, rgb[..., 2]):
            return cv2.LUT(np.ascontiguousarray(r), _GREY_L), 0.0
        lab = cv2.cvtColor(rgb.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)
        return lab[..., 0], float(np.abs(lab[::8, ::8, 1:]).mean())

    def _sample(self, l_props: list[np.ndarray], init: list[np.ndarray] | None = None,
                conf: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Keyframe colour: uint8 L at the propagation resolution -> ab float32 ``[h, w, 2]`` (CIELAB)
        there, sampled at the working resolution. ``init`` (carried colour, with its confidence
        ``conf``) warm-starts the sampler when ``warm_start < 1``; the jump from it is recorded."""
        o, opts = self.options.sample, self.options
        l = torch.from_numpy(np.stack(l_props)).float()[:, None] / 2.55
        l_work = normalize_l(F.interpolate(l, size=self.work, mode="area"))
        noise = None
        if opts.share_noise:
            if self._noise is None:
                self._noise = make_noise((1, 2, *self.work), self._gen)
            noise = self._noise.expand(len(l_props), -1, -1, -1).contiguous()
        warm = init is not None and opts.warm_start < 1.0
        init_ab = None
        if warm:
            ab0 = torch.from_numpy(np.stack(init)).permute(0, 3, 1, 2)
            init_ab = normalize_ab(F.interpolate(ab0, size=self.work, mode="area"))
        with self._timed("diffusion"):
            ab = sample_ab(self.model, l_work, steps=o.steps, sampler=o.sampler, generator=self._gen, eta=o.eta,
                           guidance=o.guidance, init_ab=init_ab, strength=opts.warm_start if warm else 1.0, noise=noise)
        self.stats.devices["diffusion"] = str(ab.device)
        ab = F.interpolate(denormalize_ab(ab.float().cpu()), size=self.prop, mode="bicubic", align_corners=False)
        out = [a.permute(1, 2, 0).numpy().astype(np.float32) for a in ab]
        self.stats.keyframe_chroma += [float(np.abs(a).mean()) for a in out]
        if init is not None:
            for new, old, c in zip(out, init, conf or [None] * len(out)):
                mask = c > 0.5 if c is not None and (c > 0.5).any() else np.ones(new.shape[:2], bool)
                self.stats.keyframe_jumps.append(float(np.abs(new - old)[mask].mean()))
        return out

    def _finish(self, frames: list[_Frame], abs_: list[np.ndarray], deflicker: Deflicker) -> Iterator[np.ndarray]:
        """Deflicker, upscale, merge: frames with ab at the propagation resolution -> uint8 RGB ``[B, H, W, 3]``
        chunks of at most ``CHUNK_PIXELS`` (full-resolution work never holds a whole segment)."""
        with self._timed("deflicker"):
            abs_ = [deflicker.push(f.l_prop, ab, cut=f.cut, flows=f.flows, conf=f.conf_back)
                    for f, ab in zip(frames, abs_)]
        chunk = max(1, CHUNK_PIXELS // (self.full[0] * self.full[1]))
        on_device = self.finish_device.type != "cpu" or self.torch_finish
        for i in range(0, len(frames), chunk):
            part = frames[i:i + chunk]
            with self._timed("upscale"):
                l_full = torch.from_numpy(np.stack([f.l_full for f in part]).astype(np.float32))[:, None]
                ab_small = torch.from_numpy(np.stack(abs_[i:i + chunk])).permute(0, 3, 1, 2)
                if on_device:  # the full-resolution work on the model's device (GPU): torch's upscale, kornia's LAB
                    l_full = l_full.to(self.finish_device, non_blocking=True)
                    ab_small = ab_small.to(self.finish_device, non_blocking=True)
                ab_full = upscale_ab(ab_small, l_full, self.options.upscale)
                self.stats.devices["upscale"] = str(ab_full.device)
            with self._timed("to_rgb"):
                if on_device:
                    rgb = lab_to_rgb(torch.cat([l_full, ab_full.to(l_full.dtype)], dim=1))
                    self.stats.devices["to_rgb"] = str(rgb.device)
                    out = (rgb * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                else:
                    out = lab_to_rgb_u8(l_full[:, 0].numpy(), ab_full.permute(0, 2, 3, 1).numpy())
                    self.stats.devices["to_rgb"] = "cpu"
            del l_full, ab_small, ab_full
            self.stats.frames += len(out)
            yield out

    # ---- the pass ------------------------------------------------------------------------------
    def _frames(self, batches: Iterator[np.ndarray]) -> Iterator[_Frame]:
        """Decoded RGB -> _Frame with L, the cut flag and, inside a shot, flows to the previous frame."""
        prev: _Frame | None = None
        i = 0
        it = iter(batches)
        while True:
            with self._timed("decode"):
                batch = next(it, None)
            if batch is None:
                return
            _check_batch(batch)
            for rgb in batch:
                l_full, l_prop, cut = self._analyse(rgb, i)
                f = _Frame(i, l_full.astype(np.float16), l_prop, cut)
                if prev is not None and not cut:
                    with self._timed("flow"):
                        f_back = compute_flow(l_prop, prev.l_prop)
                        f_fwd = compute_flow(prev.l_prop, l_prop)
                        f.flows = (f_back, f_fwd)
                        f.conf_back = flow_confidence(l_prop, prev.l_prop, f_back, f_fwd)
                        f.conf_fwd = flow_confidence(prev.l_prop, l_prop, f_fwd, f_back)
                yield f
                prev = f
                i += 1

    def run(self, batches: Iterator[np.ndarray], progress: Callable[[int], None] | None = None
            ) -> Iterator[np.ndarray]:
        """Colorize a stream of uint8 RGB batches; ``progress(n)`` is told of every n frames yielded."""
        frames = self._frames(batches)
        out = self._run_per_frame(frames) if self.options.mode == "per-frame" else self._run_keyframes(frames)
        for batch in out:
            if progress is not None:
                progress(len(batch))
            yield batch

    def _run_per_frame(self, frames: Iterator[_Frame]) -> Iterator[np.ndarray]:
        deflicker = Deflicker(self.options.deflicker)
        pending: list[_Frame] = []
        for f in frames:
            pending.append(f)
            self.stats.max_buffered = max(self.stats.max_buffered, len(pending))
            self.stats.shots += f.cut
            if len(pending) == self.options.sample.batch_size:
                yield from self._per_frame_batch(pending, deflicker)
                pending = []
        if pending:
            yield from self._per_frame_batch(pending, deflicker)

    def _per_frame_batch(self, frames: list[_Frame], deflicker: Deflicker) -> Iterator[np.ndarray]:
        self.stats.keyframes += len(frames)
        return self._finish(frames, self._sample([f.l_prop for f in frames]), deflicker)

    def _close(self, seg: list[_Frame], key_ab: np.ndarray, nxt: _Frame | None, nxt_ab: np.ndarray | None,
               deflicker: Deflicker) -> Iterator[np.ndarray]:
        """Colour a segment (its keyframe ``seg[0]`` and the frames before the next keyframe ``nxt``,
        or the end of the shot when ``nxt`` is None) and finish it."""
        abs_ = [key_ab]
        if nxt is None:  # end of shot or video: forward only
            abs_ += [f.ab_fw for f in seg[1:]]
        else:
            with self._timed("propagate"):
                frames = seg + [nxt]
                ab_b, conf_b = nxt_ab, np.ones(nxt.l_prop.shape, np.float32)
                back = {}
                for j in range(len(frames) - 1, 1, -1):  # carry frame j's colour to j-1 along flow (j-1 -> j)
                    ab_b, conf_b = carry(ab_b, conf_b, frames[j].flows[1], frames[j].conf_fwd)
                    back[j - 1] = (ab_b, conf_b)
                n = len(seg)
                abs_ += [blend(seg[j].ab_fw, seg[j].conf_fw, *back[j], j / n) for j in range(1, n)]
        return self._finish(seg, abs_, deflicker)

    def _run_keyframes(self, frames: Iterator[_Frame]) -> Iterator[np.ndarray]:
        deflicker = Deflicker(self.options.deflicker)
        seg: list[_Frame] = []  # seg[0] is the segment's keyframe, already coloured
        key_ab: np.ndarray | None = None
        for f in frames:
            tracked = None
            if seg and not f.cut:
                with self._timed("propagate"):
                    prev = seg[-1]
                    src_ab = key_ab if len(seg) == 1 else prev.ab_fw
                    src_conf = np.ones(f.l_prop.shape, np.float32) if len(seg) == 1 else prev.conf_fw
                    f.ab_fw, f.conf_fw = carry(src_ab, src_conf, f.flows[0], f.conf_back)
                tracked = tracked_share(f.conf_fw)
            decision = self._selector.decide(f.cut, tracked)
            self.stats.max_buffered = max(self.stats.max_buffered, len(seg) + 1)
            if decision.cut or not seg:
                if seg:
                    yield from self._close(seg, key_ab, None, None, deflicker)
                self.stats.shots += 1
                self.stats.keyframes += 1
                self._noise = None  # a new shot draws new noise, from its own generator
                self._gen = shot_generator(self.options.sample.seed, self.first_frame + f.index)
                seg, key_ab = [f], self._sample([f.l_prop])[0]
            elif decision.keyframe:
                self.stats.keyframes += 1
                new_ab = self._sample([f.l_prop], [f.ab_fw], [f.conf_fw])[0]
                yield from self._close(seg, key_ab, f, new_ab, deflicker)
                seg, key_ab = [f], new_ab
            else:
                seg.append(f)
        if seg:
            yield from self._close(seg, key_ab, None, None, deflicker)


def _check_batch(batch) -> None:
    if not isinstance(batch, np.ndarray) or batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        got = f"{batch.dtype} {batch.shape}" if isinstance(batch, np.ndarray) else type(batch).__name__
        raise InputError(f"frames must be uint8 RGB batches [B, H, W, 3], got {got}")


@dataclass
class VideoResult:
    path: str
    frames: int
    width: int
    height: int
    fps: Fraction
    seconds: float  # wall time of the whole call (probe, model load, decode ... encode)
    keyframes: int
    shots: int
    colour_input: bool  # the input had colour: it was turned grey first
    encoder: str
    stage_seconds: dict[str, float]  # decode, lab, keyframes, flow, propagate, diffusion, deflicker, upscale, to_rgb, encode
    keyframe_jumps: list[float]  # see PipelineStats.keyframe_jumps
    max_buffered: int = 0
    keyframe_chroma: list[float] = field(default_factory=list)  # see PipelineStats.keyframe_chroma

    @property
    def fps_processed(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def colorize_video(src: str | Path, dst: str | Path, model: ColorModel | str | Path | None = None,
                   options: PipelineOptions = PipelineOptions(), *, device: str = "cpu",
                   progress: Callable[[int], None] | None = None, max_frames: int | None = None,
                   fps: float | Fraction | None = None) -> VideoResult:
    """Colorize the video ``src`` into ``dst``: H.264 mp4 of the same size, frame count and frame
    rate, with ``src``'s audio track when it has one.

    Frame sequences (:mod:`~hueshift_core.sequence`): ``src`` may be a folder of images or a pattern
    such as ``scans/%06d.png`` (played at ``fps``, default 24; ``fps`` is refused for a video file,
    whose own rate is kept), and ``dst`` a pattern such as ``out/%06d.png`` (numbered from 1, no audio).

    ``model``: a loaded model, a checkpoint path, or None for the shipped default (loaded on
    ``device``). ``dst`` appears only when complete: an error or Ctrl-C leaves no file.
    ``progress(n)`` is called with the number of frames finished since the last call.
    Decoding (one batch ahead) and encoding run on their own threads, overlapped with the pipeline.
    Raises :class:`~hueshift_core.errors.HueShiftError` on bad input, before any work when it can.
    """
    t0 = time.perf_counter()
    if not isinstance(options, PipelineOptions):
        raise InputError(f"options must be a PipelineOptions, got {type(options).__name__}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise InputError(f"max_frames must be an integer >= 1 or None, got {max_frames!r}")
    src_seq, dst_seq = is_sequence(src), is_pattern(dst)
    if src_seq:
        info = probe_sequence(src, fps)
    else:
        if fps is not None:
            raise InputError("a frame rate (fps) is for a frame-sequence input (a folder or scans/%06d.png); "
                             "a video file keeps its own rate")
        info = probe(src)
    if dst_seq:
        check_sequence_output(dst, [src])
    else:
        check_writable(dst, [src])  # also refuses dst == src (by inode), before any work
    if not isinstance(model, ColorModel):
        model = get_model(model, device)
    pipe = VideoPipeline(model, options)
    times: list | None = [] if info.variable_rate and not dst_seq else None  # VFR: carry each frame's time
    if src_seq:
        frames = read_sequence(src, options.decode_batch, max_frames=max_frames, fps=info.fps)
    else:
        frames = read_frames(src, options.decode_batch, max_frames=max_frames, times=times)
    if dst_seq:
        writer_cm = SequenceWriter(dst, info.width, info.height, inputs=[src])
    else:
        writer_cm = VideoWriter(dst, info.width, info.height, info.fps, audio_from=src if info.has_audio else None,
                                time_base=info.time_base if info.variable_rate else None)
    with writer_cm as writer:
        encoder = _Encoder(writer, times)
        reader = _Prefetch(frames, depth=2)
        try:
            for out in pipe.run(reader, progress):
                encoder.put(out)
        except BaseException:
            encoder.close(abort=True)
            raise
        finally:
            reader.close()
        encoder.close()
        t = time.perf_counter()
    pipe.stats.seconds["encode"] = encoder.seconds + time.perf_counter() - t
    s = pipe.stats
    return VideoResult(str(dst), s.frames, info.width, info.height, info.fps, time.perf_counter() - t0, s.keyframes,
                       s.shots, s.colour_input, writer.encoder, dict(s.seconds), s.keyframe_jumps, s.max_buffered,
                       s.keyframe_chroma)


_DONE = object()


class _Prefetch:
    """Iterate ``source`` on a thread, at most ``depth`` items ahead (decoding overlaps the pipeline);
    its exceptions come out of ``next()`` in order. ``close()`` stops the thread early."""

    def __init__(self, source: Iterator, depth: int = 2) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source,), name="hueshift-decode", daemon=True)
        self._thread.start()

    def _run(self, source: Iterator) -> None:
        try:
            for item in source:
                if not self._offer(("item", item)):
                    return
        except BaseException as err:  # noqa: BLE001 — handed to the consumer
            self._offer(("error", err))
            return
        self._offer(("done", None))

    def _offer(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> _Prefetch:
        return self

    def __next__(self):
        kind, value = self._q.get()
        if kind == "item":
            return value
        self._q.put((kind, value))  # stay exhausted
        if kind == "error":
            raise value
        raise StopIteration

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _Encoder:
    """Encode finished batches on a thread (at most two waiting), so encoding overlaps the pipeline.
    ``close()`` waits for the last frame and re-raises the thread's error; ``close(abort=True)`` drops
    what waits and returns once the frame being encoded is done (the writer then deletes its file)."""

    def __init__(self, writer, times: list | None) -> None:
        self.writer, self.times = writer, times
        self.seconds = 0.0
        self._q: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hueshift-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            out = self._q.get()
            if out is _DONE or self._abort.is_set():
                return
            if self._error is not None:
                continue
            t = time.perf_counter()
            try:
                if self.times is not None:
                    self.writer.write(out, self.times[self.writer.frames:self.writer.frames + len(out)])
                else:
                    self.writer.write(out)
            except BaseException as err:  # noqa: BLE001 — re-raised by put() / close()
                self._error = err
            self.seconds += time.perf_counter() - t

    def put(self, out: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(out)

    def close(self, abort: bool = False) -> None:
        if abort:
            self._abort.set()
            while True:  # make room for the sentinel
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
        self._q.put(_DONE)
        self._thread.join()
        if self._error is not None and not abort:
            raise self._error
