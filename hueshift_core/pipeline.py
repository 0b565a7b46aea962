"""The video pipeline: one streaming pass from grey frames to colour frames.

Stages, per frame in display order (all but diffusion at the *propagation resolution*, by
default twice the model's working resolution, e.g. 128x224 for 854x480):

1. L of the full frame (CIELAB, OpenCV's float conversion: fast, within 0.5 units of kornia's);
2. flow to and from the previous frame on L (DIS), and its forward-backward confidence;
3. shot cuts and keyframes (:mod:`~hueshift_core.keyframes`);
4. keyframe colour from the diffusion model at the working resolution; later keyframes of a
   shot start from the colour carried into them, partly re-noised (SDEdit), with the shot's noise;
5. colour carried from the keyframe before and the keyframe after along the flow, blended by
   distance and confidence (:mod:`~hueshift_core.propagate`);
6. deflicker along the flow (:mod:`~hueshift_core.deflicker`);
7. chroma upscaled to full resolution guided by L (:mod:`~hueshift_core.upscale`), merged, to RGB.

At most one keyframe segment (<= ``max_gap`` frames) is buffered, so memory does not grow with
the video's length. ``mode="per-frame"`` runs every frame through the diffusion model instead
(the original's method, the baseline), in batches.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import ColorModel
from .color import denormalize_ab, normalize_ab, normalize_l
from .colorize import SampleOptions, get_model, make_noise, sample_ab, working_size
from .deflicker import Deflicker
from .errors import InputError, VideoError
from .keyframes import KeyframeOptions, KeyframeSelector, tracked_share
from .propagate import blend, carry, compute_flow, flow_confidence
from .upscale import Upscale, upscale_ab
from .video import VideoWriter, check_writable, probe, read_frames

MODES = ("keyframes", "per-frame")


@dataclass(frozen=True)
class PipelineOptions:
    mode: str = "keyframes"
    sample: SampleOptions = SampleOptions()
    keyframes: KeyframeOptions = KeyframeOptions()
    deflicker: float = 0.5  # 0 = off
    upscale: Upscale = Upscale.GUIDED
    warm_start: float = 0.5  # SDEdit strength for later keyframes of a shot; 1 = sample from scratch
    share_noise: bool = True  # one noise tensor per shot
    prop_scale: int = 2  # propagation resolution = working resolution x this
    decode_batch: int = 16

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 < self.warm_start <= 1.0:
            raise InputError(f"warm_start must be in (0, 1], got {self.warm_start}")
        if self.prop_scale < 1:
            raise InputError("prop_scale must be >= 1")
        object.__setattr__(self, "upscale", Upscale(self.upscale))


@dataclass
class _Frame:
    index: int
    l_full: np.ndarray  # float16 [H, W], L in [0, 100]
    l_prop: np.ndarray  # uint8 [h, w], L * 2.55
    cut: bool
    flows: tuple[np.ndarray, np.ndarray] | None = None  # (t -> t-1, t-1 -> t)
    conf_back: np.ndarray | None = None  # confidence of flow t -> t-1
    conf_fwd: np.ndarray | None = None  # confidence of flow t-1 -> t
    ab_fw: np.ndarray | None = None  # colour carried forward from the segment's keyframe
    conf_fw: np.ndarray | None = None


@dataclass
class PipelineStats:
    frames: int = 0
    keyframes: int = 0
    shots: int = 0
    colour_input: bool = False
    max_buffered: int = 0
    keyframe_jumps: list[float] = field(default_factory=list)  # mean |ab| change a warm start made at keyframes
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))


class VideoPipeline:
    """``VideoPipeline(model, options).run(batches)``: uint8 RGB batches ``[B, H, W, 3]`` in,
    colorized uint8 RGB batches out, in order, streaming."""

    def __init__(self, model: ColorModel, options: PipelineOptions = PipelineOptions()) -> None:
        self.model, self.options = model, options
        self.stats = PipelineStats()
        self._gen = torch.Generator().manual_seed(options.sample.seed)
        self._noise: torch.Tensor | None = None

    # ---- small stages --------------------------------------------------------------------------
    def _timed(self, name: str):
        stats = self.stats

        class _T:
            def __enter__(self_inner):
                self_inner.t = time.perf_counter()

            def __exit__(self_inner, *exc):
                stats.seconds[name] += time.perf_counter() - self_inner.t
        return _T()

    def _sizes(self, h: int, w: int) -> None:
        opts = self.options.sample
        self.work = working_size(h, w, opts.short_side, self.model.info.config.multiple, opts.max_long_side)
        s = self.options.prop_scale
        self.prop = (min(h, self.work[0] * s), min(w, self.work[1] * s))
        self.full = (h, w)

    def _lab(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        lab = cv2.cvtColor(rgb.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)
        chroma = float(np.abs(lab[::8, ::8, 1:]).mean())
        return lab[..., 0], chroma

    def _sample(self, l_props: list[np.ndarray], init: list[np.ndarray | None]) -> list[np.ndarray]:
        """Keyframe colour at the working resolution -> ab at the propagation resolution."""
        o = self.options.sample
        l = torch.from_numpy(np.stack(l_props)).float()[:, None] / 2.55
        l_work = normalize_l(F.interpolate(l, size=self.work, mode="area"))
        warm = init[0] is not None and self.options.warm_start < 1.0
        noise = None
        if self.options.share_noise:
            if self._noise is None:
                self._noise = make_noise((1, 2, *self.work), self._gen)
            noise = self._noise.expand(len(l_props), -1, -1, -1).contiguous()
        init_ab = None
        if warm:
            ab0 = torch.from_numpy(np.stack(init)).permute(0, 3, 1, 2)
            init_ab = normalize_ab(F.interpolate(ab0, size=self.work, mode="area"))
        with self._timed("diffusion"):
            ab = sample_ab(self.model, l_work, steps=o.steps, sampler=o.sampler, generator=self._gen, eta=o.eta,
                           init_ab=init_ab, strength=self.options.warm_start if warm else 1.0, noise=noise)
        ab = F.interpolate(denormalize_ab(ab.float().cpu()), size=self.prop, mode="bicubic", align_corners=False)
        out = [a.permute(1, 2, 0).numpy().astype(np.float32) for a in ab]
        if warm:
            self.stats.keyframe_jumps.extend(float(np.abs(o_ - i_).mean()) for o_, i_ in zip(out, init))
        return out

    def _finish(self, frames: list[_Frame], abs_: list[np.ndarray], deflicker: Deflicker) -> np.ndarray:
        """Deflicker, upscale, merge: -> uint8 RGB [B, H, W, 3]."""
        out = []
        for f, ab in zip(frames, abs_):
            with self._timed("deflicker"):
                ab = deflicker.push(f.l_prop, ab, cut=f.cut, flows=f.flows)
            with self._timed("upscale"):
                l_full = torch.from_numpy(f.l_full.astype(np.float32))[None, None]
                ab_full = upscale_ab(torch.from_numpy(ab).permute(2, 0, 1)[None], l_full, self.options.upscale)
                lab = np.concatenate([f.l_full.astype(np.float32)[..., None],
                                      ab_full[0].permute(1, 2, 0).numpy()], axis=-1)
            with self._timed("to_rgb"):
                rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
                out.append((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
        self.stats.frames += len(out)
        return np.stack(out)

    # ---- the pass ------------------------------------------------------------------------------
    def _frames(self, batches: Iterator[np.ndarray]) -> Iterator[_Frame]:
        """Decoded RGB -> _Frame with L, flows to the previous frame, cut flag."""
        selector_cuts = KeyframeSelector(self.options.keyframes).cuts
        prev: _Frame | None = None
        i = 0
        t_dec = time.perf_counter()
        for batch in batches:
            self.stats.seconds["decode"] += time.perf_counter() - t_dec
            if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
                raise InputError(f"frames must be uint8 [B, H, W, 3], got {batch.dtype} {batch.shape}")
            for rgb in batch:
                if i == 0:
                    self._sizes(*rgb.shape[:2])
                elif rgb.shape[:2] != self.full:
                    raise VideoError(f"frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, the video started at "
                                     f"{self.full[1]}x{self.full[0]}: frame size must not change")
                with self._timed("lab"):
                    l_full, chroma = self._lab(rgb)
                    if i < 8 and chroma > 2.0:
                        self.stats.colour_input = True
                    l_prop = cv2.resize((l_full * 2.55).astype(np.float32), self.prop[::-1],
                                        interpolation=cv2.INTER_AREA).round().clip(0, 255).astype(np.uint8)
                cut = selector_cuts.push(l_prop)
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
            t_dec = time.perf_counter()

    def run(self, batches: Iterator[np.ndarray], progress: Callable[[int], None] | None = None
            ) -> Iterator[np.ndarray]:
        if self.options.mode == "per-frame":
            yield from self._run_per_frame(batches, progress)
        else:
            yield from self._run_keyframes(batches, progress)

    def _emit(self, out: np.ndarray, progress: Callable[[int], None] | None) -> np.ndarray:
        if progress is not None:
            progress(len(out))
        return out

    def _run_per_frame(self, batches, progress):
        deflicker = Deflicker(self.options.deflicker)
        pending: list[_Frame] = []
        n = self.options.sample.batch_size
        for f in self._frames(batches):
            pending.append(f)
            self.stats.max_buffered = max(self.stats.max_buffered, len(pending))
            if f.cut:
                self.stats.shots += 1
            if len(pending) == n:
                yield self._emit(self._per_frame_batch(pending, deflicker), progress)
                pending = []
        if pending:
            yield self._emit(self._per_frame_batch(pending, deflicker), progress)

    def _per_frame_batch(self, frames: list[_Frame], deflicker: Deflicker) -> np.ndarray:
        self.stats.keyframes += len(frames)
        abs_ = self._sample([f.l_prop for f in frames], [None] * len(frames))
        return self._finish(frames, abs_, deflicker)

    def _run_keyframes(self, batches, progress):
        opts = self.options
        deflicker = Deflicker(opts.deflicker)
        selector = KeyframeSelector(opts.keyframes)
        seg: list[_Frame] = []  # seg[0] is the segment's keyframe, already coloured
        key_ab: np.ndarray | None = None

        def close(next_key: _Frame | None, next_ab: np.ndarray | None) -> np.ndarray:
            """Colour seg[0..] (the keyframe and the frames before ``next_key``) and finish them."""
            abs_ = [key_ab]
            if next_key is None:  # end of shot or video: forward only
                abs_ += [f.ab_fw for f in seg[1:]]
            else:
                with self._timed("propagate"):
                    frames = seg + [next_key]
                    ab_b, conf_b = next_ab, np.ones_like(next_key.conf_fw if next_key.conf_fw is not None
                                                         else next_key.l_prop, dtype=np.float32)
                    back = {}
                    for j in range(len(frames) - 1, 0, -1):  # carry from frame j to j-1 along flow (j-1 -> j)
                        f_j = frames[j]
                        ab_b, conf_b = carry(ab_b, conf_b, f_j.flows[1], f_j.conf_fwd)
                        back[j - 1] = (ab_b, conf_b)
                    n = len(seg)
                    for j in range(1, n):
                        f = seg[j]
                        abs_.append(blend(f.ab_fw, f.conf_fw, back[j][0], back[j][1], j / n))
            return self._finish(seg, abs_, deflicker)

        for f in self._frames(batches):
            tracked = None
            if seg and not f.cut:
                with self._timed("propagate"):
                    prev = seg[-1]
                    src_ab = key_ab if len(seg) == 1 else prev.ab_fw
                    src_conf = np.ones(f.l_prop.shape, np.float32) if len(seg) == 1 else prev.conf_fw
                    f.ab_fw, f.conf_fw = carry(src_ab, src_conf, f.flows[0], f.conf_back)
                tracked = tracked_share(f.conf_fw)
            decision = selector.push(f.l_prop, tracked)
            if decision.cut or not seg:
                if seg:
                    yield self._emit(close(None, None), progress)
                self.stats.shots += 1
                self.stats.keyframes += 1
                self._noise = None  # a new shot draws new noise
                seg, key_ab = [f], self._sample([f.l_prop], [None])[0]
            elif decision.keyframe:
                self.stats.keyframes += 1
                new_ab = self._sample([f.l_prop], [f.ab_fw])[0]
                yield self._emit(close(f, new_ab), progress)
                f.cut = False
                seg, key_ab = [f], new_ab
            else:
                seg.append(f)
            self.stats.max_buffered = max(self.stats.max_buffered, len(seg))
        if seg:
            yield self._emit(close(None, None), progress)


@dataclass
class VideoResult:
    path: str
    frames: int
    width: int
    height: int
    fps: Fraction
    seconds: float
    keyframes: int
    shots: int
    colour_input: bool
    encoder: str
    stage_seconds: dict[str, float]
    keyframe_jumps: list[float]

    @property
    def fps_processed(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def colorize_video(src: str | Path, dst: str | Path, model: ColorModel | str | Path | None = None,
                   options: PipelineOptions = PipelineOptions(), *, device: str = "cpu",
                   progress: Callable[[int], None] | None = None, max_frames: int | None = None) -> VideoResult:
    """Colorize the video ``src`` into ``dst`` (H.264 mp4, same size, frame count and rate, audio kept).

    ``dst`` appears only when complete. ``progress(n)`` is called with the number of frames
    finished since the last call. Raises :class:`~hueshift_core.errors.HueShiftError` on bad input.
    """
    t0 = time.perf_counter()
    info = probe(src)
    check_writable(dst)
    if Path(dst).resolve() == Path(src).resolve():
        raise VideoError("the output must not overwrite the input video")
    if not isinstance(model, ColorModel):
        model = get_model(model, device)
    pipe = VideoPipeline(model, options)
    with VideoWriter(dst, info.width, info.height, info.fps, audio_from=src if info.has_audio else None) as writer:
        encode = 0.0
        for out in pipe.run(read_frames(src, options.decode_batch, max_frames=max_frames), progress):
            t = time.perf_counter()
            writer.write(out)
            encode += time.perf_counter() - t
        t = time.perf_counter()
    pipe.stats.seconds["encode"] = encode + time.perf_counter() - t
    s = pipe.stats
    return VideoResult(str(dst), s.frames, info.width, info.height, info.fps, time.perf_counter() - t0, s.keyframes,
                       s.shots, s.colour_input, writer.encoder, dict(s.seconds), s.keyframe_jumps)
