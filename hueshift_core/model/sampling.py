"""Sampling colour from the model: normalised ab for normalised L at the working resolution.

* :class:`SampleOptions` — how keyframe colour is sampled (steps, sampler, seed, working size, ...);
* :func:`working_size` — the model's resolution for a frame, keeping its aspect ratio;
* :func:`guidance_scale` — the classifier-free guidance scale a model is sampled with;
* :func:`sample_ab` — diffusion sampling of normalised ab for normalised L (batched),
  from noise or, SDEdit-style (Meng et al. 2022), from a partly re-noised initial colour;
* :func:`colour_ab` — what every entry point calls: the colour prior's ab (hueshift-v3 on), then, at
  ``variety > 0``, diffusion sampling anchored on it (SDEdit from the prior's colour at strength
  ``variety``); a model without a prior (v1, v2) samples from noise as before;
* :func:`for_video`, :func:`lift_gain` — the options the video path samples with (the model's own video
  saturation) and the per-frame gain it gives.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .checkpoint import ColorModel
from .lab import AB_SCALE, normalize_l
from .prior import MAX_VIDEO_CHROMA, MAX_VIDEO_TARGET, MIN_VIDEO_CHROMA
from .diffusion import (SAMPLERS, Callback, Denoiser, Guided, Sampler, check_interval, q_sample, sample_ddim,
                        space_timesteps)


@dataclass(frozen=True)
class SampleOptions:
    """How keyframe colour is sampled."""

    steps: int = 8  # DPM-Solver++(2M), no guidance: held-out scenes and clips as close to the truth as 10 steps
    sampler: Sampler = Sampler.DPMPP_2M  # (and as DDIM 25 with guidance 1.25) for a sixth of the passes (model card)
    eta: float = 0.0
    seed: int = 0
    short_side: int = 64  # working resolution: the short side, in pixels (multiple of 8)
    max_long_side: int = 256
    batch_size: int = 8
    guidance: float | None = None  # classifier-free guidance scale; None = the model's own default
    guidance_interval: tuple[float, float] = (0.0, 1.0)  # noise levels t/(T-1) where guidance applies
    # The colour prior (models that carry one, hueshift-v3 on): see colour_ab.
    variety: float = 0.0  # 0 = the prior's colour alone (one pass); up to 1 = diffusion re-noised from it that far
    temperature: float | None = None  # annealed-mean temperature; None = the model's own (lower = bolder colour)
    chroma: float = 1.0  # scales the prior's a, b (1 = as predicted)
    balance: float | None = None  # share of the prior's class rebalancing undone (0-1); None = the model's own
    # the video path's saturation (set by for_video from the model's own): (target, most): each frame's prior
    # colour is scaled up so its mean CIELAB chroma nears ``target``, by at most ``most`` (target 0: by ``most``)
    lift: tuple[float, float] | None = None

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
        for name, lo, hi in (("variety", 0.0, 1.0), ("chroma", 0.0, 3.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise InputError(f"{name} must be a number from {lo:g} to {hi:g}, got {value!r}")
        if self.temperature is not None and (isinstance(self.temperature, bool) or not isinstance(
                self.temperature, (int, float)) or not 0.01 <= self.temperature <= 2.0):
            raise InputError(f"temperature must be a number from 0.01 to 2, got {self.temperature!r}")
        if self.balance is not None and (isinstance(self.balance, bool) or not isinstance(
                self.balance, (int, float)) or not 0.0 <= self.balance <= 1.0):
            raise InputError(f"balance must be a number from 0 to 1, got {self.balance!r}")
        if self.lift is not None:
            try:
                target, most = (float(v) for v in self.lift)
            except (TypeError, ValueError):
                raise InputError(f"lift must be (target, most), got {self.lift!r}") from None
            if not (0.0 <= target <= MAX_VIDEO_TARGET and MIN_VIDEO_CHROMA <= most <= MAX_VIDEO_CHROMA):
                raise InputError(f"lift (target, most) must be in [0, {MAX_VIDEO_TARGET:g}] x "
                                 f"[{MIN_VIDEO_CHROMA:g}, {MAX_VIDEO_CHROMA:g}], got {self.lift!r}")
            object.__setattr__(self, "lift", (target, most))
        object.__setattr__(self, "guidance_interval", check_interval(self.guidance_interval))
        try:
            object.__setattr__(self, "sampler", Sampler(self.sampler))
        except ValueError:
            raise InputError(f"sampler must be one of {[m.value for m in Sampler]}, got {self.sampler!r}") from None


MAX_STEPS = 10_000
MAX_SEED = 2**64 - 1


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
def sample_ab(model: ColorModel, l_norm: torch.Tensor, *, steps: int = 8, sampler: Sampler | str = Sampler.DPMPP_2M,
              generator: torch.Generator, eta: float = 0.0, init_ab: torch.Tensor | None = None,
              strength: float = 1.0, noise: torch.Tensor | None = None,
              callback: Callback | None = None, guidance: float | None = None,
              guidance_interval: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Sample normalised ab ``[B, 2, h, w]`` (about [-1, 1]) for normalised L ``[B, 1, h, w]`` in [-1, 1].

    ``init_ab`` with ``strength < 1`` starts from that colour noised to timestep
    ``strength * (T - 1)`` (SDEdit), running about ``steps * strength`` steps: later
    keyframes keep what earlier ones chose unless the model disagrees. ``noise``
    ``[B, 2, h, w]`` replaces the drawn noise (share it across frames for steadier colour).
    ``guidance`` is the classifier-free guidance scale (None: the model's default,
    :func:`guidance_scale`); a scale other than 1 doubles the network evaluations at the
    timesteps inside ``guidance_interval`` (fractions of the noise range, :class:`Guided`).
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
    guided = Guided(net, scale, guidance_interval, int(model.alphas_cumprod.shape[0])) if scale != 1.0 else net
    denoiser = Denoiser(guided, model.alphas_cumprod, model.info.prediction)
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


def prior_size(model: ColorModel, work: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the prior's closer look (:func:`prior_ab`) for a working size ``work``: short side
    ``model.prior_decoding.side`` (hueshift-v4: 96, v5: 128), the aspect of ``work``, multiples of 8; ``work``
    itself when that is no closer. (Also for a source smaller than that, e.g. a 64x64 photo, whose L is then
    enlarged: the two looks together still measure better there, docs/model-card.md.)"""
    side = max(int(model.prior_decoding.side), min(work))
    if side == min(work):
        return tuple(work)
    scale = side / min(work)
    return tuple(max(8, int(round(n * scale / 8)) * 8) for n in work)


def closer_l(model: ColorModel, l: torch.Tensor, work: tuple[int, int]) -> torch.Tensor | None:
    """The L of the prior's closer look: L ``[B, 1, H, W]`` in [0, 100] (any size: the frame's, or a copy the
    caller keeps) -> normalised L at :func:`prior_size` (area filter), or None when the model has no prior or the
    look would be no closer than ``work``. What ``l_prior`` of :func:`prior_ab` / :func:`colour_ab` takes."""
    if model.prior is None:
        return None
    psize = prior_size(model, work)
    return None if psize == tuple(work) else normalize_l(F.interpolate(l, size=psize, mode="area"))


def _look(prior, l: torch.Tensor, hint_ab: torch.Tensor | None, hint_mask: torch.Tensor | None,
          flip: bool) -> torch.Tensor:
    """The prior's logits for one look at L (and hints); with ``flip``, averaged with those of the mirrored
    frame, mirrored back."""
    if not flip:
        return prior(l, hint_ab, hint_mask)
    both = lambda x: None if x is None else torch.cat([x, x.flip(-1)])  # noqa: E731  (one batch: faster on a CPU)
    logits = prior(both(l), both(hint_ab), both(hint_mask))
    return (logits[:len(l)] + logits[len(l):].flip(-1)) / 2


def prior_ab(model: ColorModel, l_norm: torch.Tensor, options: SampleOptions = SampleOptions(), *,
             hint_ab: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None,
             l_prior: torch.Tensor | None = None) -> torch.Tensor:
    """The colour prior's normalised ab ``[B, 2, h, w]`` for normalised L ``[B, 1, h, w]`` (deterministic), at
    ``options.temperature`` (None: the model's) and ``options.balance``, decoded with the model's hue rule
    and neutral pull (:class:`~.prior.PriorDecoding`), lifted by ``options.lift`` (the video path's
    saturation, :func:`lift_gain`) and scaled by ``options.chroma``.

    ``l_prior`` ``[B, 1, H', W']``: the same frames' L at :func:`prior_size`, a closer look: the network sees
    both, and its two distributions are averaged (two scales see different things: small objects up close,
    the layout of the scene from afar); None: one look at ``l_norm``. With the model's ``flip`` each look is
    also taken of the mirrored frame (its logits mirrored back and averaged in).
    ``hint_ab`` ``[B, 2, h, w]`` (normalised) with ``hint_mask`` ``[B, 1, h, w]`` (0/1): user colours, given to
    the network's hint channels and then spread over the surfaces they sit on
    (:func:`hueshift_core.hints.spread_hints`)."""
    if model.prior is None:
        raise InputError(f"model {Path(model.path).name or '(in memory)'} has no colour prior (hueshift-v3 and "
                         "later have one): use the default model")
    dec = model.prior_decoding
    t = dec.temperature if options.temperature is None else float(options.temperature)
    dev = next(model.prior.parameters()).device
    l = l_norm.to(dev, torch.float32)
    if hint_ab is not None:
        hint_ab, hint_mask = hint_ab.to(dev, torch.float32), hint_mask.to(dev, torch.float32)
    logits = _look(model.prior, l, hint_ab, hint_mask, dec.flip)
    if l_prior is not None and tuple(l_prior.shape[-2:]) != tuple(l.shape[-2:]):
        close = l_prior.to(dev, torch.float32)
        hint_c = mask_c = None
        if hint_ab is not None:  # each hint where it falls at the closer size
            hint_c = F.interpolate(hint_ab, size=close.shape[-2:], mode="nearest")
            mask_c = F.interpolate(hint_mask, size=close.shape[-2:], mode="nearest")
        far = _look(model.prior, close, hint_c, mask_c, dec.flip)
        logits = (logits + F.interpolate(far, size=logits.shape[-2:], mode="bilinear", align_corners=False)) / 2
    b = dec.balance if options.balance is None else float(options.balance)
    ab = model.prior.decode(logits, t, size=tuple(l.shape[-2:]), balance=b, hue=dec.hue, neutral=dec.neutral)
    if options.lift is not None:
        ab = ab * lift_gain(ab, *options.lift)[:, None, None, None]
    ab = ab * float(options.chroma)
    if hint_ab is not None and hint_mask is not None and bool((hint_mask > 0).any()):
        from ..hints import spread_hints  # the hints' colour, spread along surfaces of like lightness

        ab = spread_hints(ab, l, hint_ab, hint_mask)
    return ab.clamp(-1.0, 1.0)


def lift_gain(ab: torch.Tensor, target: float, most: float) -> torch.Tensor:
    """Per-frame saturation gain ``[B]`` for normalised ab ``[B, 2, h, w]``: ``target`` over the frame's mean
    CIELAB chroma, at least 1 and at most ``most`` (a frame already that colourful keeps its colour; a grey
    one gains ``most``); ``target`` 0: ``most`` for every frame."""
    if target <= 0.0:
        return torch.full((ab.shape[0],), float(most), dtype=ab.dtype, device=ab.device)
    mean = (ab.float() * AB_SCALE).norm(dim=1).mean(dim=(1, 2)).clamp(min=1e-3)
    return (target / mean).clamp(min=1.0).clamp(max=float(most)).to(ab.dtype)


def for_video(model: ColorModel, options: SampleOptions) -> SampleOptions:
    """The options the video path samples with: the model's own video saturation as ``options.lift``
    (:attr:`~.prior.PriorDecoding.video_target` and ``video_chroma``; hueshift-v8: each frame's colour lifted
    towards a mean chroma of 15, by at most 2x; :func:`lift_gain`), ``options.chroma`` on top. The video path's
    keyframe colour (:class:`~hueshift_core.video.keyframe_colour.KeyframeColorizer`: the pipeline and the
    staged ComfyUI graph) and DDPM Colorize on frames use it; photos, and frames the user gave hints, take
    ``options`` as given (the hints settle the colour the lift makes up for). The same options for a model
    without a colour prior, or whose video saturation is 1."""
    dec = model.prior_decoding
    if model.prior is None or dec.video_chroma == 1.0:
        return options
    return dataclasses.replace(options, lift=(dec.video_target, dec.video_chroma))


@torch.no_grad()
def colour_ab(model: ColorModel, l_norm: torch.Tensor, options: SampleOptions = SampleOptions(), *,
              generator: torch.Generator, noise: torch.Tensor | None = None, init_ab: torch.Tensor | None = None,
              strength: float = 1.0, hint_ab: torch.Tensor | None = None, hint_mask: torch.Tensor | None = None,
              l_prior: torch.Tensor | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Normalised ab ``[B, 2, h, w]`` for normalised L ``[B, 1, h, w]``: the one colour call of every entry point.

    With a colour prior in the model (hueshift-v3 on): the prior's colour (:func:`prior_ab`, with the hints,
    and a closer look at ``l_prior`` when given: L at :func:`prior_size`);
    at ``options.variety > 0`` the diffusion model re-noises it to that share of the noise range and
    samples back (SDEdit anchored on the prior). ``init_ab`` (colour carried into a later keyframe) with
    ``strength < 1`` replaces the anchor by that colour re-noised to ``min(strength, variety)``; at variety 0
    the prior's colour is returned as it is. Without a prior (v1, v2): :func:`sample_ab` from noise, or
    from ``init_ab`` at ``strength`` - exactly what those models always did.
    """
    o = options
    if model.prior is None:
        return sample_ab(model, l_norm, steps=o.steps, sampler=o.sampler, generator=generator, eta=o.eta,
                         init_ab=init_ab, strength=strength, noise=noise, callback=callback,
                         guidance=o.guidance, guidance_interval=o.guidance_interval)
    anchor = prior_ab(model, l_norm, o, hint_ab=hint_ab, hint_mask=hint_mask, l_prior=l_prior)
    if o.variety <= 0.0:
        if callback is not None:
            callback(1, 1)
        return anchor.to(model.device)
    start = anchor
    s = float(o.variety)
    if init_ab is not None and strength < 1.0:
        start, s = init_ab, min(float(strength), s)
    return sample_ab(model, l_norm, steps=o.steps, sampler=o.sampler, generator=generator, eta=o.eta,
                     init_ab=start, strength=s if s < 1.0 else 0.999, noise=noise, callback=callback,
                     guidance=o.guidance, guidance_interval=o.guidance_interval)
