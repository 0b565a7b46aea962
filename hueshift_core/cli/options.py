"""The command line's shared options: the model and colour settings every colouring command takes
(:func:`add_model_arguments`, :func:`sample_options`), the video path's settings (:func:`add_video_arguments`,
:func:`pipeline_options`) and the user's colours (:func:`add_colour_arguments`).
Only :mod:`hueshift_core.cli` imports this module; the library takes :class:`SampleOptions` and data."""

from __future__ import annotations

import argparse

from ..model.diffusion import Sampler
from ..model.sampling import SampleOptions
from ..model.upscale import Upscale
from ..video.keyframes import KeyframeOptions
from ..video.pipeline import MODES, PipelineOptions


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that samples colour."""
    p.add_argument("--model", default=None,
                   help="a shipped model by its name (hueshift-v2 ...) or a HueShift .safetensors file (default: the "
                        "shipped default)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same colours")
    d = SampleOptions()
    p.add_argument("--variety", type=float, default=d.variety,
                   help="0 = the colour prior's colour alone (one fast pass, the same every run); up to 1 = "
                        f"diffusion sampling re-noised from it that far (more varied colours; default {d.variety:g})")
    p.add_argument("--temperature", type=float, default=None,
                   help="colour prior temperature: lower = bolder, more decided colours (default: the model's own)")
    p.add_argument("--balance", type=float, default=None,
                   help="colour prior: how much of its training's bias towards rare, vivid colours to undo, 0-1 "
                        "(higher = safer, greyer colour; default: the model's own)")
    p.add_argument("--chroma", type=float, default=d.chroma,
                   help=f"scale the colour prior's saturation (default {d.chroma:g}: the model's own; video frames are "
                        "first lifted by the model's video saturation)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"diffusion sampling steps (default {d.steps})")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale: higher = more vivid, more decided colours "
                        "(default: the model's own; 1 = off)")
    p.add_argument("--guidance-interval", type=float, nargs=2, default=d.guidance_interval, metavar=("LO", "HI"),
                   help="guide only at the noise levels t/T in [LO, HI]; fewer network passes outside it "
                        f"(default {d.guidance_interval[0]:g} {d.guidance_interval[1]:g})")
    p.add_argument("--sampler", choices=[s.value for s in Sampler], default=Sampler(d.sampler).value,
                   help=f"default {Sampler(d.sampler).value}")
    p.add_argument("--upscale", choices=[u.value for u in Upscale], default=Upscale.GUIDED.value,
                   help="chroma upscale: guided (edge-aware, default) or bicubic (the original's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")


def add_colour_arguments(p: argparse.ArgumentParser, video: bool) -> None:
    """--hints and --reference: the user's colours (:mod:`hueshift_core.hints`)."""
    where = ("; optional \"frame\" (index from 0) or \"time\" (seconds) per hint" if video else "")
    p.add_argument("--hints", default=None, metavar="FILE",
                   help="colour hints: a JSON list of {\"x\": 0.42, \"y\": 0.31, \"color\": \"#b03020\"} (x, y: fractions "
                        f"of width and height; optional \"radius\", a fraction of the short side{where}), or a PNG "
                        "with transparency whose opaque pixels are hints")
    p.add_argument("--reference", action="append", default=None, metavar="IMAGE@FRAME" if video else "IMAGE",
                   help="a colour image (same aspect ratio) whose colour the output takes"
                        + (" at frame FRAME (default 0) and carries through the shot; repeatable" if video else ""))


def sample_options(args: argparse.Namespace, **more) -> SampleOptions:
    """The :class:`SampleOptions` the options of :func:`add_model_arguments` ask for (``more``: the rest)."""
    return SampleOptions(steps=args.steps, sampler=Sampler(args.sampler), seed=args.seed, guidance=args.guidance,
                         guidance_interval=tuple(args.guidance_interval), variety=args.variety,
                         temperature=args.temperature, chroma=args.chroma, balance=args.balance, **more)


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    """The video path's options (every command that colours videos): mode, keyframes, shots, deflicker."""
    d = PipelineOptions()
    p.add_argument("--mode", choices=MODES, default=d.mode,
                   help="keyframes: diffusion on keyframes, colour carried along optical flow (default); "
                        "per-frame: every frame through diffusion (the original's method, much slower)")
    p.add_argument("--deflicker", type=float, default=d.deflicker,
                   help=f"temporal filter strength in [0, 1); 0 = off (default {d.deflicker})")
    p.add_argument("--max-gap", type=int, default=d.keyframes.max_gap,
                   help=f"at most this many frames between keyframes (default {d.keyframes.max_gap})")
    p.add_argument("--warm-start", type=float, default=d.warm_start,
                   help="later keyframes of a shot start from the carried colour re-noised to this strength "
                        f"(1 = sample each keyframe from scratch; default {d.warm_start})")
    p.add_argument("--no-consensus", action="store_true",
                   help="each keyframe keeps the colour carried into it where it tracks, instead of the mean of "
                        "the colour prior's views of the shot's keyframes so far (the default): for a shot whose "
                        "colours really change, e.g. lights switched on")


def pipeline_options(args: argparse.Namespace, **sample) -> PipelineOptions:
    """The :class:`PipelineOptions` the options of :func:`add_video_arguments` and :func:`add_model_arguments`
    ask for (``sample``: more :class:`SampleOptions` fields, e.g. ``batch_size``)."""
    return PipelineOptions(mode=args.mode, sample=sample_options(args, **sample),
                           keyframes=KeyframeOptions(max_gap=args.max_gap), deflicker=args.deflicker,
                           upscale=args.upscale, warm_start=args.warm_start, consensus=not args.no_consensus)
