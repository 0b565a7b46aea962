"""Colour from the model and back to full resolution: HueShiftDDPMColorize, HueShiftLABUpscale."""

from __future__ import annotations

import torch

from ..hueshift_core.errors import InputError
from ..hueshift_core.images import sample_frames_ab
from ..hueshift_core.model.diffusion import Sampler
from ..hueshift_core.model.sampling import SampleOptions, for_video
from ..hueshift_core.model.upscale import Upscale
from ..hueshift_core.video import staged
from ..hueshift_core.video.pipeline import PipelineOptions
from .comfy_compat import io, ui
from .common import (
    CATEGORY,
    CHROMA,
    HINTS,
    KEYFRAMES,
    MODEL,
    Chroma,
    colour_inputs,
    colour_note,
    colour_options,
    frames_to_images,
    images_to_frames,
    images_to_u8,
    progress,
    shot_consensus_input,
)
from .hints import UserHints
from .model import HueShiftModel

SEED_MAX = 0xFFFFFFFFFFFFFFFF


class DDPMColorize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftDDPMColorize",
            display_name="HueShift DDPM Colorize",
            category=CATEGORY,
            description="Colour (LAB chroma at the working resolution) from the model: its colour prior, and at "
                        "variety > 0 diffusion sampling around it; for the keyframes when a keyframe plan is "
                        "connected, else for every frame independently. Takes your hints. Video frames (a keyframe "
                        "plan, or more than one image) get the model's video saturation, one image its photo colour.",
            inputs=[
                io.Image.Input("images", tooltip="Grey frames (a colour input is turned grey first: only its "
                                                 "lightness is used)."),
                MODEL.Input("model", tooltip="From HueShift Model Loader."),
                io.Int.Input("steps", default=SampleOptions.steps, min=1, max=1000,
                             tooltip="Sampling steps: more is slower; 8 suit dpmpp_2m, ddim wants about 25."),
                io.Combo.Input("sampler", options=[s.value for s in Sampler], default=Sampler.DPMPP_2M.value,
                               tooltip="ddim: deterministic and fast; ddpm: the original ancestral sampler "
                                       "(needs many steps); dpmpp_2m: good results in 8-20 steps."),
                io.Int.Input("seed", default=0, min=0, max=SEED_MAX, control_after_generate=True,
                             tooltip="Random seed: the same seed gives the same colours."),
                *colour_inputs(io),
                io.Int.Input("batch_size", default=SampleOptions.batch_size, min=1, max=256,
                             tooltip="Frames sampled together: larger is faster on a GPU and needs more memory."),
                io.Int.Input("working_size", default=SampleOptions.short_side, min=8, max=512, step=8,
                             tooltip="Short side (pixels, a multiple of 8) at which the model samples colour. "
                                     "The shipped model was trained at 64."),
                shot_consensus_input(io, "With a keyframe plan: "),
                KEYFRAMES.Input("keyframes", optional=True,
                                tooltip="Optional plan from HueShift Keyframe Select: colour only its keyframes "
                                        "(then propagate). Without it every frame is coloured independently."),
                HINTS.Input("hints", optional=True,
                            tooltip="Optional, from Colour Hints / Reference Frames: your colours for some frames "
                                    "(connect the same hints to Keyframe Select)."),
            ],
            outputs=[CHROMA.Output(display_name="chroma",
                                   tooltip="Colour (ab) of the keyframes, or of every frame, at the working size.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, model: HueShiftModel, steps: int, sampler: str, seed: int,
                batch_size: int, working_size: int, shot_consensus: bool = PipelineOptions.consensus,
                keyframes: staged.ClipPlan | None = None,
                variety: float = SampleOptions.variety, temperature: float = 0.0,
                chroma: float = SampleOptions.chroma, hints: UserHints | None = None) -> io.NodeOutput:
        frames = images_to_frames(images)
        user = hints.resolve(*frames.shape[-2:], frames.shape[0]) if hints is not None else {}
        note = colour_note(images, "HueShift DDPM Colorize")
        options = SampleOptions(steps=steps, sampler=sampler, seed=seed, short_side=working_size, batch_size=batch_size,
                                **colour_options(variety, temperature, chroma))
        if keyframes is None:  # every frame on its own, in batches; frames at the video path's saturation
            video = for_video(model.for_sampling(), options) if frames.shape[0] > 1 else options
            bar = progress(-(-frames.shape[0] // batch_size) * steps)
            ab = sample_frames_ab(model.for_sampling(), frames, video, callback=bar)
            for i, colour in user.items():  # the user's colours, frame by frame (as the pipeline: unscaled)
                ab[i] = sample_frames_ab(model.for_sampling(), frames[i:i + 1], options, hints=colour)[0]
            bar.finish()  # the colour prior alone (variety 0) is one pass, not `steps`
            indices = tuple(range(frames.shape[0]))
        else:  # the keyframes in order, as the pipeline samples them (per-shot seeds, warm starts)
            u8 = images_to_u8(images)
            keyframes.check(u8, "DDPM Colorize")
            missing = sorted(set(user) - set(keyframes.keyframes))
            if missing:
                raise InputError(f"DDPM Colorize: frame {missing[0]} has hints but is not a keyframe of the plan: connect "
                                 "the same hints to Keyframe Select")
            bar = progress(len(keyframes.keyframes) * steps)
            ab = staged.colour_keyframes(model.for_sampling(), u8, keyframes, PipelineOptions(sample=options, consensus=bool(shot_consensus)),
                                         callback=bar, user=user)
            bar.finish()  # warm-started keyframes take fewer steps
            indices = keyframes.keyframes
        chroma = Chroma(ab=ab, frames=indices, num_frames=frames.shape[0], source_size=tuple(frames.shape[-2:]))
        return io.NodeOutput(chroma, ui=ui.PreviewText(note) if note else None)


class LABUpscale(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftLABUpscale",
            display_name="HueShift LAB Upscale",
            category=CATEGORY,
            description="Puts the colour back on the full-resolution frames: chroma is upscaled (edge-aware with "
                        "'guided') and merged with the frames' own lightness.",
            inputs=[
                io.Image.Input("images", tooltip="The full-resolution frames whose lightness (L) is kept: the same "
                                                 "clip the chroma was made from, at any size with the same aspect."),
                CHROMA.Input("chroma", tooltip="From DDPM Colorize or Propagate."),
                io.Combo.Input("method", options=[u.value for u in Upscale], default=Upscale.GUIDED.value,
                               tooltip="guided: follows luminance edges (recommended); bicubic: plain resize."),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="Colour frames at the size of 'images'; only "
                                                                     "the frames the chroma covers.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, chroma: Chroma, method: str) -> io.NodeOutput:
        frames = images_to_u8(images)
        n = frames.shape[0]
        if n == chroma.num_frames:
            frames = frames[list(chroma.frames)] if not chroma.complete else frames
        elif n != len(chroma.frames):
            raise InputError(f"LAB Upscale: 'images' has {n} frames but the chroma is for a clip of "
                             f"{chroma.num_frames} frames ({len(chroma.frames)} coloured): connect the same frames")
        bar = progress(frames.shape[0])
        out = staged.finish_frames(frames, chroma.ab, method, tick=bar.advance)
        return io.NodeOutput(frames_to_images(torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)))
