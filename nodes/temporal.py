"""Across frames: HueShiftKeyframeSelect, HueShiftPropagate, HueShiftDeflicker.

Adapters over hueshift_core.video.staged, which composes the streaming pipeline's own stages over a clip
in memory: Keyframe Select -> DDPM Colorize -> Propagate -> LAB Upscale gives the colours
HueShift Colorize Video File (and ``hueshift colorize``) gives for the same clip, seed and settings.
"""

from __future__ import annotations

import torch

from ..hueshift_core.errors import InputError
from ..hueshift_core.model.sampling import SampleOptions
from ..hueshift_core.video import staged
from ..hueshift_core.video.keyframes import KeyframeOptions
from ..hueshift_core.video.pipeline import PipelineOptions
from .comfy_compat import io, ui
from .common import (CATEGORY, CHROMA, HINTS, KEYFRAMES, Chroma, frames_to_images, images_to_frames, images_to_u8,
                     progress)
from .hints import UserHints

ANALYSIS_TOOLTIP = ("Short side (pixels) of the copy of the frames on which cuts, optical flow, propagation and "
                    "deflicker run; 128 (twice the model's working size) is what HueShift Colorize Video File uses.")


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
                io.Int.Input("max_gap", default=KeyframeOptions.max_gap, min=1, max=10000,
                             tooltip="At most this many frames between two keyframes of one shot."),
                io.Float.Input("cut_threshold", default=KeyframeOptions.cut_threshold, min=0.01, max=2.0, step=0.01,
                               tooltip="How different the lightness histograms of consecutive frames must be for a "
                                       "cut (L1 distance, 0..2; lower finds more cuts)."),
                io.Float.Input("track_threshold", default=KeyframeOptions.track_threshold, min=0.0, max=1.0, step=0.05,
                               tooltip="A new keyframe is taken when less than this share of the pixels still "
                                       "tracks back to the last keyframe."),
                io.Int.Input("analysis_size", default=128, min=16, max=1024, step=16, tooltip=ANALYSIS_TOOLTIP),
                HINTS.Input("hints", optional=True,
                            tooltip="Optional, from Colour Hints / Reference Frames: those frames become keyframes "
                                    "(connect the same hints to DDPM Colorize)."),
            ],
            outputs=[KEYFRAMES.Output(display_name="keyframes", tooltip="The plan: keyframe indices and shot starts."),
                     io.Int.Output(display_name="keyframe_count", tooltip="How many keyframes were chosen.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, max_gap: int, cut_threshold: float, track_threshold: float,
                analysis_size: int, hints: UserHints | None = None) -> io.NodeOutput:
        frames = images_to_u8(images)
        force = ()
        if hints is not None:  # checked against the clip here, where the user sees it first
            force = tuple(sorted(hints.resolve(*frames.shape[1:3], len(frames))))
        bar = progress(len(frames))
        options = PipelineOptions(sample=SampleOptions(short_side=max(8, analysis_size // 16 * 8)),
                                  keyframes=KeyframeOptions(cut_threshold=cut_threshold, max_gap=max_gap,
                                                            track_threshold=track_threshold))
        plan = staged.plan_keyframes(frames, options, tick=bar.advance, force=force)
        text = (f"{len(plan.keyframes)} keyframes in {len(plan.shot_starts)} shot(s) of {len(frames)} frames: "
                f"keyframes {list(plan.keyframes)}, shots start at {list(plan.shot_starts)}")
        return io.NodeOutput(plan, len(plan.keyframes), ui=ui.PreviewText(text))


class Propagate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftPropagate",
            display_name="HueShift Propagate",
            category=CATEGORY,
            description="Carries the keyframes' colour to every frame of their shot along optical flow, blending the "
                        "keyframe before and the keyframe after by distance and flow confidence, then steadies it "
                        "over time (deflicker).",
            inputs=[
                io.Image.Input("images", tooltip="The clip's frames (the same ones given to Keyframe Select)."),
                KEYFRAMES.Input("keyframes", tooltip="From HueShift Keyframe Select."),
                CHROMA.Input("chroma", tooltip="The keyframes' colour, from HueShift DDPM Colorize."),
                io.Float.Input("deflicker", default=PipelineOptions.deflicker, min=0.0, max=0.95, step=0.05,
                               tooltip="Temporal smoothing of the colour along the flow, at the propagation "
                                       "resolution (0 = off); 0.5 is what HueShift Colorize Video File uses."),
            ],
            outputs=[CHROMA.Output(display_name="chroma", tooltip="Colour for every frame, at the analysis "
                                                                  "resolution of Keyframe Select.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, keyframes: staged.ClipPlan, chroma: Chroma,
                deflicker: float) -> io.NodeOutput:
        frames = images_to_u8(images)
        n = len(frames)
        if chroma.num_frames != n or chroma.frames != keyframes.keyframes:
            raise InputError(f"Propagate: the chroma covers frames {list(chroma.frames)[:8]} of a {chroma.num_frames}-"
                             f"frame clip, but the images have {n} frames and the keyframes are "
                             f"{list(keyframes.keyframes)[:8]}: connect the same images and keyframe plan to DDPM "
                             "Colorize and Propagate")
        bar = progress(n)
        ab = staged.propagate_keyframes(frames, keyframes, chroma.ab, PipelineOptions(deflicker=deflicker),
                                        tick=bar.advance)
        return io.NodeOutput(Chroma(ab=ab, frames=tuple(range(n)), num_frames=n, source_size=chroma.source_size))


class Deflicker(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftDeflicker",
            display_name="HueShift Deflicker",
            category=CATEGORY,
            description="Smooths colour over time along optical flow (a recursive filter on the a/b channels), "
                        "keeping each frame's lightness; restarts at every cut. For any colour clip, e.g. frames "
                        "coloured one by one; the keyframe graph needs none (Propagate already deflickers).",
            inputs=[
                io.Image.Input("images", tooltip="Colour frames (e.g. from LAB Upscale of per-frame chroma)."),
                io.Float.Input("strength", default=0.5, min=0.0, max=0.95, step=0.05,
                               tooltip="0 keeps the input; higher carries more of the previous frame's colour."),
                KEYFRAMES.Input("keyframes", optional=True,
                                tooltip="Optional plan from Keyframe Select: its shot starts are where the filter "
                                        "restarts. Without it, cuts are detected from the frames."),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="The frames with steadier colour.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, strength: float, keyframes: staged.ClipPlan | None = None
                ) -> io.NodeOutput:
        frames = images_to_frames(images)
        n = frames.shape[0]
        bar = progress(n)
        if keyframes is not None and keyframes.num_frames != n:
            raise InputError(f"Deflicker: the keyframe plan is for a clip of {keyframes.num_frames} frames, not these "
                             f"{n}: connect the same frames")
        out = staged.deflicker_frames(frames, strength, None if keyframes is None else keyframes.shot_starts)
        bar.advance(n)
        return io.NodeOutput(frames_to_images(out))
