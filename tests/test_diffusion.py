"""Samplers against an analytic denoiser: for Gaussian data x0 ~ N(mu, s^2) the exact
posterior mean E[x0 | x_t] is known, so each sampler must reproduce mean mu and std s."""

import math

import pytest
import torch

from hueshift_core.errors import InputError
from hueshift_core.model import diffusion as D

MU, S = 0.3, 0.5


def analytic_model(alphas_cumprod, prediction):
    def model(x, t, cond):
        abar = alphas_cumprod[t.long()].to(x.dtype).reshape(-1, 1, 1, 1)
        a, sg = abar.sqrt(), (1 - abar).sqrt()
        ex0 = MU + a * S * S / (abar * S * S + 1 - abar) * (x - a * MU)
        eps = (x - a * ex0) / sg
        return eps if prediction == "eps" else a * eps - sg * ex0
    return model


CASES = [  # (sampler, steps, extra kwargs)
    (D.sample_ddpm, 1000, {}),
    (D.sample_ddim, 200, {}),
    (D.sample_ddim, 500, {"eta": 1.0}),
    (D.sample_dpmpp_2m, 100, {}),
]


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("sampler,steps,kw", CASES, ids=["ddpm1000", "ddim200", "ddim500-eta1", "dpmpp2m100"])
def test_sampler_reproduces_gaussian(schedule, prediction, sampler, steps, kw):
    ac = D.make_schedule(schedule)
    den = D.Denoiser(analytic_model(ac, prediction), ac, prediction, clip_x0=False)
    g = torch.Generator().manual_seed(0)
    n = 20000
    x = torch.randn(n, 1, 1, 1, generator=g, dtype=torch.float64)
    out = sampler(den, x, D.space_timesteps(1000, steps), cond=None, generator=g, **kw)
    se = S / math.sqrt(n)
    assert abs(float(out.mean()) - MU) < 5 * se + 0.005, float(out.mean())
    assert abs(float(out.std()) - S) < 0.03 * S, float(out.std())


def test_few_step_samplers_still_close():
    ac = D.make_schedule("cosine")
    den = D.Denoiser(analytic_model(ac, "v"), ac, "v", clip_x0=False)
    x = torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for fn, steps in [(D.sample_ddim, 25), (D.sample_dpmpp_2m, 20)]:
        out = fn(den, x, D.space_timesteps(1000, steps), cond=None)
        assert abs(float(out.std()) - S) < 0.15 * S


def test_respacing_keeps_endpoints_and_is_decreasing():
    for steps in (1, 2, 3, 10, 25, 999, 1000):
        ts = D.space_timesteps(1000, steps)
        assert len(ts) == steps
        assert int(ts[0]) == 999
        if steps > 1:
            assert int(ts[-1]) == 0
            assert bool((ts[1:] < ts[:-1]).all())
    with pytest.raises(InputError):
        D.space_timesteps(1000, 0)
    with pytest.raises(InputError):
        D.space_timesteps(1000, 1001)


def test_schedules():
    lin, cos = D.make_schedule("linear"), D.make_schedule("cosine")
    assert lin.shape == cos.shape == (1000,)
    assert abs(float(1 - lin[0]) - 1e-4) < 1e-9  # beta_1 = 1e-4
    assert float(lin[-1]) < 1e-4 and float(cos[-1]) < 1e-4
    assert bool((lin[1:] < lin[:-1]).all()) and bool((cos[1:] < cos[:-1]).all())


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_denoiser_inverts_forward_process(prediction):
    """A model that outputs the true eps / v target gives back x0 exactly."""
    ac = D.make_schedule("cosine")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 2, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    noise = torch.randn(4, 2, 8, 8, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 10, 500, 990])
    xt = D.q_sample(ac, x0, t, noise)
    abar = ac[t].reshape(-1, 1, 1, 1)
    target = noise if prediction == "eps" else abar.sqrt() * noise - (1 - abar).sqrt() * x0
    den = D.Denoiser(lambda x, tt, c: target, ac, prediction, clip_x0=False)
    x0_hat, eps_hat = den(xt, t, None)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, noise)


def test_training_loss_zero_for_perfect_model():
    ac = D.make_schedule("linear")
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x0 = torch.zeros(3, 2, 8, 8)
    # with x0 = 0, eps-target is the noise, which equals x_t / sqrt(1 - abar)
    def model(x, t, cond):
        abar = ac[t.long()].float().reshape(-1, 1, 1, 1)
        return x / (1 - abar).sqrt()
    loss = D.training_loss(model, ac, "eps", x0, None, generator=g1)
    assert float(loss) < 1e-10
    assert float(D.training_loss(lambda x, t, c: torch.zeros_like(x), ac, "eps", x0, None, generator=g2)) > 0.5


@pytest.mark.parametrize("sampler", [D.sample_ddpm, D.sample_ddim, D.sample_dpmpp_2m])
def test_seed_reproduces_exactly(sampler):
    ac = D.make_schedule("cosine")
    den = D.Denoiser(analytic_model(ac, "eps"), ac, "eps")
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(42)
        x = torch.randn(2, 2, 4, 4, generator=g)
        kw = {"eta": 0.5} if sampler is D.sample_ddim else {}
        outs.append(sampler(den, x, D.space_timesteps(1000, 10), cond=None, generator=g, **kw))
    assert torch.equal(outs[0], outs[1])
    assert outs[0].shape == (2, 2, 4, 4)


def test_callback_and_bad_timesteps():
    ac = D.make_schedule("cosine")
    den = D.Denoiser(analytic_model(ac, "eps"), ac, "eps")
    calls = []
    D.sample_ddim(den, torch.randn(1, 2, 4, 4), D.space_timesteps(1000, 7), cond=None,
                  callback=lambda i, n: calls.append((i, n)))
    assert calls == [(i, 7) for i in range(1, 8)]
    with pytest.raises(InputError, match="decreasing"):
        D.sample_ddim(den, torch.randn(1, 2, 4, 4), torch.tensor([0, 5]), cond=None)
    with pytest.raises(InputError, match="eta"):
        D.sample_ddim(den, torch.randn(1, 2, 4, 4), torch.tensor([5, 0]), cond=None, eta=-1)
