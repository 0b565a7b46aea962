"""The colour model: LAB colour, the network, diffusion, checkpoints, sampling and chroma upscaling.

This sub-package is everything between a normalised L and the colour the model gives it. :mod:`.lab`
converts sRGB <-> CIELAB and to and from the model's normalised space (and says what counts as grey);
:mod:`.unet` is the network (:class:`ColorUNet`, :class:`UNetConfig`); :mod:`.diffusion` the noise
schedules, the training loss and the samplers (DDIM, DDPM, DPM-Solver++ 2M, classifier-free guidance);
:mod:`.checkpoint` reads and writes self-describing safetensors checkpoints (:func:`load_model`,
:func:`save_checkpoint`) and keeps one loaded model per path, device and dtype (:func:`get_model`);
:mod:`.sampling` samples normalised ab for normalised L at the working resolution (:class:`SampleOptions`,
:func:`working_size`, :func:`sample_ab`); :mod:`.upscale` brings that chroma to full resolution guided by
the full-resolution L (:class:`Upscale`, :func:`upscale_ab`, :func:`upscale_merge_u8`).
"""

from __future__ import annotations

from .checkpoint import (
                         ColorModel,
                         ModelInfo,
                         default_model_path,
                         get_model,
                         load_model,
                         read_info,
                         resolve_device,
                         resolve_model_path,
                         save_checkpoint,
)
from .lab import is_grey, lab_to_rgb, lab_to_rgb_u8, rgb_to_l, rgb_to_lab, to_grey
from .diffusion import Prediction, Sampler, Schedule
from .sampling import SampleOptions, guidance_scale, make_noise, sample_ab, working_size
from .unet import ColorUNet, UNetConfig, count_parameters
from .upscale import Upscale, upscale_ab, upscale_merge_u8

__all__ = [
    "ColorModel", "ColorUNet", "ModelInfo", "Prediction", "SampleOptions", "Sampler", "Schedule", "UNetConfig",
    "Upscale", "count_parameters", "default_model_path", "get_model", "guidance_scale", "is_grey", "lab_to_rgb",
    "lab_to_rgb_u8", "load_model", "make_noise", "read_info", "resolve_device", "resolve_model_path", "rgb_to_l",
    "rgb_to_lab", "sample_ab", "save_checkpoint", "to_grey", "upscale_ab", "upscale_merge_u8", "working_size",
]
