"""Shared fixtures: a tiny random model (fast), synthetic images, paths to optional real data, ComfyUI fakes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hueshift_core.model.checkpoint import ModelInfo, save_checkpoint
from hueshift_core.model.diffusion import Prediction, Schedule
from hueshift_core.model.unet import ColorUNet, UNetConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY = UNetConfig(base_channels=16, channel_mults=(1, 2, 2, 2), num_res_blocks=1, attention_levels=(3,),
                  head_channels=16, groups=8)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A randomly initialised (but non-trivial) tiny HueShift checkpoint."""
    torch.manual_seed(0)
    net = ColorUNet(TINY)
    with torch.no_grad():  # the output conv starts at zero; give it weights so outputs vary
        net.out.weight.normal_(0, 0.02)
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    save_checkpoint(path, net.state_dict(), ModelInfo(TINY, Schedule.COSINE, 1000, Prediction.V, {"test": True}))
    return path


@pytest.fixture(scope="session")
def prior_model():
    """The shipped model: hints and keyframe colour are tested on the trained colour prior they rely on."""
    from hueshift_core.model.checkpoint import get_model

    return get_model(None)


@pytest.fixture
def photo() -> np.ndarray:
    """A colourful synthetic 'photo' uint8 [48, 80, 3] with edges and gradients."""
    h, w = 48, 80
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // (w - 1)).astype(np.uint8)
    img[..., 1] = (y * 255 // (h - 1)).astype(np.uint8)
    img[..., 2] = 128
    img[10:30, 20:50] = (220, 40, 30)
    return img


def shared_clips() -> list[Path]:
    return sorted((SHARED / "clips").glob("*.mp4")) if (SHARED / "clips").is_dir() else []


def shared_shards() -> list[Path]:
    return sorted((SHARED / "images").glob("*.zip")) if (SHARED / "images").is_dir() else []


@pytest.fixture(scope="session")
def comfy_standins(tmp_path_factory):
    """ComfyUI's modules replaced by the fakes of ``comfy_standins.py`` in ``sys.modules`` (as ComfyUI's own
    unit tests patch them) for the node tests; afterwards the fakes and the pack imported against them go."""
    import comfy_standins

    with pytest.MonkeyPatch.context() as mp:
        comfy_standins.install(mp)
        comfy_standins.folder_paths.set_base(str(tmp_path_factory.mktemp("comfyui-standin")))
        yield comfy_standins
        for name in [k for k in sys.modules if k == "comfyui_hueshift" or k.startswith("comfyui_hueshift.")]:
            del sys.modules[name]
