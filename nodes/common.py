"""What every HueShift node shares: socket types, layout conversion, paths, device, progress.

Layouts: ComfyUI's IMAGE is ``[B, H, W, C]`` float32 in [0, 1] on the CPU; hueshift_core works
on ``[B, 3, H, W]``. Paths: every file a node reads lies inside ComfyUI's input folder and
every file it writes inside the output folder, after symlinks are resolved.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..hueshift_core import threads
from ..hueshift_core.errors import InputError, VideoError
from ..hueshift_core.images import check_frames
from ..hueshift_core.model.lab import is_grey
from ..hueshift_core.model.sampling import SampleOptions
from ..hueshift_core.video import staged
from ..hueshift_core.video.pipeline import PipelineOptions
from .comfy_compat import ProgressBar, folder_paths, io, model_management

CATEGORY = "HueShift"
LOG = logging.getLogger("HueShift")

MODEL = io.Custom("HUESHIFT_MODEL")
KEYFRAMES = io.Custom("HUESHIFT_KEYFRAMES")
CHROMA = io.Custom("HUESHIFT_CHROMA")
HINTS = io.Custom("HUESHIFT_HINTS")  # the user's colours: nodes/hints.py

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".gif")


# --- layouts ------------------------------------------------------------------------------------

def images_to_frames(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """ComfyUI IMAGE ``[B, H, W, C]`` (C = 1, 3 or 4) in [0, 1] -> RGB ``[B, 3, H, W]`` float32 on the CPU."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] not in (1, 3, 4):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"{name} must be an IMAGE batch [frames, height, width, 3], got {shape}")
    if images.shape[0] == 0:
        raise InputError(f"{name} is empty (0 frames)")
    x = images[..., :3] if images.shape[-1] >= 3 else images.expand(-1, -1, -1, 3)
    return x.to(device="cpu", dtype=torch.float32).permute(0, 3, 1, 2).contiguous()


def frames_to_images(frames: torch.Tensor) -> torch.Tensor:
    """RGB ``[B, 3, H, W]`` in [0, 1] -> ComfyUI IMAGE ``[B, H, W, 3]`` float32 on the intermediate device."""
    out = frames.permute(0, 2, 3, 1).clamp(0.0, 1.0).to(torch.float32).contiguous()
    return out.to(model_management.intermediate_device())


def images_to_u8(images: torch.Tensor, name: str = "images") -> np.ndarray:
    """ComfyUI IMAGE ``[B, H, W, C]`` in [0, 1] -> uint8 RGB ``[B, H, W, 3]``, what the video stages read
    (frames loaded from 8-bit video come back exactly). NaN/infinite values and values outside [0, 1] are
    refused with an :class:`InputError` that says what to fix."""
    return staged.float_frames_to_u8(check_frames(images_to_frames(images, name), name).permute(0, 2, 3, 1))


def colour_note(images: torch.Tensor, node: str) -> str | None:
    """If the IMAGE batch has colour (:func:`hueshift_core.model.lab.is_grey` says no), log that only its
    lightness is used and return that message."""
    # every 8th pixel each way, as the pipeline checks frames: a colour clip shows it there too, and a long
    # IMAGE batch is not converted to LAB whole
    if images.shape[-1] < 3 or is_grey(images[:, ::8, ::8, :3].permute(0, 3, 1, 2).float()):
        return None
    msg = (f"{node}: the input frames are in colour; HueShift turned them grey first and used only their "
           "lightness (L). Feed grey frames to silence this note.")
    LOG.warning(msg)
    return msg


# --- paths ------------------------------------------------------------------------------------

def _inside(path: str, folder: str) -> bool:
    folder = os.path.realpath(folder)
    return os.path.commonpath([os.path.realpath(path), folder]) == folder


def resolve_input_file(name: str) -> str:
    """A file name relative to ComfyUI's input folder -> its real path; refuses escapes and symlinks out.

    ``name`` may end in ComfyUI's `` [input]`` annotation. Absolute paths, ``..`` that leaves the
    folder and links pointing outside it are refused with an :class:`InputError`.
    """
    name = (name or "").strip()
    if name.endswith("[input]"):
        name = name[: -len("[input]")].rstrip()
    if not name:
        raise InputError("no video chosen: pick a file from ComfyUI's input folder (or upload one)")
    base = folder_paths.get_input_directory()
    if os.path.isabs(name) or not _inside(os.path.join(base, name), base):
        raise InputError(f"'{name}' is outside ComfyUI's input folder; HueShift only reads files inside {base}")
    path = os.path.realpath(os.path.join(base, name))
    if not os.path.isfile(path):
        raise VideoError(f"'{name}' not found in ComfyUI's input folder {base}")
    return path


def list_input_videos() -> list[str]:
    """Video files in ComfyUI's input folder (top level, as core LoadVideo lists them)."""
    base = folder_paths.get_input_directory()
    try:
        files = [f for f in os.listdir(base) if os.path.isfile(os.path.join(base, f))]
    except OSError:
        return []
    return sorted(f for f in files if f.lower().endswith(VIDEO_EXTENSIONS))


def output_file(filename_prefix: str, extension: str) -> tuple[str, str, str]:
    """A new file in ComfyUI's output folder -> (path, file name, subfolder); refuses escapes.

    Names follow ComfyUI's savers: ``<prefix>_00001_.mp4``, counting up.
    """
    prefix = (filename_prefix or "").strip() or "HueShift"
    base = os.path.realpath(folder_paths.get_output_directory())
    if os.path.isabs(prefix) or not _inside(os.path.join(base, os.path.dirname(os.path.normpath(prefix))), base):
        raise InputError(f"filename prefix '{prefix}' leaves ComfyUI's output folder {base}")
    subfolder, stem = os.path.split(os.path.normpath(prefix))
    folder = os.path.join(base, subfolder)
    os.makedirs(folder, exist_ok=True)
    taken = {f for f in os.listdir(folder) if f.startswith(stem + "_")}
    counter = 1
    while f"{stem}_{counter:05}_{extension}" in taken:
        counter += 1
    file = f"{stem}_{counter:05}_{extension}"
    return os.path.join(folder, file), file, subfolder


# --- device, precision, progress ---------------------------------------------------------------

PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def device_and_dtype(precision: str) -> tuple[torch.device, torch.dtype]:
    """ComfyUI's torch device and the weight dtype: ``auto`` = fp16 on a GPU that ComfyUI runs in
    fp16 (``should_use_fp16``), else bf16 where ComfyUI would use it (``should_use_bf16``), else
    fp32; half precision is never used on the CPU."""
    device = model_management.get_torch_device()
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device.type == "cpu" or precision == "fp32":
        return device, torch.float32
    if precision == "auto":
        if model_management.should_use_fp16(device):
            return device, torch.float16
        return device, torch.bfloat16 if model_management.should_use_bf16(device) else torch.float32
    return device, torch.float16 if precision == "fp16" else torch.bfloat16


class Progress:
    """ComfyUI's progress bar for one node run, and where Cancel is noticed.

    Called with hueshift_core's ``Callback(i, n)`` signature, it advances by one step (a
    sampling step or a frame); ``advance(k)`` moves k steps at once (a decoded batch). Each call
    raises ComfyUI's interrupt exception if the user pressed Cancel.
    """

    def __init__(self, total: int) -> None:
        self.total, self.done = max(1, int(total)), 0
        self.bar = ProgressBar(self.total)

    def __call__(self, done: int = 0, of: int = 0) -> None:  # hueshift_core's Callback(i, n); unused
        self.advance(1)

    def advance(self, steps: int) -> None:
        model_management.throw_exception_if_processing_interrupted()
        self.done += steps
        self.bar.update(steps)

    def finish(self) -> None:
        """Fill the bar (work that took fewer steps than announced)."""
        if self.done < self.total:
            self.advance(self.total - self.done)


def progress(total: int) -> Progress:
    threads.configure()  # every working node starts here: torch/OpenCV pools sized to the free CPUs
    return Progress(total)


# --- data between stage nodes -----------------------------------------------------------------

@dataclass(frozen=True)
class Chroma:
    """What travels on a HUESHIFT_CHROMA socket: colour for some or all frames of a clip.

    ``ab``: CIELAB a, b ``[K, 2, h, w]`` float32 on the CPU at the working (or propagation)
    resolution; ``frames``: the K clip frame indices it belongs to, increasing; ``num_frames``:
    frames in the clip; ``source_size``: (H, W) of the frames it was computed from.
    """

    ab: torch.Tensor
    frames: tuple[int, ...]
    num_frames: int
    source_size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.ab.dim() != 4 or self.ab.shape[1] != 2 or self.ab.shape[0] != len(self.frames):
            raise InputError(f"chroma must be [{len(self.frames)}, 2, h, w], got {tuple(self.ab.shape)}")
        if any(b <= a for a, b in zip(self.frames, self.frames[1:])) or (
                self.frames and not 0 <= self.frames[0] <= self.frames[-1] < self.num_frames):
            raise InputError(f"chroma frame indices must increase within 0..{self.num_frames - 1}")

    @property
    def complete(self) -> bool:
        """True when every frame of the clip has colour."""
        return len(self.frames) == self.num_frames


def colour_inputs(io) -> list:
    """The colour-prior settings DDPM Colorize and Colorize Video File share (defaults: the library's)."""
    d = SampleOptions()
    return [
        io.Float.Input("variety", default=d.variety, min=0.0, max=1.0, step=0.05,
                       tooltip="0: the colour prior's colour alone (one fast pass, the same every run). Higher: the "
                               "diffusion model re-noises it that far and samples back (more varied colours, slower)."),
        io.Float.Input("temperature", default=0.0, min=0.0, max=2.0, step=0.01,
                       tooltip="Colour prior temperature: lower gives bolder, more decided colours; 0 = the model's "
                               "own (0.38 for every shipped model with a colour prior)."),
        io.Float.Input("chroma", default=d.chroma, min=0.0, max=3.0, step=0.05,
                       tooltip="Scales the colour prior's saturation (1 = the model's own; video frames are first "
                               "lifted by the model's video saturation)."),
    ]


def shot_consensus_input(io, when: str = ""):
    """The ``shot_consensus`` widget of DDPM Colorize and Colorize Video File: the pipeline's ``consensus``."""
    return io.Boolean.Input("shot_consensus", default=PipelineOptions.consensus,
                            tooltip=f"{when}A shot's later keyframes keep the mean of the colour prior's views of the "
                                    "shot so far where the colour tracks (steadier). Off: each keeps the colour "
                                    "carried into it, for a shot whose colours really change (lights switched on).")


def colour_options(variety: float, temperature: float, chroma: float) -> dict:
    """SampleOptions fields from the :func:`colour_inputs` widgets (temperature 0 = the model's own)."""
    return {"variety": float(variety), "temperature": float(temperature) or None, "chroma": float(chroma)}
