"""The colour prior: the network, its bins and loss pieces, the checkpoint it ships in, the sampling anchored
on it, and its resumable training."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hueshift_core.errors import CheckpointError, InputError
from hueshift_core.model.checkpoint import ModelInfo, load_model, load_prior, load_state, save_checkpoint
from hueshift_core.model.lab import AB_SCALE
from hueshift_core.model.diffusion import Prediction, Schedule
from hueshift_core.model.prior import (ColourPrior, PriorConfig, PriorDecoding, gamut_bins, rebalance_weights,
                                       soft_targets)
from hueshift_core.model.sampling import SampleOptions, colour_ab, prior_ab
from hueshift_core.model.unet import ColorUNet

from conftest import TINY

TINY_PRIOR = PriorConfig(widths=(8, 16, 16, 32), blocks=(0, 1, 1, 1))


def _tiny_prior(seed: int = 0) -> ColourPrior:
    torch.manual_seed(seed)
    net = ColourPrior(TINY_PRIOR)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def prior_model_path(tmp_path_factory):
    torch.manual_seed(0)
    net = ColorUNet(TINY)
    with torch.no_grad():
        net.out.weight.normal_(0, 0.02)
    path = tmp_path_factory.mktemp("prior") / "tiny-v3.safetensors"
    save_checkpoint(path, net.state_dict(), ModelInfo(TINY, Schedule.COSINE, 1000, Prediction.V, {"test": True}),
                    prior=_tiny_prior(), prior_decoding=PriorDecoding(temperature=0.5),
                    prior_provenance={"crops_seen": 7})
    return path


def test_gamut_bins_cover_srgb_and_only_it():
    bins = gamut_bins()
    assert 200 < len(bins) < 484  # the in-gamut part of the 22x22 grid
    assert np.abs(bins).max() <= 110
    assert (np.abs(bins).sum(1) == 10).any()  # the bins around grey are there (centres at +-5)


def test_network_shapes_any_working_size_and_hints():
    net = _tiny_prior()
    for h, w in ((64, 112), (64, 88), (64, 64), (40, 72)):
        l = torch.rand(2, 1, h, w) * 2 - 1
        logits = net(l)
        assert logits.shape == (2, TINY_PRIOR.num_bins, math.ceil(h / 4), math.ceil(w / 4))
        ab = net.predict(l)
        assert ab.shape == (2, 2, h, w) and ab.abs().max() <= 1.0
    l = torch.rand(1, 1, 64, 64) * 2 - 1
    hint, mask = torch.zeros(1, 2, 64, 64), torch.zeros(1, 1, 64, 64)
    torch.testing.assert_close(net.predict(l, hint, mask), net.predict(l))  # zero hints = no hints
    hint[:, 0], mask[:, :, 20:30, 20:30] = 0.5, 1.0
    assert not torch.allclose(net.predict(l, hint, mask), net.predict(l))  # hints reach the output
    with pytest.raises(InputError, match=r"\[B, 1, H, W\]"):
        net(torch.zeros(1, 3, 64, 64))
    with pytest.raises(InputError, match="temperature"):
        net.decode(net(l), temperature=5.0)


def test_lower_temperature_gives_bolder_colour():
    """A patch that is most likely a strong colour but might be grey: the annealed mean moves from the
    mean (desaturated) towards the mode as the temperature falls."""
    net = _tiny_prior()
    c = net.bins * AB_SCALE
    colour = ((c - torch.tensor([40.0, -30.0])) ** 2).sum(1)
    grey = (c ** 2).sum(1)
    logits = torch.logsumexp(torch.stack([-colour / 800, -grey / 800 - 0.5]), 0)[None, :, None, None]
    chroma = [float(net.decode(logits, t).norm(dim=1).mean()) for t in (1.0, 0.38, 0.1)]
    assert chroma[0] < chroma[1] < chroma[2]


def test_hue_of_the_mean_keeps_the_annealed_chroma():
    """decode(hue="mean"): the calibrated mean's hue, the annealed mean's chroma; a patch torn between two hues
    takes the hue between them, not the (slightly) likelier one."""
    net = _tiny_prior()
    c = net.bins * AB_SCALE
    red = ((c - torch.tensor([50.0, 20.0])) ** 2).sum(1)
    blue = ((c - torch.tensor([20.0, -50.0])) ** 2).sum(1)
    logits = torch.logsumexp(torch.stack([-red / 200, -blue / 200 - 0.1]), 0)[None, :, None, None]
    ann, hm = net.decode(logits, 0.38), net.decode(logits, 0.38, hue="mean")
    mean = net.decode(logits, 1.0, balance=1.0)
    torch.testing.assert_close(hm.norm(dim=1), ann.norm(dim=1))
    torch.testing.assert_close(hm / hm.norm(dim=1, keepdim=True), mean / mean.norm(dim=1, keepdim=True))
    angle = lambda ab: math.degrees(math.atan2(float(ab[0, 1]), float(ab[0, 0])))  # noqa: E731
    assert angle(ann) > angle(hm) > -68  # the annealed mean leans to red (22 deg); the mean's hue lies between
    with pytest.raises(InputError, match="hue"):
        net.decode(logits, hue="mode")


def test_neutral_takes_chroma_off_every_colour_and_greys_faint_casts():
    """decode(neutral=n): a soft threshold on the chroma: a colour keeps its hue and loses n CIELAB units of
    chroma, a colour fainter than n becomes grey; n = 0 leaves the decoding as it was."""
    net = _tiny_prior()
    c = net.bins * AB_SCALE
    logits = torch.stack([-((c - torch.tensor(ab)) ** 2).sum(1) / 50 for ab in ([30.0, 40.0], [2.0, 1.0])], 1)
    logits = logits[None, :, :, None]  # two patches: a strong colour and a faint cast
    plain, pulled = net.decode(logits, 0.38) * AB_SCALE, net.decode(logits, 0.38, neutral=6.0) * AB_SCALE
    chroma = plain.norm(dim=1)
    assert float(chroma[0, 0]) > 40 and float(chroma[0, 1]) < 6  # the strong colour and the faint one
    torch.testing.assert_close(pulled.norm(dim=1)[0, 0], chroma[0, 0] - 6.0)
    torch.testing.assert_close(pulled[0, :, 0] / pulled[0, :, 0].norm(), plain[0, :, 0] / plain[0, :, 0].norm())
    assert float(pulled[0, :, 1].abs().max()) == 0.0  # the faint cast is grey
    torch.testing.assert_close(net.decode(logits, 0.38, neutral=0.0), net.decode(logits, 0.38))
    with pytest.raises(InputError, match="neutral"):
        net.decode(logits, neutral=-1.0)
    with pytest.raises(InputError, match="neutral"):
        PriorDecoding(neutral=25.0)


def test_the_prior_takes_a_closer_look(prior_model_path):
    from hueshift_core.model.sampling import prior_size

    model = load_model(prior_model_path)
    dec = model.prior_decoding
    assert (dec.side, dec.hue, dec.flip) == (64, "annealed", False)  # files without the fields: as shipped before
    assert prior_size(model, (64, 112)) == (64, 112)  # side 64: one look
    model.prior_decoding = dataclasses.replace(dec, side=96)
    assert prior_size(model, (64, 112)) == (96, 168) and prior_size(model, (64, 64)) == (96, 96)
    assert prior_size(model, (128, 224)) == (128, 224)  # a working size already as close: one look
    l_work, l_big = torch.rand(1, 1, 64, 112) * 2 - 1, torch.rand(1, 1, 96, 168) * 2 - 1
    a = prior_ab(model, l_work, l_prior=l_big)  # both looks, the distributions averaged, at the working size
    assert a.shape == (1, 2, 64, 112)
    net = model.prior
    both = (net(l_work) + F.interpolate(net(l_big), size=(16, 28), mode="bilinear", align_corners=False)) / 2
    torch.testing.assert_close(a, net.decode(both, dec.temperature, size=(64, 112)).clamp(-1, 1))
    assert not torch.allclose(a, prior_ab(model, l_work))
    # flip: each look also sees the mirrored frame; a mirrored frame then gets exactly the mirrored colour
    model.prior_decoding = dataclasses.replace(dec, side=96, flip=True)
    f = prior_ab(model, l_work, l_prior=l_big)
    assert not torch.allclose(f, a)
    torch.testing.assert_close(prior_ab(model, l_work.flip(-1), l_prior=l_big.flip(-1)), f.flip(-1))
    m = lambda x: x.flip(-1)  # noqa: E731
    flipped = (net(l_work) + m(net(m(l_work))) + F.interpolate(net(l_big) + m(net(m(l_big))), size=(16, 28),
                                                                mode="bilinear", align_corners=False)) / 4
    torch.testing.assert_close(f, net.decode(flipped, dec.temperature, size=(64, 112)).clamp(-1, 1))


def test_prior_decoding_settings_ship_in_the_file(prior_model_path, tmp_path):
    from safetensors.torch import save_file

    model = load_model(prior_model_path)
    save_checkpoint(tmp_path / "v.safetensors", model.net.state_dict(), model.info, prior=model.prior,
                    prior_decoding=PriorDecoding(temperature=0.4, balance=0.6, hue="mean", side=96, flip=True,
                                                 neutral=3.0, video_chroma=1.5))
    m = load_model(tmp_path / "v.safetensors")
    assert m.prior_decoding == PriorDecoding(0.4, 0.6, "mean", 96, True, 3.0, 1.5)
    assert load_model(prior_model_path).prior_decoding.neutral == 0.0  # a file from before: no neutral pull
    tensors, meta = load_state(tmp_path / "v.safetensors")
    for key, value, match in (("hueshift.prior_hue", "mode", "hue"), ("hueshift.prior_side", "100", "side"),
                              ("hueshift.prior_side", "x", "colour-prior metadata"),
                              ("hueshift.prior_flip", "yes", "colour-prior metadata"),
                              ("hueshift.prior_balance", "1.5", "balance"),
                              ("hueshift.prior_neutral", "-1", "neutral"),
                              ("hueshift.prior_neutral", "warm", "colour-prior metadata"),
                              ("hueshift.prior_video_chroma", "4", "video chroma"),
                              ("hueshift.prior_video_chroma", "nan", "video chroma")):
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, key: value})
        with pytest.raises(CheckpointError, match=match):
            load_model(tmp_path / "bad.safetensors")


def test_soft_targets_and_rebalancing():
    bins = torch.from_numpy(gamut_bins()) / AB_SCALE
    ab = torch.tensor([[40.0, -30.0], [0.0, 0.0]]).T.reshape(1, 2, 1, 2) / AB_SCALE
    t = soft_targets(ab, bins)
    torch.testing.assert_close(t.sum(1), torch.ones(1, 1, 2))
    centre = (t[0, :, 0, 0, None] * bins).sum(0) * AB_SCALE  # the soft target's mean is near the colour
    assert torch.allclose(centre, torch.tensor([40.0, -30.0]), atol=3.0)
    counts = torch.zeros(len(bins))
    counts[t[0, :, 0, 1].argmax()] = 1000  # greys common
    counts[t[0, :, 0, 0].argmax()] = 10  # a colour rare
    w = rebalance_weights(counts, bins)
    p = counts / counts.sum()
    assert abs(float((p * w).sum()) - 1.0) < 1e-4
    assert w[t[0, :, 0, 0].argmax()] > 3 * w[t[0, :, 0, 1].argmax()]  # the rare colour weighs more


def test_prior_ships_in_the_model_file_and_loads(prior_model_path, tiny_model_path):
    model = load_model(prior_model_path)
    assert model.prior is not None and model.prior_decoding.temperature == 0.5
    assert model.prior.config == TINY_PRIOR
    prior, dec = load_prior(prior_model_path)
    assert dec.temperature == 0.5
    assert load_model(tiny_model_path).prior is None  # v1/v2-style files load as before
    with pytest.raises(CheckpointError, match="no colour prior"):
        load_prior(tiny_model_path)


def test_a_corrupt_prior_is_refused(prior_model_path, tmp_path):
    from safetensors.torch import save_file

    tensors, meta = load_state(prior_model_path)
    bad = dict(tensors)
    bad["prior.head.weight"] = bad["prior.head.weight"][:3]
    save_file(bad, str(tmp_path / "a.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="colour-prior tensor 'head.weight' has shape"):
        load_model(tmp_path / "a.safetensors")
    bad = dict(tensors)
    bad["prior.head.bias"] = torch.full_like(bad["prior.head.bias"], float("nan"))
    save_file(bad, str(tmp_path / "b.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="NaN"):
        load_model(tmp_path / "b.safetensors")
    save_file(tensors, str(tmp_path / "c.safetensors"), metadata={**meta, "hueshift.prior_config": '{"widths": 3}'})
    with pytest.raises(CheckpointError, match="colour-prior metadata"):
        load_model(tmp_path / "c.safetensors")
    save_file(tensors, str(tmp_path / "d.safetensors"), metadata={k: v for k, v in meta.items() if "prior" not in k})
    with pytest.raises(CheckpointError, match="no 'hueshift.prior_config'"):
        load_model(tmp_path / "d.safetensors")


def test_colour_ab_is_the_prior_at_variety_0_and_samples_around_it_above(prior_model_path, tiny_model_path):
    model = load_model(prior_model_path)
    l = torch.rand(2, 1, 64, 64) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = colour_ab(model, l, SampleOptions(), generator=g())
    torch.testing.assert_close(a, prior_ab(model, l, SampleOptions()))
    torch.testing.assert_close(a, colour_ab(model, l, SampleOptions(seed=9), generator=torch.Generator().manual_seed(9)))
    bold = colour_ab(model, l, SampleOptions(chroma=1.5), generator=g())
    assert float(bold.abs().mean()) > float(a.abs().mean())
    other = colour_ab(model, l, SampleOptions(temperature=1.5), generator=g())  # the option reaches the prior
    torch.testing.assert_close(other, prior_ab(model, l, SampleOptions(temperature=1.5)))
    assert not torch.allclose(other, a)
    varied = colour_ab(model, l, SampleOptions(variety=0.4, steps=4), generator=g())
    assert varied.shape == a.shape and not torch.allclose(varied, a)
    # without a prior (v1, v2): diffusion from noise, as before
    plain = load_model(tiny_model_path)
    assert colour_ab(plain, l, SampleOptions(steps=2), generator=g()).shape == a.shape
    with pytest.raises(InputError, match="no colour prior"):
        prior_ab(plain, l)


@pytest.mark.parametrize("field,value", [("variety", 1.5), ("variety", -0.1), ("chroma", 4.0), ("temperature", 0.0),
                                         ("temperature", 3.0), ("variety", True)])
def test_sample_options_refuse_out_of_range_colour_settings(field, value):
    with pytest.raises(InputError, match=field):
        SampleOptions(**{field: value})


def test_training_runs_checkpoints_and_resumes_exactly(tmp_path):
    """A few steps, a checkpoint, a resume: the resumed run continues where the first one stopped, with the
    cumulative crops and the best export kept."""
    from hueshift_core.training.data import ImageSet
    from hueshift_core.training.prior import PriorTrainer, random_hints
    from hueshift_core.training.scenes import SceneMix, Source

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (80, 140, 3), dtype=np.uint8) for _ in range(8)]
    for i, im in enumerate(imgs):  # a colour that depends on brightness, to be learnt
        im[..., 2] = im[..., 0] // 2
    mix = SceneMix([Source("s", imgs, [f"a_{i}" for i in range(8)], 1.0)], buckets=((64, 112, 1.0),))
    val = ImageSet(torch.from_numpy(np.stack([im[:64, :112] for im in imgs[:4]])), ["v"] * 4)

    def trainer(out):
        torch.manual_seed(0)
        return PriorTrainer(ColourPrior(TINY_PRIOR), mix, val, out, batch=4, warmup=2, val_images=4)

    a = trainer(tmp_path / "a")
    (tmp_path / "a").mkdir()
    a.estimate_weights(batches=3)
    for _ in range(3):
        a.train_step()
    a.save_state(tmp_path / "a" / "last.safetensors")
    for _ in range(2):
        a.train_step()
    b = trainer(tmp_path / "a")
    b.load_state(tmp_path / "a" / "last.safetensors")
    assert (b.step, b.crops_seen) == (3, 12)
    for _ in range(2):
        b.train_step()
    for (k, pa), pb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=k)
    # the compact state committed between sessions: weights and EMA, no Adam moments; the LR re-warms
    b.save_state(tmp_path / "compact.safetensors", optimizer=False)
    c = trainer(tmp_path / "a")
    c.load_state(tmp_path / "compact.safetensors")
    assert c.step == 5 and c.warm_from == 5 and c._lr() < c.lr
    for (k, pb), pc in zip(b.ema.state_dict().items(), c.ema.state_dict().values()):
        torch.testing.assert_close(pb, pc, msg=k)
    from hueshift_core.training.prior import prior_from_state  # what ship_model.py ships from a state

    shipped, prov = prior_from_state(tmp_path / "compact.safetensors")
    assert prov["steps"] == 5 and prov["crops_seen"] == 20
    torch.testing.assert_close(shipped.log_weights, b.weights.log())
    torch.testing.assert_close(shipped.head.weight, b.ema.head.weight)
    m = b.validate()
    assert set(m) >= {"ciede2000", "ciede2000_grey", "colourfulness_ratio", "wrong_hue", "lost_colour"}
    b.export(tmp_path / "best.safetensors")
    prior, dec = load_prior(tmp_path / "best.safetensors")
    assert (dec.temperature, dec.balance) == (b.temperature, b.balance)
    meta = load_state(tmp_path / "best.safetensors")[1]
    assert json.loads(meta["hueshift.prior_provenance"])["crops_seen"] == 20
    # hints: drawn from the truth, mask and colour agree
    ab = torch.rand(4, 2, 64, 64) * 2 - 1
    hint, mask = random_hints(ab, torch.Generator().manual_seed(1), share=1.0)
    assert mask.sum() > 0 and ((hint != 0).any(1, keepdim=True) <= (mask > 0)).all()
    assert F.avg_pool2d(mask, 64).min() > 0  # every sample got some


def test_resume_refuses_another_config(tmp_path):
    from hueshift_core.training.data import ImageSet
    from hueshift_core.training.prior import PriorTrainer
    from hueshift_core.training.scenes import SceneMix, Source

    imgs = [np.full((80, 140, 3), 100, np.uint8)]
    mix = SceneMix([Source("s", imgs, ["a_0"], 1.0)], buckets=((64, 112, 1.0),))
    val = ImageSet(torch.from_numpy(np.stack([imgs[0][:64, :112]])), ["v"])
    a = PriorTrainer(ColourPrior(TINY_PRIOR), mix, val, tmp_path, batch=2)
    a.save_state(tmp_path / "last.safetensors")
    b = PriorTrainer(ColourPrior(PriorConfig(widths=(8, 16, 16, 16), blocks=(0, 1, 1, 1))), mix, val, tmp_path, batch=2)
    with pytest.raises(CheckpointError, match="another prior config"):
        b.load_state(tmp_path / "last.safetensors")


def test_buckets_option_parses_and_refuses_clearly(tmp_path, capsys):
    """--buckets (both trainers): sizes and shares; a bad one is a one-line error before any data is read."""
    from hueshift_core.training.prior import main
    from hueshift_core.training.scenes import parse_buckets

    assert parse_buckets("64x112:0.5,128X224:0.5") == ((64, 112, 0.5), (128, 224, 0.5))
    for bad in ("64x112", "64-112:1", "8x8:1", "64x64:0", "64x64:1,"):
        with pytest.raises(InputError, match="--buckets"):
            parse_buckets(bad)
    assert main([str(tmp_path / "none"), "--weights", "1", "-o", str(tmp_path / "run"), "--buckets", "64x"]) == 2
    assert "--buckets must look like" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_lightness_jitter_is_a_random_tone_curve_on_some_samples(tmp_path, capsys):
    """--l-jitter: a monotone tone curve (order of grey levels kept) within the range, on about the share asked,
    the same for the same generator; the colour target is not touched (only L goes in); out of [0, 1] refused
    before any folder is made."""
    from hueshift_core.training.prior import jitter_lightness, main

    l = torch.linspace(-1, 1, 64 * 64).reshape(1, 1, 64, 64).repeat(200, 1, 1, 1)
    out = jitter_lightness(l, torch.Generator().manual_seed(3), share=0.5)
    torch.testing.assert_close(out, jitter_lightness(l, torch.Generator().manual_seed(3), share=0.5))
    assert out.min() >= -1 and out.max() <= 1
    changed = (out - l).abs().amax((1, 2, 3)) > 1e-4
    assert 70 < int(changed.sum()) < 130  # about half the samples
    flat = out.flatten(1)
    assert (flat[:, 1:] >= flat[:, :-1] - 1e-6).all()  # monotone: a tone curve, not noise
    torch.testing.assert_close(jitter_lightness(l, torch.Generator().manual_seed(3), share=0.0), l)
    assert main([str(tmp_path / "none"), "--weights", "1", "-o", str(tmp_path / "run"), "--l-jitter", "1.5"]) == 2
    assert "--l-jitter must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_videos_take_the_models_video_saturation_photos_do_not(prior_model, photo, tiny_model_path):
    """hueshift-v8 on: the video path lifts the prior's colour by the model's video saturation (the prior is
    greyer on video frames); a photo is coloured at ``chroma`` as given, whatever the model's video setting."""
    from hueshift_core.hints import HintPoint, user_colours
    from hueshift_core.images import colorize_image
    from hueshift_core.model.sampling import for_video
    from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline

    def at(scale: float):
        return dataclasses.replace(prior_model, prior_decoding=dataclasses.replace(
            prior_model.prior_decoding, video_chroma=scale, video_target=0.0))

    one, two = at(1.0), at(2.0)  # video_target 0: a gain of video_chroma on every frame
    o = SampleOptions(chroma=1.2)
    assert for_video(one, o) is o and for_video(two, o) == dataclasses.replace(o, lift=(0.0, 2.0))
    assert for_video(load_model(tiny_model_path), o) is o  # no colour prior: nothing to scale
    grey = np.repeat(photo.mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    frames = np.stack([np.roll(grey, 2 * k, axis=1) for k in range(4)])
    chroma = {}
    for name, m in (("one", one), ("two", two)):
        pipe = VideoPipeline(m, PipelineOptions(deflicker=0.0, overlap=False))
        out = np.concatenate(list(pipe.run(iter([frames]))))
        assert out.shape == frames.shape
        chroma[name] = float(np.mean(pipe.stats.keyframe_chroma))
    assert chroma["one"] > 1.0  # the prior gave colour to scale
    assert 1.8 < chroma["two"] / chroma["one"] <= 2.0 + 1e-6  # (a little less where ab reached its bound)
    # a frame the user gave hints is coloured at chroma as given: the hints settle what the scale makes up for
    user = user_colours(48, 80, hints=[HintPoint(0.5, 0.5, (200, 40, 30), radius=0.2, frame=0)], num_frames=4)
    hinted = []
    for m in (one, two):
        pipe = VideoPipeline(m, PipelineOptions(deflicker=0.0, overlap=False), user=user)
        list(pipe.run(iter([frames])))
        hinted.append(pipe.stats.keyframe_chroma[0])
    assert hinted[0] == pytest.approx(hinted[1], rel=1e-5)
    assert np.array_equal(colorize_image(grey, one), colorize_image(grey, two))  # photos: untouched
    assert 0.5 <= prior_model.prior_decoding.video_chroma <= 3.0


def test_lift_gain_brings_grey_frames_towards_the_target_and_leaves_colourful_ones():
    from hueshift_core.model.sampling import lift_gain

    ab = torch.zeros(3, 2, 4, 4)
    ab[1, 0] = 10.0 / AB_SCALE  # mean chroma 10
    ab[2, 1] = -30.0 / AB_SCALE  # mean chroma 30: already past the target
    torch.testing.assert_close(lift_gain(ab, 15.0, 2.0), torch.tensor([2.0, 1.5, 1.0]))  # grey: the most
    torch.testing.assert_close(lift_gain(ab, 0.0, 1.5), torch.tensor([1.5, 1.5, 1.5]))  # no target: everywhere
    assert SampleOptions(lift=[15, 2]).lift == (15.0, 2.0)
    for bad in ((200.0, 2.0), (15.0, 5.0), (15.0,), "high"):
        with pytest.raises(InputError, match="lift"):
            SampleOptions(lift=bad)


def test_the_shipped_video_saturation_lifts_grey_clips_more_than_colourful_ones(prior_model):
    """The default model's video lift: a frame the prior colours faintly gains more than one it colours boldly,
    never more than video_chroma, never less than 1 (its colour is not taken away)."""
    from hueshift_core.model.sampling import for_video, lift_gain, prior_ab

    dec = prior_model.prior_decoding
    assert dec.video_chroma > 1.0 and dec.video_target > 0.0  # hueshift-v8 on
    lift = for_video(prior_model, SampleOptions()).lift
    assert lift == (dec.video_target, dec.video_chroma)
    g = torch.Generator().manual_seed(0)
    l = F.avg_pool2d(torch.rand(2, 1, 64, 96, generator=g) * 2 - 1, 5, 1, 2)
    ab = prior_ab(prior_model, l)
    gains = lift_gain(ab, *lift)
    assert ((gains >= 1.0) & (gains <= dec.video_chroma)).all()
    faint, bold = ab * 0.2, ab  # the same colours, fainter
    assert (lift_gain(faint, *lift) >= lift_gain(bold, *lift)).all()
