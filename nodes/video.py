"""Video files in and out: HueShiftLoadVideoFrames and the streaming HueShiftColorizeVideoFile."""

from __future__ import annotations

import os

import torch

from ..hueshift_core.errors import HueShiftError, VideoError
from ..hueshift_core.model.lab import to_grey
from ..hueshift_core.model.diffusion import Sampler
from ..hueshift_core.model.sampling import SampleOptions
from ..hueshift_core.model.upscale import Upscale
from ..hueshift_core.video import probe, read_frames
from ..hueshift_core.video.files import check_video_io, colorize_video
from ..hueshift_core.video.keyframes import KeyframeOptions
from ..hueshift_core.video.pipeline import MODES, PipelineOptions
from .colorize import SEED_MAX
from .comfy_compat import VideoFromFile, io, ui
from .common import (
    CATEGORY,
    LOG,
    HINTS,
    MODEL,
    colour_inputs,
    colour_options,
    frames_to_images,
    list_input_videos,
    output_file,
    progress,
    resolve_input_file,
    shot_consensus_input,
)
from .hints import UserHints
from .model import DEFAULT, HueShiftModel, load, model_path


def _video_inputs() -> list:
    return [
        io.Combo.Input("video", options=list_input_videos(), upload=io.UploadType.video,
                       tooltip="A video in ComfyUI's input folder (upload one with the button)."),
        io.String.Input("path", default="",
                        tooltip="Optional: a path relative to ComfyUI's input folder, e.g. clips/shot1.mp4. "
                                "When set it is used instead of 'video'. Paths outside the input folder are refused."),
    ]


def _source(video: str, path: str) -> str:
    return resolve_input_file(path if path.strip() else video)


def _check_source(video: str, path: str) -> bool | str:
    try:
        src = _source(video, path)
        probe(src)
    except HueShiftError as err:
        return str(err)
    return True


def free_memory() -> int | None:
    """Available RAM in bytes (psutil, a ComfyUI dependency; else POSIX sysconf), or None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def _check_memory(info, frames: int, max_size: int) -> None:
    """Refuse, before decoding, an IMAGE batch larger than half the free RAM (ComfyUI would be killed)."""
    scale = min(1.0, max_size / max(info.width, info.height)) if max_size else 1.0
    need = frames * round(info.width * scale) * round(info.height * scale) * 3 * 4
    free = free_memory()
    if free is not None and need > free / 2:
        raise VideoError(f"{frames} frames of {info.width}x{info.height} need {need / 2**30:.1f} GiB as an IMAGE batch, "
                         f"more than half the free memory ({free / 2**30:.1f} GiB): set frame_cap, every_nth or "
                         "max_size, or use HueShift Colorize Video File, which streams")


class LoadVideoFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftLoadVideoFrames",
            display_name="HueShift Load Video Frames",
            category=CATEGORY,
            description="Decodes a video into an IMAGE batch (all frames in memory: cap or subsample long videos, "
                        "or use HueShift Colorize Video File).",
            inputs=_video_inputs() + [
                io.Int.Input("frame_cap", default=0, min=0, max=1_000_000,
                             tooltip="Read at most this many frames (0 = all)."),
                io.Int.Input("skip_first", default=0, min=0, max=1_000_000,
                             tooltip="Skip this many frames at the start."),
                io.Int.Input("every_nth", default=1, min=1, max=1000,
                             tooltip="Keep one frame in N (the fps output is divided by N)."),
                io.Int.Input("max_size", default=0, min=0, max=16384,
                             tooltip="Shrink frames so the long side is at most this many pixels (0 = keep the "
                                     "video's size). Aspect ratio is kept."),
                io.Boolean.Input("grey", default=True,
                                 tooltip="Keep only the lightness of each frame (a grey video stays as it is). "
                                         "Turn off to load colour frames, e.g. to compare with the original."),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="The frames, [frames, height, width, 3]."),
                     io.Float.Output(display_name="fps", tooltip="Frame rate of the frames returned."),
                     io.Int.Output(display_name="frame_count", tooltip="Number of frames returned.")],
        )

    @classmethod
    def validate_inputs(cls, video: str, path: str) -> bool | str:
        return _check_source(video, path)

    @classmethod
    def fingerprint_inputs(cls, video: str, path: str, frame_cap: int, skip_first: int, every_nth: int,
                           max_size: int, grey: bool) -> str:
        try:
            src = _source(video, path)
            return f"{src}:{os.path.getmtime(src)}:{frame_cap}:{skip_first}:{every_nth}:{max_size}:{grey}"
        except (HueShiftError, OSError):
            return ""

    @classmethod
    def execute(cls, video: str, path: str, frame_cap: int, skip_first: int, every_nth: int, max_size: int,
                grey: bool) -> io.NodeOutput:
        src = _source(video, path)
        info = probe(src)
        left = max(1, -(-(info.frame_count - skip_first) // every_nth))
        count = min(left, frame_cap) if frame_cap else left
        _check_memory(info, count, max_size)
        bar = progress(count)
        batches = []
        for batch in read_frames(src, 16, start=skip_first, max_frames=frame_cap or None,
                                               every_nth=every_nth, max_side=max_size or None):
            frames = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
            batches.append(to_grey(frames) if grey else frames)
            bar.advance(len(batch))
        if not batches:
            raise VideoError(f"{os.path.basename(src)} has no frames after skipping {skip_first}: lower skip_first")
        frames = torch.cat(batches)
        fps = float(info.fps) / every_nth
        text = (f"{frames.shape[0]} frames, {frames.shape[-1]}x{frames.shape[-2]}, {fps:.3f} fps, from "
                f"{os.path.basename(src)}" + ("" if grey else " (colour kept)"))
        return io.NodeOutput(frames_to_images(frames), fps, int(frames.shape[0]), ui=ui.PreviewText(text))


class ColorizeVideoFile(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftColorizeVideoFile",
            display_name="HueShift Colorize Video File",
            category=CATEGORY,
            description="Colorizes a whole video file into ComfyUI's output folder in one streaming pass (keyframes, "
                        "colour, propagation, deflicker, upscale): memory does not grow with the video's length, so "
                        "use it for videos too long to load as an IMAGE batch. Keeps size, frame rate and audio.",
            inputs=_video_inputs() + [
                io.String.Input("filename_prefix", default="HueShift/colorized",
                                tooltip="Output name inside ComfyUI's output folder; a counter and .mp4 are added."),
                io.Combo.Input("mode", options=list(MODES), default="keyframes",
                               tooltip="keyframes: the model colours a few keyframes, propagated along optical flow "
                                       "(fast, steady); per-frame: every frame through the model (slow baseline)."),
                io.Int.Input("steps", default=SampleOptions.steps, min=1, max=1000,
                             tooltip="Sampling steps per keyframe (8 suit dpmpp_2m; ddim wants about 25)."),
                io.Combo.Input("sampler", options=[s.value for s in Sampler], default=Sampler.DPMPP_2M.value,
                               tooltip="Diffusion sampler (dpmpp_2m: few steps, deterministic; ddim: deterministic)."),
                io.Int.Input("seed", default=0, min=0, max=SEED_MAX, control_after_generate=True,
                             tooltip="Random seed: the same seed gives the same colours."),
                *colour_inputs(io),
                io.Int.Input("working_size", default=SampleOptions.short_side, min=8, max=512, step=8,
                             tooltip="Short side (pixels, multiple of 8) at which the model samples colour."),
                io.Int.Input("max_gap", default=KeyframeOptions.max_gap, min=1, max=10000,
                             tooltip="At most this many frames between two keyframes of one shot."),
                io.Float.Input("deflicker", default=PipelineOptions.deflicker, min=0.0, max=0.95, step=0.05,
                               tooltip="Temporal smoothing of colour along the flow (0 = off)."),
                io.Combo.Input("upscale", options=[u.value for u in Upscale], default=Upscale.GUIDED.value,
                               tooltip="Chroma upscale: guided (edge-aware) or bicubic."),
                io.Int.Input("frame_cap", default=0, min=0, max=100_000_000,
                             tooltip="Colorize at most this many frames from the start (0 = the whole video)."),
                shot_consensus_input(io),
                MODEL.Input("model", optional=True,
                            tooltip="Optional: a model from HueShift Model Loader (default: the shipped model)."),
                HINTS.Input("hints", optional=True,
                            tooltip="Optional, from Colour Hints / Reference Frames: your colours for some frames, "
                                    "carried through their shots."),
            ],
            outputs=[io.Video.Output(display_name="video", tooltip="The colorized file, for Save Video or preview."),
                     io.String.Output(display_name="path", tooltip="Full path of the colorized file.")],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, video: str, path: str) -> bool | str:
        return _check_source(video, path)

    @classmethod
    def execute(cls, video: str, path: str, filename_prefix: str, mode: str, steps: int, sampler: str, seed: int,
                working_size: int, max_gap: int, deflicker: float, upscale: str, frame_cap: int,
                shot_consensus: bool = PipelineOptions.consensus, model: HueShiftModel | None = None, variety: float = SampleOptions.variety,
                temperature: float = 0.0, chroma: float = SampleOptions.chroma,
                hints: UserHints | None = None) -> io.NodeOutput:
        src = _source(video, path)
        if model is None:
            model = load(model_path(DEFAULT))
        options = PipelineOptions(
            mode=mode, sample=SampleOptions(steps=steps, sampler=sampler, seed=seed, short_side=working_size,
                                            **colour_options(variety, temperature, chroma)),
            keyframes=KeyframeOptions(max_gap=max_gap), deflicker=deflicker, upscale=upscale,
            consensus=bool(shot_consensus))
        dst, file, subfolder = output_file(filename_prefix, ".mp4")
        info = check_video_io(src, dst)
        n = min(info.frame_count, frame_cap) if frame_cap else info.frame_count
        user = hints.resolve(info.height, info.width, n, float(info.fps)) if hints is not None else None
        bar = progress(n)
        result = colorize_video(src, dst, model.for_sampling(), options, progress=bar.advance,
                                         max_frames=frame_cap or None, info=info, hints=user)
        text = (f"{result.frames} frames {result.width}x{result.height} in {result.seconds:.1f} s: {result.keyframes} "
                f"keyframes, {result.shots} shot(s) -> {subfolder}/{file}")
        if result.colour_input:
            text += ("\nThe input video is in colour: HueShift turned it grey first and used only its lightness.")
            LOG.warning("HueShift Colorize Video File: %s is in colour; only its lightness was used", src)
        saved = ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]).as_dict()
        return io.NodeOutput(VideoFromFile(dst), dst, ui={**saved, **ui.PreviewText(text).as_dict()})
