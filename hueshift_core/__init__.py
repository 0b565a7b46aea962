"""HueShift core: colorize grey video with a small LAB diffusion model. No ComfyUI imports.

Importing this package picks no device and loads no model. Main entry points::

    from hueshift_core import colorize_image, colorize_video, load_model
"""

from __future__ import annotations

import importlib

# Everything is imported on first use: `import hueshift_core` (and the `hueshift` command's start-up)
# loads no torch, PyAV or OpenCV until a name below is asked for.
_NAMES = {
    "model.checkpoint": ("ColorModel", "ModelInfo", "default_model_path", "get_model", "load_model", "save_checkpoint"),
    "model.sampling": ("SampleOptions", "sample_ab", "working_size"),
    "images": ("colorize_frames", "colorize_image"),
    "model.diffusion": ("Prediction", "Sampler", "Schedule"),
    "errors": ("CheckpointError", "HueShiftError", "InputError", "VideoError"),
    "model.unet": ("ColorUNet", "UNetConfig"),
    "model.upscale": ("Upscale", "upscale_ab"),
    "video.files": ("colorize_video",),  # these pull in PyAV and OpenCV's flow
    "video.pipeline": ("VideoPipeline", "PipelineOptions"),
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    try:  # a submodule: hueshift_core.video, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module 'hueshift_core' has no attribute {name!r}")


__all__ = [
    "CheckpointError", "ColorModel", "ColorUNet", "HueShiftError", "InputError", "ModelInfo", "Prediction",
    "SampleOptions", "Sampler", "Schedule", "UNetConfig", "Upscale", "VideoError", "__version__",
    "colorize_frames", "colorize_image", "colorize_video", "default_model_path", "get_model", "load_model",
    "sample_ab", "save_checkpoint", "upscale_ab", "working_size",
]
