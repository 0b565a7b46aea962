"""Across frames: HueShiftKeyframeSelect, HueShiftPropagate, HueShiftDeflicker.

They run hueshift_core's batch functions (keyframes.select_keyframes, propagate.propagate,
deflicker.deflicker) on the frames' lightness at the analysis resolution, as the streaming
pipeline does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..hueshift_core.colorize import frames_to_lab, merge_to_rgb
from ..hueshift_core.errors import InputError
from .comfy_compat import io, ui
from .common import (
    CATEGORY,
    CHROMA,
    KEYFRAMES,
    Chroma,
    analysis_l,
    analysis_shape,
    core,
    frames_to_images,
    images_to_frames,
    progress,
)

ANALYSIS_TOOLTIP = ("Short side (pixels) of the copy of the frames on which optical flow and cuts are computed; "
                    "128 is what HueShift Colorize Video File uses.")


class KeyframeSelect(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftKeyframeSelect",
            display_name="HueShift Keyframe Select",
            category=CATEGORY,
            description="Finds the shot cuts and picks the keyframes to colour with the model: the first frame of "
                        "every shot, and again when the content has moved on (tracked along optical flow).",
            inputs=[
                io.Image.Input("images", tooltip="The clip's frames (grey or colour: only lightness is used)."),
                io.Int.Input("max_gap", default=48, min=1, max=10000,
                             tooltip="At most this many frames between two keyframes of one shot."),
                io.Float.Input("cut_threshold", default=0.35, min=0.01, max=2.0, step=0.01,
                               tooltip="How different the lightness histograms of consecutive frames must be for a "
                                       "cut (L1 distance, 0..2; lower finds more cuts)."),
                io.Float.Input("track_threshold", default=0.3, min=0.0, max=1.0, step=0.05,
                               tooltip="A new keyframe is taken when less than this share of the pixels still "
                                       "tracks back to the last keyframe."),
                io.Int.Input("analysis_size", default=128, min=16, max=1024, step=8, tooltip=ANALYSIS_TOOLTIP),
            ],
            outputs=[KEYFRAMES.Output(display_name="keyframes", tooltip="The plan: keyframe indices and shot starts."),
                     io.Int.Output(display_name="keyframe_count", tooltip="How many keyframes were chosen.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, max_gap: int, cut_threshold: float, track_threshold: float,
                analysis_size: int) -> io.NodeOutput:
        frames = images_to_frames(images)
        bar = progress(frames.shape[0])
        keyframes = core("keyframes")
        options = keyframes.KeyframeOptions(cut_threshold=cut_threshold, max_gap=max_gap,
                                            track_threshold=track_threshold)
        l_small = analysis_l(frames, analysis_shape(*frames.shape[-2:], analysis_size))
        plan = keyframes.select_keyframes(l_small, options)  # TODO(core): no per-frame callback yet
        bar.advance(frames.shape[0])
        text = (f"{len(plan.keyframes)} keyframes in {len(plan.shot_starts)} shot(s) of {frames.shape[0]} frames: "
                f"keyframes {plan.keyframes}, shots start at {plan.shot_starts}")
        return io.NodeOutput(plan, len(plan.keyframes), ui=ui.PreviewText(text))


class Propagate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftPropagate",
            display_name="HueShift Propagate",
            category=CATEGORY,
            description="Carries the keyframes' colour to every frame of their shot along optical flow, blending the "
                        "keyframe before and the keyframe after by distance and flow confidence.",
            inputs=[
                io.Image.Input("images", tooltip="The clip's frames (the same ones given to Keyframe Select)."),
                KEYFRAMES.Input("keyframes", tooltip="From HueShift Keyframe Select."),
                CHROMA.Input("chroma", tooltip="The keyframes' colour, from HueShift DDPM Colorize."),
                io.Int.Input("scale", default=2, min=1, max=16,
                             tooltip="Propagation resolution = the chroma's working resolution x this (capped at the "
                                     "frame size). 2 is what HueShift Colorize Video File uses."),
            ],
            outputs=[CHROMA.Output(display_name="chroma", tooltip="Colour for every frame, at the propagation "
                                                                  "resolution.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, keyframes, chroma: Chroma, scale: int) -> io.NodeOutput:
        frames = images_to_frames(images)
        n = frames.shape[0]
        if chroma.num_frames != n or set(keyframes.keyframes) - set(chroma.frames) or keyframes.keyframes[-1] >= n:
            raise InputError(f"Propagate: the chroma covers frames {list(chroma.frames)[:8]} of a {chroma.num_frames}-"
                             f"frame clip, but the images have {n} frames and the keyframes are "
                             f"{keyframes.keyframes[:8]}: connect the same images and keyframe plan to DDPM Colorize "
                             "and Propagate")
        bar = progress(n)
        h, w = chroma.ab.shape[-2:]
        size = (min(frames.shape[-2], h * scale), min(frames.shape[-1], w * scale))
        ab = F.interpolate(chroma.ab, size=size, mode="bicubic", align_corners=False)
        key_ab = {k: ab[chroma.frames.index(k)].permute(1, 2, 0).numpy() for k in keyframes.keyframes}
        out = core("propagate").propagate(analysis_l(frames, size), key_ab, keyframes.shot_starts)
        bar.advance(n)  # TODO(core): propagate() has no per-frame callback yet
        return io.NodeOutput(Chroma(ab=torch.from_numpy(out).permute(0, 3, 1, 2).contiguous(), frames=tuple(range(n)),
                                    num_frames=n, source_size=chroma.source_size))


class Deflicker(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftDeflicker",
            display_name="HueShift Deflicker",
            category=CATEGORY,
            description="Smooths colour over time along optical flow (a recursive filter on the a/b channels), "
                        "keeping each frame's lightness; restarts at every cut.",
            inputs=[
                io.Image.Input("images", tooltip="Colour frames (e.g. from LAB Upscale)."),
                io.Float.Input("strength", default=0.5, min=0.0, max=0.95, step=0.05,
                               tooltip="0 keeps the input; higher carries more of the previous frame's colour."),
                KEYFRAMES.Input("keyframes", optional=True,
                                tooltip="Optional plan from Keyframe Select: its shot starts are where the filter "
                                        "restarts. Without it, cuts are detected from the frames."),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="The frames with steadier colour.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, strength: float, keyframes=None) -> io.NodeOutput:
        frames = images_to_frames(images)
        n = frames.shape[0]
        bar = progress(n)
        l_full, ab = frames_to_lab(frames)
        l_u8 = analysis_l(frames, tuple(frames.shape[-2:]))
        if keyframes is None:
            cuts = core("keyframes").detect_cuts(l_u8)
        elif keyframes.keyframes[-1] < n:
            cuts = keyframes.shot_starts
        else:
            raise InputError(f"Deflicker: the keyframe plan is for a longer clip than these {n} frames")
        out = core("deflicker").deflicker(l_u8, ab.permute(0, 2, 3, 1).numpy(), cuts, strength)
        bar.advance(n)  # TODO(core): deflicker() has no per-frame callback yet
        return io.NodeOutput(frames_to_images(merge_to_rgb(l_full, torch.from_numpy(out).permute(0, 3, 1, 2))))
