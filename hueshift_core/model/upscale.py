"""Chroma upscaling: ab from the working resolution to the full frame, guided by full-resolution L.

Two methods, both ``(ab_small [B, 2, h, w], l_full [B, 1, H, W]) -> ab [B, 2, H, W]`` in the
units of ``ab_small`` (CIELAB or normalised, the maths is linear in ab):

* ``bicubic``: what the original prototype did; ignores L.
* ``guided``: bicubic plus the fine luminance detail, scaled by the local slope of ab on L
  from a guided filter's linear model (He, Sun & Tang 2013) fitted at the working
  resolution, so chroma follows the luminance edges the working resolution lost.

``l_full`` is CIELAB L in [0, 100] (or normalised L: any affine form works, eps is scaled).
"""

from __future__ import annotations

import contextlib
import enum

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .lab import lab_to_rgb


class Upscale(str, enum.Enum):
    BICUBIC = "bicubic"
    GUIDED = "guided"


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over (2r+1)^2 windows with edge replication; ``[B, C, H, W]`` -> same. On the CPU OpenCV's box
    filter, plane by plane (much cheaper there than torch's stride-1 average pooling); equal within rounding."""
    k = 2 * r + 1
    if _cv2_ok(x):
        planes = x.detach().reshape(-1, *x.shape[-2:]).contiguous().numpy()
        return torch.from_numpy(np.stack([cv2.blur(p, (k, k), borderType=cv2.BORDER_REPLICATE) for p in planes])
                                ).reshape(x.shape)
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), k, stride=1)


def _check(ab_small: torch.Tensor, l_full: torch.Tensor) -> None:
    if ab_small.dim() != 4 or ab_small.shape[1] != 2:
        raise InputError(f"ab must be [B, 2, h, w], got {tuple(ab_small.shape)}")
    if l_full.dim() != 4 or l_full.shape[1] != 1:
        raise InputError(f"L must be [B, 1, H, W], got {tuple(l_full.shape)}")
    if ab_small.shape[0] != l_full.shape[0]:
        raise InputError(f"ab has {ab_small.shape[0]} frames but L has {l_full.shape[0]}: give one L per chroma frame")
    h, w = ab_small.shape[-2:]
    H, W = l_full.shape[-2:]
    # A very thin frame (16x2000) has a working size whose short side is rounded up to the model's
    # multiple (8x256): its aspect cannot be kept there, so such chroma (short side 16 or less, long side
    # at least 64, as every working size has) is not compared.
    thin = min(h, w) <= 16 and max(h, w) >= 64
    if abs((H / h) / (W / w) - 1) > 0.25 and not thin:
        raise InputError(
            f"chroma {h}x{w} and L {H}x{W} have different aspect ratios: they are not the same frames")


def _cv2_ok(*xs: torch.Tensor) -> bool:
    """On the CPU, OpenCV's resize is 4-14x faster than torch's and equal within float rounding
    (same half-pixel centres, bicubic a = -0.75, clamped edges): use it there."""
    return all(x.device.type == "cpu" and x.dtype == torch.float32 for x in xs)


def _bicubic_planes(ab: np.ndarray, size: tuple[int, int]) -> list[list[np.ndarray]]:
    """OpenCV's bicubic resize of ab ``[B, 2, h, w]`` (float32, contiguous), plane by plane -> per frame the
    two ``[H, W]`` planes at ``size = (H, W)``."""
    return [[cv2.resize(p, (size[1], size[0]), interpolation=cv2.INTER_CUBIC) for p in a] for a in ab]


def _stack_planes(planes: list[list[np.ndarray]]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.stack(p) for p in planes]))


def upscale_bicubic(ab_small: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of ``[B, 2, h, w]`` to ``size = (H, W)``."""
    if _cv2_ok(ab_small):
        return _stack_planes(_bicubic_planes(ab_small.contiguous().numpy(), size))
    return F.interpolate(ab_small, size=size, mode="bicubic", align_corners=False)


def _guided_model(ab_small: torch.Tensor, guide_full: torch.Tensor, radius: int, eps: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The guided filter's linear model at the working resolution: (guide, slope), ``guide`` the area-downscaled
    ``guide_full`` ``[B, 1, h, w]`` and ``slope`` ``cov(guide, ab) / (var(guide) + eps)`` ``[B, 2, h, w]``."""
    guide = F.interpolate(guide_full, size=tuple(ab_small.shape[-2:]), mode="area")
    mean_i = _box(guide, radius)
    mean_p = _box(ab_small, radius)
    cov_ip = _box(guide * ab_small, radius) - mean_i * mean_p
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    return guide, cov_ip / (var_i + eps)


def upscale_guided(ab_small: torch.Tensor, l_full: torch.Tensor, radius: int = 1, eps: float = 0.03) -> torch.Tensor:
    """Edge-aware upscale: bicubic chroma plus the luminance detail it is locally correlated with.

    The guided filter's local linear model (He, Sun & Tang 2013; fitted at the working
    resolution as in He & Sun 2015's fast guided filter) gives per window a slope
    ``A = cov(L, ab) / (var(L) + eps)``. The high-frequency part of L that the working
    resolution cannot hold, ``L - bicubic(area(L))``, is added to the bicubic chroma with
    that slope: ``ab = bicubic(ab_small) + up(A) * (L - bicubic(area(L)))``. ``eps`` (on L/100)
    shrinks the slope where L and ab are weakly related, so flat regions stay bicubic.
    On the development clips' true chroma (downscaled to 64x112, upscaled to 854x480) this
    lowers the mean absolute ab error from 1.078 (bicubic) to 1.053
    (``python benchmarks/bench_upscale.py``).
    """
    _check(ab_small, l_full)
    dtype = ab_small.dtype
    ab_small = ab_small.float()
    guide_full = l_full.float() / 100.0
    size = tuple(guide_full.shape[-2:])
    guide, slope = _guided_model(ab_small, guide_full, radius, eps)
    if _cv2_ok(guide_full):  # the same sums with OpenCV's resize, plane by plane
        return _stack_planes(_guided_planes(ab_small, guide_full[:, 0], guide, slope)).to(dtype)
    slope = F.interpolate(slope, size=size, mode="bilinear", align_corners=False)
    detail = guide_full - F.interpolate(guide, size=size, mode="bicubic", align_corners=False)
    return (upscale_bicubic(ab_small, size) + slope * detail).to(dtype)


def _guided_planes(ab_small: torch.Tensor, guide_full: torch.Tensor, guide: torch.Tensor, slope: torch.Tensor
                   ) -> list[list[np.ndarray]]:
    """:func:`upscale_guided`'s full-resolution sums with OpenCV, plane by plane (contiguous ``[H, W]`` arrays, the
    cheapest layout for them): ab ``[B, 2, h, w]``, guide_full ``[B, H, W]`` and :func:`_guided_model`'s guide and
    slope (float32, CPU) -> per frame the two upscaled chroma planes ``[H, W]``."""
    H, W = guide_full.shape[-2:]
    out = []
    for ab, sl, g, gf in zip(ab_small.contiguous().numpy(), slope.numpy(), guide[:, 0].numpy(), guide_full.numpy()):
        detail = gf - cv2.resize(g, (W, H), interpolation=cv2.INTER_CUBIC)
        planes = []
        for a, s in zip(ab, sl):
            up = cv2.resize(a, (W, H), interpolation=cv2.INTER_CUBIC)
            s_up = cv2.resize(s, (W, H), interpolation=cv2.INTER_LINEAR)
            s_up *= detail
            up += s_up
            planes.append(up)
        out.append(planes)
    return out


def upscale_ab(ab_small: torch.Tensor, l_full: torch.Tensor, method: Upscale | str = Upscale.GUIDED) -> torch.Tensor:
    """Upscale chroma ``[B, 2, h, w]`` to the size of ``l_full`` ``[B, 1, H, W]`` by ``method``."""
    try:
        method = Upscale(method)
    except ValueError:
        raise InputError(f"upscale method must be one of {[u.value for u in Upscale]}, got {method!r}") from None
    _check(ab_small, l_full)
    if ab_small.shape[-2:] == l_full.shape[-2:]:
        return ab_small
    if l_full.shape[-2] <= ab_small.shape[-2] and l_full.shape[-1] <= ab_small.shape[-1]:
        # A frame smaller than the working resolution: average the chroma down.
        return F.interpolate(ab_small, size=tuple(l_full.shape[-2:]), mode="area")
    if method is Upscale.BICUBIC:
        return upscale_bicubic(ab_small, tuple(l_full.shape[-2:]))
    return upscale_guided(ab_small, l_full)


def upscale_merge_u8(l_full: np.ndarray, ab_small: np.ndarray, method: Upscale | str = Upscale.GUIDED,
                     device: torch.device | None = None, *, timer=None) -> np.ndarray:
    """The last stage of the video path: L float ``[B, H, W]`` in [0, 100] (float16 is fine) and CIELAB ab
    ``[B, h, w, 2]`` -> uint8 RGB ``[B, H, W, 3]``, the chroma upscaled guided by L (``method``).

    ``device=None``: on the CPU with OpenCV (fast); a torch device: torch's upscale and kornia's LAB -> RGB
    there (a GPU; ``torch.device("cpu")`` runs that path on the CPU, for tests). Same values up to rounding.
    ``timer``: a :class:`~hueshift_core.video.analysis.StageTimer` told of ``upscale`` and ``to_rgb``."""
    timer = timer or (lambda name: contextlib.nullcontext())
    if device is None:
        return _merge_u8_cv2(l_full, ab_small, Upscale(method), timer)
    l_t = torch.from_numpy(np.ascontiguousarray(l_full)).float()[:, None]  # torch's float16 -> float32 is vectorised
    ab_t = torch.from_numpy(np.ascontiguousarray(ab_small, dtype=np.float32)).permute(0, 3, 1, 2)
    with timer("upscale"):
        l_t, ab_t = l_t.to(device, non_blocking=True), ab_t.to(device, non_blocking=True)
        ab_full = upscale_ab(ab_t, l_t, method)
    with timer("to_rgb"):
        rgb = lab_to_rgb(torch.cat([l_t, ab_full.to(l_t.dtype)], dim=1))
        return (rgb * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _merge_u8_cv2(l_full: np.ndarray, ab_small: np.ndarray, method: Upscale, timer) -> np.ndarray:
    """:func:`upscale_merge_u8` on the CPU: :func:`upscale_ab`'s OpenCV sums kept as planes from the small chroma
    to the uint8 frame (no full-resolution ``[B, 2, H, W]`` tensors and transposes), then :func:`lab_to_rgb_u8`'s
    conversion: 10.8 against 17.5 CPU ms a 854x480 frame (``benchmarks/bench_stages.py``)."""
    l32 = torch.from_numpy(np.ascontiguousarray(l_full)).float()  # [B, H, W]; vectorised float16 -> float32
    b, H, W = l32.shape
    ab_t = torch.from_numpy(np.ascontiguousarray(ab_small, dtype=np.float32)).permute(0, 3, 1, 2)
    with timer("upscale"):
        _check(ab_t, l32[:, None])
        h, w = ab_t.shape[-2:]
        if H <= h and W <= w:  # nothing to upscale (same size, or area down): the general path
            ups = list(upscale_ab(ab_t, l32[:, None], method).contiguous().numpy())
        elif method is Upscale.BICUBIC:
            ups = _bicubic_planes(ab_t.contiguous().numpy(), (H, W))
        else:
            guide_full = l32 / 100.0
            ups = _guided_planes(ab_t, guide_full, *_guided_model(ab_t, guide_full[:, None], 1, 0.03))
    with timer("to_rgb"):
        lab = np.empty((b, H, W, 3), np.float32)
        for i, (up_a, up_b) in enumerate(ups):
            cv2.merge([l32[i].numpy(), up_a, up_b], lab[i])
        rgb = cv2.cvtColor(lab.reshape(b * H, W, 3), cv2.COLOR_Lab2RGB)  # float sRGB in [0, 1]
        return cv2.convertScaleAbs(rgb, alpha=255.0).reshape(b, H, W, 3)
