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

from ..errors import InputError

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


# --- numpy sRGB (uint8 frames, channels last) ---------------------------------------------------

#: sRGB (IEC 61966-2-1) linear RGB -> XYZ; the D65 white is its row sums, so R = G = B maps exactly
#: onto a = b = 0 (the same normalisation as OpenCV and kornia).
SRGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]])
_Y_WEIGHTS = SRGB_TO_XYZ[1] / SRGB_TO_XYZ[1].sum()  # relative luminance Y / Y_white of linear RGB


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light in [0, 1] (the IEC 61966-2-1 curve)."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded values, clipped to [0, 1] first."""
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1.0 / 2.4) - 0.055)


_LINEAR_LUT = srgb_decode(np.arange(256) / 255.0)  # uint8 code value -> linear light (float64)

# --- "is this colour?" and "make it grey": the one test and the one conversion ----------------------

#: Mean |a|, |b| (CIELAB units; 8-bit OpenCV LAB for uint8 images) under which an image counts as grey.
#: Grey video decoded to RGB stays well under it; a real colour image is about 10 and above.
GREY_THRESHOLD = 2.0


def chroma_amount(rgb: np.ndarray | torch.Tensor) -> float | torch.Tensor:
    """How much colour an image has: the mean of |a| and |b| (CIELAB, D65; 0 for a grey image).

    * numpy uint8 RGB ``[..., H, W, 3]`` (0..255, any number of frames of one size) -> one float, over all
      frames (OpenCV's 8-bit LAB, whose a, b are CIELAB offset by 128);
    * torch sRGB ``[B, 3, H, W]`` in [0, 1] -> ``[B]``, one value per image (kornia's float LAB).
    """
    if isinstance(rgb, torch.Tensor):
        ab = rgb_to_lab(rgb)[..., 1:, :, :]
        return ab.abs().mean(dim=(-3, -2, -1))
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise InputError(f"chroma_amount needs uint8 RGB [..., H, W, 3] or a tensor [B, 3, H, W], got "
                         f"{rgb.dtype} {rgb.shape}")
    lab = cv2.cvtColor(np.ascontiguousarray(rgb.reshape(-1, rgb.shape[-2], 3)), cv2.COLOR_RGB2LAB)
    return float(np.abs(lab[..., 1:].astype(np.float32) - 128.0).mean())


def is_grey(rgb: np.ndarray | torch.Tensor, threshold: float = GREY_THRESHOLD) -> bool:
    """The one "is this colour?" test: True when :func:`chroma_amount` of ``rgb`` (all frames together)
    is under ``threshold``.

    ``rgb``: uint8 RGB ``[..., H, W, 3]`` (0..255), a single-channel ``[H, W]`` array (always grey), or a
    torch sRGB ``[..., 3, H, W]`` in [0, 1].
    """
    if isinstance(rgb, torch.Tensor):
        if rgb.dim() == 3:
            rgb = rgb[None]
        return float(chroma_amount(rgb.reshape(-1, *rgb.shape[-3:])).mean()) < threshold
    if np.ndim(rgb) == 2:
        return True
    return chroma_amount(rgb) < threshold


def to_grey(rgb: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """The one grey conversion: the same CIELAB lightness ``L`` with ``a = b = 0`` (R = G = B).

    * numpy uint8 RGB ``[..., H, W, 3]`` -> uint8 of the same shape (exact sRGB maths in float64,
      rounded to the nearest level: L within one 8-bit level of the input's);
    * torch sRGB ``[..., 3, H, W]`` in [0, 1] -> the same shape, via kornia's LAB.
    """
    if isinstance(rgb, torch.Tensor):
        l = rgb_to_l(rgb)
        return lab_to_rgb(torch.cat([l, torch.zeros_like(l).expand(*l.shape[:-3], 2, *l.shape[-2:])], -3))
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim < 3 or rgb.shape[-1] != 3:
        raise InputError(f"to_grey needs uint8 RGB [..., H, W, 3] or a tensor [..., 3, H, W], got {rgb.dtype} "
                         f"{rgb.shape}")
    y = _LINEAR_LUT[rgb] @ _Y_WEIGHTS  # linear luminance relative to white: a = b = 0 means R = G = B = y
    v = np.clip(np.rint(srgb_encode(y) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=-1)


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
