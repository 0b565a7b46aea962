"""Diffusion: schedules, respacing, the denoiser contract, the training loss and samplers.

One contract joins model and sampler (k-diffusion's lesson): :class:`Denoiser` wraps a
network that predicts ``eps`` or ``v`` and turns its output into ``(x0, eps)`` for a noisy
``x_t`` at integer timestep ``t``. The training loss lives next to it, so training and
sampling cannot disagree on the parameterisation.

Notation (Ho et al. 2020): ``alphas_cumprod[t] = abar_t``; ``x_t = sqrt(abar_t) x0 +
sqrt(1 - abar_t) eps``; ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0`` (Salimans & Ho 2022).

Samplers are pure functions with one signature::

    sampler(denoiser, x, timesteps, *, cond, generator=None, callback=None) -> x0

``x`` is the starting sample at ``timesteps[0]`` (pure noise when that is ``T - 1``, or
a partly noised image from :func:`q_sample` for SDEdit-style refinement), ``timesteps``
a strictly decreasing 1-D int tensor ending at 0, and ``generator`` the only source of
randomness, so a seed reproduces a result exactly on the CPU. ``callback(i, n)`` is
called after each of the ``n`` model evaluations (progress bars, cancellation).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Protocol

import torch

from ..errors import InputError


class Schedule(str, enum.Enum):
    LINEAR = "linear"
    COSINE = "cosine"


class Prediction(str, enum.Enum):
    EPS = "eps"
    V = "v"


def linear_alphas_cumprod(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The original DDPM schedule (Ho et al. 2020): betas linear in [1e-4, 0.02]; ``[T]`` float64."""
    betas = torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def cosine_alphas_cumprod(num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, eq. 17), betas clipped at 0.999; ``[T]`` float64."""
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1.0 - betas, dim=0)


def make_schedule(schedule: Schedule | str, num_timesteps: int = 1000) -> torch.Tensor:
    """``alphas_cumprod`` ``[T]`` (float64, decreasing from ~1 to ~0) for a named schedule."""
    schedule = Schedule(schedule)
    if schedule is Schedule.LINEAR:
        return linear_alphas_cumprod(num_timesteps)
    return cosine_alphas_cumprod(num_timesteps)


def space_timesteps(num_timesteps: int, steps: int) -> torch.Tensor:
    """Respacing (Nichol & Dhariwal 2021, ``space_timesteps``): ``steps`` evenly spaced
    timesteps from ``T - 1`` down to ``0``, both endpoints kept. Returns a decreasing int64 tensor."""
    if not 1 <= steps <= num_timesteps:
        raise InputError(f"steps must be between 1 and {num_timesteps}, got {steps}")
    if steps == 1:
        return torch.tensor([num_timesteps - 1], dtype=torch.int64)
    ts = torch.linspace(num_timesteps - 1, 0, steps, dtype=torch.float64).round().long()
    return torch.unique_consecutive(ts)


class Model(Protocol):
    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor: ...


#: The condition a classifier-free-guidance model is trained with in place of L (outside L's
#: normalised range [-1, 1], so the network can always tell "no L" from a real frame).
NULL_COND = -2.0


class Guided:
    """Classifier-free guidance (Ho & Salimans 2022) around a network ``model(x, t, cond)``.

    Returns ``out_null + scale * (out_cond - out_null)``, where ``out_null`` is the output
    for the null condition (:data:`NULL_COND` everywhere). ``scale = 1`` is the plain
    conditional model (one evaluation); larger scales push the colours towards what L
    makes likely, away from the average colour of everything: more vivid and more decided.
    The two evaluations run as one batch.

    ``interval = (lo, hi)`` limits guidance to the noise levels ``lo <= t / (T - 1) <= hi``
    (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval"); at the other
    timesteps the conditional model runs alone, one evaluation instead of two.
    """

    def __init__(self, model: Model, scale: float, interval: tuple[float, float] = (0.0, 1.0),
                 num_timesteps: int = 1000) -> None:
        if not math.isfinite(scale) or scale < 0:
            raise InputError(f"guidance scale must be a finite number >= 0, got {scale}")
        lo, hi = check_interval(interval)
        self.model, self.scale = model, float(scale)
        self.t_lo, self.t_hi = lo * (num_timesteps - 1), hi * (num_timesteps - 1)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return self.model(x, t, cond)
        inside = (t >= self.t_lo - 1e-6) & (t <= self.t_hi + 1e-6)
        if not bool(inside.any()):
            return self.model(x, t, cond)
        null = torch.full_like(cond[:, :1], NULL_COND)
        null = torch.cat([null, cond[:, 1:]], 1)
        out = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, null]))
        out_c, out_n = out.chunk(2)
        guided = out_n + self.scale * (out_c - out_n)
        if bool(inside.all()):
            return guided
        return torch.where(inside.reshape(-1, *(1,) * (x.dim() - 1)).to(x.device), guided, out_c)


def check_interval(interval: tuple[float, float]) -> tuple[float, float]:
    """``(lo, hi)`` as floats with ``0 <= lo <= hi <= 1``, else :class:`InputError`."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise InputError(f"guidance interval must be two numbers (lo, hi), got {interval!r}") from None
    if not (0.0 <= lo <= hi <= 1.0):
        raise InputError(f"guidance interval must satisfy 0 <= lo <= hi <= 1, got ({lo}, {hi})")
    return lo, hi


class Denoiser:
    """Wraps a network ``model(x_t, t, cond)`` predicting ``eps`` or ``v`` as ``(x0, eps)``.

    ``alphas_cumprod`` is the training schedule ``[T]``. When ``clip_x0`` the predicted
    ``x0`` is clamped to [-1, 1] (the data range of normalised ab) and ``eps`` recomputed
    from it, as guided-diffusion's ``clip_denoised``.
    """

    def __init__(self, model: Model, alphas_cumprod: torch.Tensor, prediction: Prediction | str,
                 clip_x0: bool = True) -> None:
        self.model = model
        self.alphas_cumprod = alphas_cumprod.double()
        self.prediction = Prediction(prediction)
        self.clip_x0 = clip_x0

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    def coefficients(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(abar_t), sqrt(1 - abar_t)) broadcastable to ``like``."""
        abar = self.alphas_cumprod.to(like.device)[t.long().to(like.device)]
        shape = (-1,) + (1,) * (like.dim() - 1)
        return abar.sqrt().to(like.dtype).reshape(shape), (1 - abar).sqrt().to(like.dtype).reshape(shape)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        a, s = self.coefficients(t, x)
        out = self.model(x, t.to(x.device).float(), cond).to(x.dtype)
        if self.prediction is Prediction.EPS:
            eps = out
            x0 = (x - s * eps) / a
        else:
            x0 = a * x - s * out
            eps = s * x + a * out
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - a * x0) / s
        return x0, eps


def q_sample(alphas_cumprod: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Forward process ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` (Ho et al. eq. 4)."""
    abar = alphas_cumprod.to(x0.device)[t.long().to(x0.device)].to(x0.dtype)
    abar = abar.reshape((-1,) + (1,) * (x0.dim() - 1))
    return abar.sqrt() * x0 + (1 - abar).sqrt() * noise


def training_loss(model: Model, alphas_cumprod: torch.Tensor, prediction: Prediction | str, x0: torch.Tensor,
                  cond: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean squared error of the network's ``eps`` or ``v`` prediction (simple loss of Ho et al.).

    ``x0`` ``[B, 2, H, W]`` normalised ab, ``cond`` ``[B, C, H, W]``; ``t`` uniform over
    ``0..T-1``. Returns a scalar tensor.
    """
    prediction = Prediction(prediction)
    b = x0.shape[0]
    dev = generator.device if generator is not None else x0.device  # draw where the generator lives
    t = torch.randint(0, alphas_cumprod.shape[0], (b,), generator=generator, device=dev).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=dev, dtype=torch.float32).to(x0.device, x0.dtype)
    x_t = q_sample(alphas_cumprod, x0, t, noise)
    if prediction is Prediction.EPS:
        target = noise
    else:
        abar = alphas_cumprod.to(x0.device)[t].to(x0.dtype).reshape(-1, 1, 1, 1)
        target = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    out = model(x_t, t.float(), cond)
    return torch.mean((out.float() - target.float()) ** 2)


Callback = Callable[[int, int], None]


def _check_timesteps(timesteps: torch.Tensor, num_timesteps: int) -> torch.Tensor:
    timesteps = torch.as_tensor(timesteps, dtype=torch.int64).reshape(-1)
    if timesteps.numel() == 0:
        raise InputError("timesteps is empty")
    if bool((timesteps[1:] >= timesteps[:-1]).any()):
        raise InputError("timesteps must be strictly decreasing")
    if int(timesteps[0]) >= num_timesteps or int(timesteps[-1]) < 0:
        raise InputError(f"timesteps must lie in 0..{num_timesteps - 1}")
    return timesteps


def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # Drawn on the CPU so that a seed gives the same numbers on every device.
    return torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


def _abar_prev(denoiser: Denoiser, timesteps: torch.Tensor, i: int) -> float:
    return 1.0 if i + 1 >= len(timesteps) else float(denoiser.alphas_cumprod[timesteps[i + 1]])


@torch.no_grad()
def sample_ddim(denoiser: Denoiser, x: torch.Tensor, timesteps: torch.Tensor, *, cond: torch.Tensor,
                generator: torch.Generator | None = None, callback: Callback | None = None,
                eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12) over any respaced timesteps; ``eta=0`` is deterministic,
    ``eta=1`` the DDPM posterior. The step after the last timestep goes to ``abar = 1``."""
    if eta < 0:
        raise InputError(f"eta must be >= 0, got {eta}")
    timesteps = _check_timesteps(timesteps, denoiser.num_timesteps)
    n = len(timesteps)
    for i, t in enumerate(timesteps):
        x0, eps = denoiser(x, t.reshape(1), cond)
        abar = float(denoiser.alphas_cumprod[t])
        abar_prev = _abar_prev(denoiser, timesteps, i)
        sigma = eta * math.sqrt(max((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev), 0.0))
        x = math.sqrt(abar_prev) * x0 + math.sqrt(max(1 - abar_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * _randn(x, generator)
        if callback is not None:
            callback(i + 1, n)
    return x


@torch.no_grad()
def sample_ddpm(denoiser: Denoiser, x: torch.Tensor, timesteps: torch.Tensor, *, cond: torch.Tensor,
                generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) with the posterior variance
    ``beta~`` (eq. 7). Over all ``T`` timesteps this is what the original prototype did;
    over respaced timesteps the betas are recomputed from ``alphas_cumprod`` (Nichol & Dhariwal)."""
    timesteps = _check_timesteps(timesteps, denoiser.num_timesteps)
    n = len(timesteps)
    for i, t in enumerate(timesteps):
        x0, _ = denoiser(x, t.reshape(1), cond)
        abar = float(denoiser.alphas_cumprod[t])
        abar_prev = _abar_prev(denoiser, timesteps, i)
        beta = 1 - abar / abar_prev
        coef_x0 = math.sqrt(abar_prev) * beta / (1 - abar)
        coef_xt = math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)
        x = coef_x0 * x0 + coef_xt * x
        var = beta * (1 - abar_prev) / (1 - abar)
        if i + 1 < n and var > 0:
            x = x + math.sqrt(var) * _randn(x, generator)
        if callback is not None:
            callback(i + 1, n)
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoiser: Denoiser, x: torch.Tensor, timesteps: torch.Tensor, *, cond: torch.Tensor,
                    generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), data-prediction multistep solver of the
    probability-flow ODE in ``lambda = log(alpha / sigma)``; deterministic (``generator`` unused).
    The last step, from ``timesteps[-1]`` to clean data, returns the denoised estimate."""
    del generator
    timesteps = _check_timesteps(timesteps, denoiser.num_timesteps)
    n = len(timesteps)
    abar = denoiser.alphas_cumprod
    alpha = lambda t: math.sqrt(float(abar[t]))  # noqa: E731
    sigma = lambda t: math.sqrt(1 - float(abar[t]))  # noqa: E731
    lam = lambda t: math.log(alpha(t) / sigma(t))  # noqa: E731
    x0_prev = None
    h_prev = None
    for i, t in enumerate(timesteps):
        x0, _ = denoiser(x, t.reshape(1), cond)
        if i + 1 == n:
            x = x0
        else:
            t_next = timesteps[i + 1]
            h = lam(t_next) - lam(t)
            if x0_prev is None:
                d = x0
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = (sigma(t_next) / sigma(t)) * x - alpha(t_next) * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        if callback is not None:
            callback(i + 1, n)
    return x


class Sampler(str, enum.Enum):
    DDPM = "ddpm"
    DDIM = "ddim"
    DPMPP_2M = "dpmpp_2m"


SAMPLERS: dict[Sampler, Callable[..., torch.Tensor]] = {
    Sampler.DDPM: sample_ddpm,
    Sampler.DDIM: sample_ddim,
    Sampler.DPMPP_2M: sample_dpmpp_2m,
}
