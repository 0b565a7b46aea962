"""HueShift core: colorize grey video with a small LAB diffusion model. No ComfyUI imports.

Importing this package picks no device and loads no model. Main entry points::

    from hueshift_core import colorize_image, colorize_video, load_model
"""

from __future__ import annotations

from .checkpoint import ColorModel, ModelInfo, default_model_path, load_model, save_checkpoint
from .colorize import SampleOptions, colorize_frames, colorize_image, get_model, sample_ab, working_size
from .diffusion import Prediction, Sampler, Schedule
from .errors import CheckpointError, HueShiftError, InputError, VideoError
from .unet import ColorUNet, UNetConfig
from .upscale import Upscale, upscale_ab

__version__ = "0.1.0"


def __getattr__(name: str):
    # The video pipeline pulls in PyAV and OpenCV's flow; load it on first use only.
    if name in ("colorize_video", "VideoPipeline", "PipelineOptions"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'hueshift_core' has no attribute {name!r}")


__all__ = [
    "CheckpointError", "ColorModel", "ColorUNet", "HueShiftError", "InputError", "ModelInfo", "Prediction",
    "SampleOptions", "Sampler", "Schedule", "UNetConfig", "Upscale", "VideoError", "__version__",
    "colorize_frames", "colorize_image", "colorize_video", "default_model_path", "get_model", "load_model",
    "sample_ab", "save_checkpoint", "upscale_ab", "working_size",
]
