"""Colour from the model: sample ab for L at the working resolution, upscale, merge.

The stages, each a pure function over tensors:

* :func:`working_size` — the model's resolution for a frame, keeping its aspect ratio;
* :func:`sample_ab` — diffusion sampling of normalised ab for normalised L (batched),
  from noise or, SDEdit-style (Meng et al. 2022), from a partly re-noised initial colour;
* :func:`colorize_frames` — full-resolution RGB frames in, colorized RGB frames out;
* :func:`colorize_image` — one image (numpy, any size, grey or colour) in and out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import ColorModel, load_model, resolve_model_path
from .color import denormalize_ab, lab_to_rgb, normalize_l, rgb_to_lab
from .diffusion import SAMPLERS, Callback, Denoiser, Guided, Sampler, q_sample, sample_ddim, space_timesteps
from .errors import InputError
from .upscale import Upscale, upscale_ab


@dataclass(frozen=True)
class SampleOptions:
    """How keyframe colour is sampled."""

    steps: int = 25
    sampler: Sampler = Sampler.DDIM
    eta: float = 0.0
    seed: int = 0
    short_side: int = 64  # working resolution: the short side, in pixels (multiple of 8)
    max_long_side: int = 256
    batch_size: int = 8
    guidance: float | None = None  # classifier-free guidance scale; None = the model's own default

    def __post_init__(self) -> None:
        for name in ("steps", "seed", "short_side", "max_long_side", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputError(f"{name} must be an integer, got {value!r}")
        if self.guidance is not None and not (isinstance(self.guidance, (int, float)) and math.isfinite(self.guidance)
                                              and 0.0 <= self.guidance <= 20.0):
            raise InputError(f"guidance scale must be in [0, 20], got {self.guidance}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise InputError(f"steps must be 1 to {MAX_STEPS}, got {self.steps}")
        if not 0 <= self.seed <= MAX_SEED:
            raise InputError(f"seed must be 0 to 2**64 - 1, got {self.seed}")
        if self.short_side < 8 or self.short_side % 8 or self.short_side > 1024:
            raise InputError(f"working short side must be a multiple of 8 from 8 to 1024, got {self.short_side}")
        if not 8 <= self.max_long_side <= 4096:
            raise InputError(f"max_long_side must be 8 to 4096, got {self.max_long_side}")
        if not 1 <= self.batch_size <= 4096:
            raise InputError(f"batch size must be 1 to 4096, got {self.batch_size}")
        if not (isinstance(self.eta, (int, float)) and math.isfinite(self.eta) and self.eta >= 0):
            raise InputError(f"eta must be a finite number >= 0, got {self.eta}")
        try:
            object.__setattr__(self, "sampler", Sampler(self.sampler))
        except ValueError:
            raise InputError(f"sampler must be one of {[m.value for m in Sampler]}, got {self.sampler!r}") from None


MAX_STEPS = 10_000
MAX_SEED = 2**64 - 1
RANGE_SLACK = 1e-3  # frames a little outside [0, 1] (resampling overshoot) are clamped, not refused


def check_frames(frames: torch.Tensor, name: str = "frames") -> torch.Tensor:
    """Refuse what would silently give a wrong colour: not a float tensor, NaN or infinite values, values
    outside [0, 1] (0-255 frames, say). Returns ``frames`` clamped to [0, 1]."""
    if not isinstance(frames, torch.Tensor):
        raise InputError(f"{name} must be a torch tensor, got {type(frames).__name__}")
    if not frames.is_floating_point():
        raise InputError(f"{name} must be float in [0, 1], got {frames.dtype}; convert uint8 with x.float() / 255")
    if frames.numel() == 0:
        raise InputError(f"{name} is empty: {tuple(frames.shape)}")
    finite = torch.isfinite(frames)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{name} contain {bad} NaN or infinite value(s): fix the node or code that made them")
    lo, hi = float(frames.amin()), float(frames.amax())
    if hi > 1.0 + RANGE_SLACK or lo < -RANGE_SLACK:
        hint = " (they look like 0-255 values: divide by 255)" if hi > 1.5 else ""
        raise InputError(f"{name} must be in [0, 1], got values from {lo:.4g} to {hi:.4g}{hint}")
    return frames.clamp(0.0, 1.0) if hi > 1.0 or lo < 0.0 else frames


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a torch.device this machine has, or one clear :class:`InputError`."""
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device("cpu" if device is None else str(device))
        except (RuntimeError, ValueError, TypeError):
            raise InputError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r}: no CUDA GPU is available here (torch {torch.__version__} sees "
                             "none); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                             f"numbered from 0")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"device {device!r}: Apple's MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise InputError(f"unsupported device {device!r}: use cpu, cuda, cuda:N or mps")
    return dev


def working_size(height: int, width: int, short_side: int = 64, multiple: int = 8,
                 max_long_side: int = 256) -> tuple[int, int]:
    """(h, w) for the model: short side ``short_side``, aspect ratio kept, both multiples of
    ``multiple``, long side capped at ``max_long_side``. 480x854 -> (64, 112)."""
    if height < 1 or width < 1:
        raise InputError(f"frame size must be positive, got {height}x{width}")
    scale = short_side / min(height, width)
    if max(height, width) * scale > max_long_side:
        scale = max_long_side / max(height, width)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


class _Cast:
    """Runs a (possibly half-precision) network on float32 sampler state."""

    def __init__(self, net: torch.nn.Module, dtype: torch.dtype) -> None:
        self.net, self.dtype = net, dtype

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype), t, cond.to(self.dtype)).float()


def guidance_scale(model: ColorModel, requested: float | None = None) -> float:
    """The guidance scale to sample ``model`` with: ``requested``, else the model's default, else 1.

    A model trained without dropping L (``info.guidance is None``, e.g. hueshift-v1) has no
    unconditional mode, so any scale but 1 is refused.
    """
    if requested is None:
        return 1.0 if model.info.guidance is None else float(model.info.guidance)
    if not (math.isfinite(requested) and 0.0 <= requested <= 20.0):
        raise InputError(f"guidance scale must be in [0, 20], got {requested}")
    if model.info.guidance is None and requested != 1.0:
        raise InputError(f"model {Path(model.path).name or '(in memory)'} was not trained for classifier-free "
                         f"guidance: use guidance 1 (or a model that supports it, such as the default)")
    return float(requested)


def make_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise drawn on the CPU (so a seed gives the same result on any device)."""
    return torch.randn(shape, generator=generator, dtype=torch.float32)


@torch.no_grad()
def sample_ab(model: ColorModel, l_norm: torch.Tensor, *, steps: int = 25, sampler: Sampler | str = Sampler.DDIM,
              generator: torch.Generator, eta: float = 0.0, init_ab: torch.Tensor | None = None,
              strength: float = 1.0, noise: torch.Tensor | None = None,
              callback: Callback | None = None, guidance: float | None = None) -> torch.Tensor:
    """Sample normalised ab ``[B, 2, h, w]`` (about [-1, 1]) for normalised L ``[B, 1, h, w]`` in [-1, 1].

    ``init_ab`` with ``strength < 1`` starts from that colour noised to timestep
    ``strength * (T - 1)`` (SDEdit), running about ``steps * strength`` steps: later
    keyframes keep what earlier ones chose unless the model disagrees. ``noise``
    ``[B, 2, h, w]`` replaces the drawn noise (share it across frames for steadier colour).
    ``guidance`` is the classifier-free guidance scale (None: the model's default,
    :func:`guidance_scale`); a scale other than 1 doubles the network evaluations.
    """
    if l_norm.dim() != 4 or l_norm.shape[1] != 1:
        raise InputError(f"L must be [B, 1, h, w], got {tuple(l_norm.shape)}")
    if not 0.0 < strength <= 1.0:
        raise InputError(f"strength must be in (0, 1], got {strength}")
    multiple = model.info.config.multiple
    if l_norm.shape[-2] % multiple or l_norm.shape[-1] % multiple:
        raise InputError(f"working size {tuple(l_norm.shape[-2:])} must be a multiple of {multiple}")
    device = model.device
    scale = guidance_scale(model, guidance)
    net = _Cast(model.net, model.dtype)
    denoiser = Denoiser(Guided(net, scale) if scale != 1.0 else net, model.alphas_cumprod, model.info.prediction)
    T = denoiser.num_timesteps
    shape = (l_norm.shape[0], 2, *l_norm.shape[-2:])
    if noise is None:
        noise = make_noise(shape, generator)
    elif tuple(noise.shape) != shape:
        raise InputError(f"noise must be {shape}, got {tuple(noise.shape)}")
    noise = noise.to(device)
    cond = l_norm.to(device=device, dtype=torch.float32)
    if init_ab is not None and strength < 1.0:
        t_start = max(1, int(round(strength * (T - 1))))
        n = max(2, int(math.ceil(steps * strength)))
        timesteps = torch.unique_consecutive(
            torch.linspace(t_start, 0, min(n, t_start + 1), dtype=torch.float64).round().long())
        x = q_sample(denoiser.alphas_cumprod, init_ab.to(device, torch.float32), timesteps[:1].expand(shape[0]), noise)
    else:
        timesteps = space_timesteps(T, steps)
        x = noise
    if Sampler(sampler) is Sampler.DDIM:
        return sample_ddim(denoiser, x, timesteps, cond=cond, generator=generator, callback=callback, eta=eta)
    return SAMPLERS[Sampler(sampler)](denoiser, x, timesteps, cond=cond, generator=generator, callback=callback)


def frames_to_lab(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB ``[B, 3, H, W]`` in [0, 1] -> (L ``[B, 1, H, W]`` in [0, 100], ab ``[B, 2, H, W]``).

    NaN/infinite values and values outside [0, 1] raise :class:`InputError` (see :func:`check_frames`)."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"frames must be RGB [B, 3, H, W], got {shape}")
    lab = rgb_to_lab(check_frames(frames))
    return lab[:, :1], lab[:, 1:]


def downsample_l(l_full: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """L ``[B, 1, H, W]`` in [0, 100] -> normalised L ``[B, 1, h, w]`` in [-1, 1] (area filter)."""
    return normalize_l(F.interpolate(l_full, size=size, mode="area"))


def merge_to_rgb(l_full: torch.Tensor, ab_full: torch.Tensor) -> torch.Tensor:
    """(L [0, 100] ``[B, 1, H, W]``, ab CIELAB ``[B, 2, H, W]``) -> RGB ``[B, 3, H, W]`` in [0, 1]."""
    return lab_to_rgb(torch.cat([l_full, ab_full.to(l_full.dtype)], dim=1))


@torch.no_grad()
def sample_frames_ab(model: ColorModel, frames: torch.Tensor, options: SampleOptions = SampleOptions(), *,
                     generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Sample each frame's colour independently: RGB (or grey) ``[B, 3, H, W]`` in [0, 1] ->
    CIELAB ab ``[B, 2, h, w]`` at the working size, in batches of ``options.batch_size``."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"frames must be [B, 3, H, W], got {shape}")
    if not isinstance(options, SampleOptions):
        raise InputError(f"options must be a SampleOptions, got {type(options).__name__}")
    check_frames(frames)
    g = generator if generator is not None else torch.Generator().manual_seed(options.seed)
    size = working_size(*frames.shape[-2:], options.short_side, model.info.config.multiple, options.max_long_side)
    out = []
    for i in range(0, frames.shape[0], options.batch_size):
        l_full, _ = frames_to_lab(frames[i:i + options.batch_size].float())
        ab = sample_ab(model, downsample_l(l_full, size), steps=options.steps, sampler=options.sampler,
                       generator=g, eta=options.eta, callback=callback, guidance=options.guidance)
        out.append(denormalize_ab(ab.float().cpu()))
    return torch.cat(out)


@torch.no_grad()
def upscale_merge(frames: torch.Tensor, ab: torch.Tensor, upscale: Upscale | str = Upscale.GUIDED, *,
                  callback: Callback | None = None) -> torch.Tensor:
    """RGB ``[B, 3, H, W]`` (whose L is kept) + CIELAB ab ``[B, 2, h, w]`` -> RGB ``[B, 3, H, W]`` in [0, 1],
    the chroma upscaled guided by each frame's L; one frame at a time (``callback(i, B)`` after each)."""
    if not isinstance(frames, torch.Tensor) or frames.dim() != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"frames must be RGB [B, 3, H, W], got {shape}")
    if not isinstance(ab, torch.Tensor) or ab.dim() != 4 or ab.shape[1] != 2 or ab.shape[0] != frames.shape[0]:
        shape = tuple(ab.shape) if isinstance(ab, torch.Tensor) else type(ab).__name__
        raise InputError(f"chroma must be [{frames.shape[0]}, 2, h, w] for {frames.shape[0]} frame(s), got {shape}")
    if not bool(torch.isfinite(ab).all()):
        raise InputError("chroma contains NaN or infinite values: fix the node or code that made it")
    try:
        upscale = Upscale(upscale)
    except ValueError:
        raise InputError(f"upscale must be one of {[u.value for u in Upscale]}, got {upscale!r}") from None
    check_frames(frames)
    out = []
    for i in range(frames.shape[0]):
        l_full, _ = frames_to_lab(frames[i:i + 1].float())
        out.append(merge_to_rgb(l_full, upscale_ab(ab[i:i + 1], l_full, upscale)))
        if callback is not None:
            callback(i + 1, frames.shape[0])
    return torch.cat(out)


def colorize_frames(model: ColorModel, frames: torch.Tensor, options: SampleOptions = SampleOptions(), *,
                    upscale: Upscale | str = Upscale.GUIDED, generator: torch.Generator | None = None,
                    callback: Callback | None = None) -> torch.Tensor:
    """Colorize RGB (or grey) frames ``[B, 3, H, W]`` in [0, 1] independently -> ``[B, 3, H, W]`` in [0, 1].

    Only L of the input is used. Frames are sampled in batches of ``options.batch_size``.
    """
    ab = sample_frames_ab(model, frames, options, generator=generator, callback=callback)
    return upscale_merge(frames, ab, upscale)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W]`` / ``[H, W, 1|3|4]`` (RGB/RGBA) -> float ``[1, 3, H, W]`` in [0, 1]."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = f"{image.dtype} array" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"image must be a uint8 numpy array, got {got}; convert floats in [0, 1] with "
                         "(x * 255).round().astype(np.uint8)")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InputError(f"image must be [H, W], [H, W, 3] or [H, W, 4], got {image.shape}")
    if min(image.shape[:2]) < 1:
        raise InputError(f"image is empty: {image.shape}")
    image = image[..., :3] if image.shape[2] >= 3 else np.repeat(image, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def tensor_to_image(x: torch.Tensor) -> np.ndarray:
    """float ``[1, 3, H, W]`` / ``[3, H, W]`` in [0, 1] -> uint8 ``[H, W, 3]``."""
    x = x[0] if x.dim() == 4 else x
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


_MODEL_CACHE: dict[tuple[str, str, torch.dtype], ColorModel] = {}


def get_model(path: str | Path | None = None, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> ColorModel:
    """Load (once per process) the model at ``path``, or the shipped default."""
    p = resolve_model_path(path).resolve()
    key = (str(p), str(resolve_device(device)), dtype)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = load_model(p, device, dtype)
    return _MODEL_CACHE[key]


def colorize_image(image: np.ndarray, model: ColorModel | str | Path | None = None, *,
                   options: SampleOptions = SampleOptions(), upscale: Upscale | str = Upscale.GUIDED) -> np.ndarray:
    """Colorize one image: uint8 RGB ``[H, W, 3]`` (or grey ``[H, W]``) -> uint8 RGB ``[H, W, 3]``.

    A colour input is turned grey first (only its L is used). ``model`` is a loaded model,
    a checkpoint path, or ``None`` for the shipped default.
    """
    if not isinstance(options, SampleOptions):
        raise InputError(f"options must be a SampleOptions, got {type(options).__name__}")
    x = image_to_tensor(image)
    if not isinstance(model, ColorModel):
        model = get_model(model)
    return tensor_to_image(colorize_frames(model, x, options, upscale=upscale))
