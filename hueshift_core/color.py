"""LAB colour: sRGB <-> CIELAB (D65) on float tensors, the model's normalisation, split/merge.

Conventions (all tensors ``[..., C, H, W]``, float32/float64):

* RGB: sRGB with its gamma, values in [0, 1].
* LAB: CIELAB under D65. ``L`` in [0, 100]; ``a``, ``b`` roughly in [-128, 127]
  (sRGB's gamut reaches about a in [-86, 98], b in [-108, 94]).
* Model space: ``l_norm = L / 50 - 1`` in [-1, 1]; ``ab_norm = ab / AB_SCALE`` with
  ``AB_SCALE = 110`` so every sRGB colour lies inside [-1, 1].

The conversion is kornia's (`kornia.color.rgb_to_lab`), which applies the sRGB transfer
curve, so it agrees with OpenCV's float ``COLOR_RGB2Lab`` and scikit-image's ``rgb2lab``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from kornia.color import lab_to_rgb as _kornia_lab_to_rgb
from kornia.color import rgb_to_lab as _kornia_rgb_to_lab

from .errors import InputError

L_SCALE = 50.0
AB_SCALE = 110.0


def _check_channels(x: torch.Tensor, channels: int, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != channels:
        raise InputError(
            f"{name} must have shape [..., {channels}, H, W], got {tuple(x.shape)}"
        )


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``[..., 3, H, W]`` in [0, 1] -> CIELAB ``[..., 3, H, W]`` (L in [0, 100])."""
    _check_channels(rgb, 3, "rgb")
    return _kornia_rgb_to_lab(rgb.clamp(0.0, 1.0))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB ``[..., 3, H, W]`` -> sRGB ``[..., 3, H, W]`` clipped to [0, 1]."""
    _check_channels(lab, 3, "lab")
    return _kornia_lab_to_rgb(lab, clip=True)


def rgb_to_l(rgb: torch.Tensor) -> torch.Tensor:
    """Lightness of sRGB ``[..., 3, H, W]`` in [0, 1] -> ``[..., 1, H, W]`` in [0, 100]."""
    return rgb_to_lab(rgb)[..., :1, :, :]


def split_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[..., 3, H, W]`` -> (L ``[..., 1, H, W]``, ab ``[..., 2, H, W]``)."""
    _check_channels(lab, 3, "lab")
    return lab[..., :1, :, :], lab[..., 1:, :, :]


def merge_lab(l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(L ``[..., 1, H, W]``, ab ``[..., 2, H, W]``) -> LAB ``[..., 3, H, W]``; sizes must match."""
    _check_channels(l, 1, "L")
    _check_channels(ab, 2, "ab")
    if l.shape[-2:] != ab.shape[-2:]:
        raise InputError(
            f"L is {tuple(l.shape[-2:])} but ab is {tuple(ab.shape[-2:])}: "
            "upscale the chroma to the size of L before merging"
        )
    return torch.cat([l, ab.to(l.dtype)], dim=-3)


def normalize_l(l: torch.Tensor) -> torch.Tensor:
    """L in [0, 100] -> [-1, 1]."""
    return l / L_SCALE - 1.0


def denormalize_l(l_norm: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> L in [0, 100]."""
    return (l_norm + 1.0) * L_SCALE


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    """ab in about [-110, 110] -> about [-1, 1]."""
    return ab / AB_SCALE


def denormalize_ab(ab_norm: torch.Tensor) -> torch.Tensor:
    """about [-1, 1] -> ab in CIELAB units."""
    return ab_norm * AB_SCALE


def to_grey_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Remove colour: keep L, set a = b = 0. ``[..., 3, H, W]`` in [0, 1] -> same."""
    l = rgb_to_l(rgb)
    return lab_to_rgb(torch.cat([l, torch.zeros_like(l).expand(*l.shape[:-3], 2, *l.shape[-2:])], -3))


def chroma_amount(rgb: torch.Tensor) -> torch.Tensor:
    """Mean |a| + |b| / 2 per image of sRGB ``[B, 3, H, W]`` -> ``[B]`` (0 for a grey image).

    Used to tell a colour input (about 10 and above) from a grey one (under 2).
    """
    ab = rgb_to_lab(rgb)[..., 1:, :, :]
    return ab.abs().mean(dim=(-3, -2, -1))


def lab_to_rgb_u8(l: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """CPU fast path: L float ``[B, H, W]`` in [0, 100] and ab float ``[B, H, W, 2]`` (CIELAB) ->
    uint8 sRGB ``[B, H, W, 3]``.

    One OpenCV float conversion over the whole batch (stacked as one tall image) and a saturating
    convert to uint8 (OpenCV rounds half to even, so a value exactly on .5 may differ by one level from
    ``floor(x * 255 + 0.5)``): the same pixels within one level as converting frame by frame and
    clipping and casting with NumPy, for about 12 % less CPU (7.1 against 8.0 ms a 854x480 frame, one
    thread; ``benchmarks/bench_to_rgb.py``): OpenCV's float conversion itself is most of the cost."""
    b, h, w = l.shape
    lab = np.empty((b, h, w, 3), np.float32)
    lab[..., 0] = l
    lab[..., 1:] = ab
    rgb = cv2.cvtColor(lab.reshape(b * h, w, 3), cv2.COLOR_Lab2RGB)  # float sRGB in [0, 1]
    return cv2.convertScaleAbs(rgb, alpha=255.0).reshape(b, h, w, 3)
