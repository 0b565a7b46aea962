"""Training a HueShift model: data, the loop, and the ``hueshift train`` command.

This sub-package turns photos and video frames into a trained checkpoint. :mod:`.data` decodes training
images once into uint8 RGB crops ``[N, S, S, 3]`` and converts batches to model space (L and ab in about
[-1, 1]); :mod:`.scenes` mixes sources in aspect-ratio buckets with whole clips held out; :mod:`.config`
holds :class:`TrainConfig` and the learning-rate schedule; :mod:`.trainer` is the loop (EMA, exact resume
from safetensors training states, DDP under ``torchrun``); :mod:`.command` is ``hueshift train`` /
``python -m hueshift_core.training``.
"""

from __future__ import annotations

from .command import build_parser, main, run_training
from .config import TrainConfig, lr_at
from .data import ImageSet, batch_to_model_space, decode_bytes, load_images
from .scenes import DEFAULT_BUCKETS, SceneMix, Source, group_of, load_scene_mix
from .trainer import Trainer

__all__ = [
    "DEFAULT_BUCKETS", "ImageSet", "SceneMix", "Source", "TrainConfig", "Trainer", "batch_to_model_space",
    "build_parser", "decode_bytes", "group_of", "load_images", "load_scene_mix", "lr_at", "main", "run_training",
]
