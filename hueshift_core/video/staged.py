"""The video path in stages, over a whole clip in memory: what the ComfyUI nodes call.

Each function composes the very objects the streaming :class:`~hueshift_core.video.pipeline.VideoPipeline`
composes (:class:`~hueshift_core.video.analysis.FrameAnalyser`, :class:`~hueshift_core.video.segments.SegmentWalker`,
:class:`~hueshift_core.video.keyframe_colour.KeyframeColorizer`, :func:`~hueshift_core.video.segments.fill_segment`,
:class:`~hueshift_core.video.deflicker.Deflicker`, :func:`~hueshift_core.model.upscale.upscale_merge_u8`), so for
the same clip, seed and options the chain

    plan_keyframes -> colour_keyframes -> propagate_keyframes -> finish_frames

gives the colours ``VideoPipeline.run`` gives (bit for bit on the CPU). Between the stages travel a
:class:`ClipPlan` and chroma tensors, which is what lets a node graph show and change each step.

Frames are uint8 RGB ``[N, H, W, 3]`` numpy arrays (grey or colour; only L is used; see
:func:`float_frames_to_u8` for float frames). Chroma is CIELAB ab as float32 torch ``[K, 2, h, w]`` on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..hints import FrameColour
from ..images import frames_to_lab, merge_to_rgb
from ..model.checkpoint import ColorModel
from ..model.upscale import Upscale, upscale_merge_u8
from .analysis import FrameAnalyser, PlanCuts, Sizes, check_batch, frame_l, half
from .deflicker import Deflicker, deflicker
from .keyframe_colour import KeyframeStats, to_prop
from .keyframes import KeyframeSelector, detect_cuts
from .pipeline import PipelineOptions
from .segments import GivenColours, PlanDecisions, SegmentWalker, fill_segment

Tick = Callable[[int], None]  # told of every n frames done


@dataclass(frozen=True)
class ClipPlan:
    """Keyframes and shot starts of a clip (frame indices, increasing; every shot start is a keyframe),
    its frame count and the resolutions the analysis ran at."""

    keyframes: tuple[int, ...]
    shot_starts: tuple[int, ...]
    num_frames: int
    sizes: Sizes

    def check(self, frames: np.ndarray, who: str) -> None:
        _check(frames)
        if len(frames) != self.num_frames or tuple(frames.shape[1:3]) != self.sizes.full:
            raise InputError(f"{who}: the keyframe plan is for {self.num_frames} frames of {self.sizes.full[1]}x"
                             f"{self.sizes.full[0]}, got {len(frames)} of {frames.shape[2]}x{frames.shape[1]}: "
                             "connect the same frames to Keyframe Select and here")


def float_frames_to_u8(frames: torch.Tensor) -> np.ndarray:
    """Float RGB ``[N, H, W, 3]`` in [0, 1] (ComfyUI's IMAGE layout) -> uint8 RGB ``[N, H, W, 3]``
    (rounded: frames decoded from 8-bit video come back exactly)."""
    return (frames.detach().to("cpu", torch.float32) * 255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def _check(frames: np.ndarray) -> None:
    check_batch(frames)
    if len(frames) == 0:
        raise InputError("the clip has no frames")


def _analyse(frames: np.ndarray, sizes: Sizes, cuts, tick: Tick | None):
    analyser = FrameAnalyser(sizes, cuts)
    for rgb in frames:
        yield analyser.push(rgb)
        if tick is not None:
            tick(1)


def plan_keyframes(frames: np.ndarray, options: PipelineOptions = PipelineOptions(), *, multiple: int = 8,
                   tick: Tick | None = None, force: tuple[int, ...] = ()) -> ClipPlan:
    """Shot cuts and keyframes of a clip, decided as the pipeline decides them (``options.keyframes``;
    flow and confidence at ``options.sizes``' propagation resolution). ``force``: frames that must be keyframes
    (those the user gave colour)."""
    _check(frames)
    sizes = options.sizes(*frames.shape[1:3], multiple)
    selector = KeyframeSelector(options.keyframes, force=force)
    walker = SegmentWalker(selector.decide, None)
    for _ in walker.walk(_analyse(frames, sizes, selector.cuts, tick)):
        pass
    return ClipPlan(tuple(walker.keyframe_indices), tuple(walker.shot_starts), len(frames), sizes)


@torch.no_grad()
def colour_keyframes(model: ColorModel, frames: np.ndarray, plan: ClipPlan,
                     options: PipelineOptions = PipelineOptions(), *, callback=None,
                     stats: KeyframeStats | None = None, user: dict[int, FrameColour] | None = None) -> torch.Tensor:
    """Colour the plan's keyframes, in order, as the pipeline does (per-shot seeds, shared noise, later
    keyframes starting from the colour carried into them, the user's colours) -> ab ``[K, 2, *prop]`` for
    the K keyframes, at the plan's propagation resolution: each keyframe's colour exactly as the pipeline
    carries it (sampled at the working resolution of ``options.sample.short_side``, brought to the
    propagation resolution, kept where the carried colour tracks). ``callback(i, steps)`` is told of every
    sampling step; ``stats``, if given, receives the keyframes' jumps and chroma as the pipeline records
    them; ``user``: the user's colours by frame index (:mod:`hueshift_core.hints`)."""
    plan.check(frames, "colour keyframes")
    work = options.sizes(*plan.sizes.full, model.info.config.multiple).work
    sizes = Sizes(plan.sizes.full, work, plan.sizes.prop)
    colorizer = options.keyframe_colorizer(model, sizes, callback=callback, stats=stats, user=user)
    sampled: list[torch.Tensor] = []

    def colour(f, init, conf):
        ab = colorizer(f, init, conf)
        sampled.append(torch.from_numpy(np.ascontiguousarray(ab)).permute(2, 0, 1))
        return ab

    walker = SegmentWalker(PlanDecisions(plan.keyframes, plan.shot_starts).decide, colour,
                           on_shot=colorizer.start_shot)
    for _ in walker.walk(_analyse(frames, sizes, PlanCuts(plan.shot_starts), None)):
        pass
    return torch.stack(sampled)


def propagate_keyframes(frames: np.ndarray, plan: ClipPlan, key_ab: torch.Tensor,
                        options: PipelineOptions = PipelineOptions(), *, tick: Tick | None = None) -> torch.Tensor:
    """Carry the keyframes' colour (``key_ab`` ``[K, 2, h, w]``, one per plan keyframe, any resolution) to
    every frame along the flow and deflicker it (``options.deflicker``), as the pipeline does -> ab
    ``[N, 2, *prop]`` at the plan's propagation resolution."""
    plan.check(frames, "propagate")
    if key_ab.dim() != 4 or key_ab.shape[:2] != (len(plan.keyframes), 2):
        raise InputError(f"propagate: need colour for the plan's {len(plan.keyframes)} keyframes, [K, 2, h, w]; "
                         f"got {tuple(key_ab.shape)}")
    given = GivenColours(dict(zip(plan.keyframes, to_prop(key_ab, plan.sizes.prop))))
    walker = SegmentWalker(PlanDecisions(plan.keyframes, plan.shot_starts).decide, given)
    filt = Deflicker(options.deflicker)
    out: list[np.ndarray] = []
    for seg in walker.walk(_analyse(frames, plan.sizes, PlanCuts(plan.shot_starts), tick)):
        out += [filt.push(f.l_prop, ab, cut=f.cut, flows=f.flows, conf=f.conf_back)
                for f, ab in zip(seg.frames, fill_segment(seg))]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def finish_frames(frames: np.ndarray, ab: torch.Tensor, method: Upscale | str = Upscale.GUIDED, *,
                  device: torch.device | None = None, tick: Tick | None = None) -> np.ndarray:
    """Upscale chroma ``[N, 2, h, w]`` to the frames' size guided by their L and merge -> uint8 RGB
    ``[N, H, W, 3]`` (the pipeline's last stage, a frame at a time)."""
    _check(frames)
    if ab.dim() != 4 or ab.shape[:2] != (len(frames), 2):
        raise InputError(f"chroma must be [{len(frames)}, 2, h, w] for {len(frames)} frame(s), got {tuple(ab.shape)}")
    if not bool(torch.isfinite(ab).all()):
        raise InputError("chroma contains NaN or infinite values: fix the node or code that made it")
    out = np.empty_like(frames)
    for i, rgb in enumerate(frames):
        l_full = half(frame_l(rgb)[0])
        out[i] = upscale_merge_u8(l_full[None], ab[i:i + 1].permute(0, 2, 3, 1).numpy(), method, device)[0]
        if tick is not None:
            tick(1)
    return out


def deflicker_frames(frames: torch.Tensor, strength: float = 0.5, shot_starts=None) -> torch.Tensor:
    """Steadier colour for any colour clip: RGB ``[N, 3, H, W]`` in [0, 1] -> the same with ab filtered along
    the flow at full resolution (:class:`~hueshift_core.video.deflicker.Deflicker`), restarting at
    ``shot_starts`` (None: cuts detected from the frames). L is kept."""
    l_full, ab = frames_to_lab(frames)
    l_u8 = (l_full[:, 0] * 2.55).round().clamp(0, 255).to(torch.uint8).numpy()
    cuts = detect_cuts(l_u8) if shot_starts is None else list(shot_starts)
    out = deflicker(l_u8, ab.permute(0, 2, 3, 1).numpy(), cuts, strength)
    return merge_to_rgb(l_full, torch.from_numpy(out).permute(0, 3, 1, 2))
