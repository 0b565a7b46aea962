"""Scene-level training data (aspect buckets, mixing, split by clip) and classifier-free guidance."""

import json
import zipfile

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY

from hueshift_core.errors import CheckpointError, InputError
from hueshift_core.images import colorize_frames
from hueshift_core.model.checkpoint import ModelInfo, load_model, read_info, save_checkpoint
from hueshift_core.model.diffusion import NULL_COND, Guided, Prediction, Schedule
from hueshift_core.model.sampling import SampleOptions, guidance_scale, sample_ab
from hueshift_core.model.unet import ColorUNet
from hueshift_core.training import SceneMix, Source, group_of, load_scene_mix
from hueshift_core.training import main as train_main


def _img(rng, h, w):
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)


def _zip(path, items):
    with zipfile.ZipFile(path, "w") as z:
        for name, img in items:
            z.writestr(name, cv2.imencode(".jpg", img)[1].tobytes())
    return path


def test_group_of_splits_by_clip():
    assert group_of("scenes-video.zip/davis_bear_00012.jpg") == "davis_bear"
    assert group_of("camvid_0016E5_07959.jpg") == "camvid_0016E5"
    assert group_of("n01443537_12.JPEG") == "n01443537_12"  # a photo is its own group
    assert group_of("bsds_12003.jpg") == "bsds_12003"


def test_scene_mix_buckets_sources_and_determinism():
    rng = np.random.default_rng(0)
    scenes = Source("scenes", [_img(rng, 144, 256) for _ in range(6)], [f"s{i}" for i in range(6)], 0.5)
    tiny = Source("tiny", [_img(rng, 64, 64) for _ in range(6)], [f"t{i}" for i in range(6)], 0.5)
    mix = SceneMix([scenes, tiny], buckets=((64, 112, 0.5), (64, 64, 0.5)), seed=3)
    shapes = set()
    for step in range(40):
        b = mix.batch(step, 4)
        assert b.dtype == torch.uint8 and b.shape[0] == 4 and b.shape[-1] == 3
        shapes.add(tuple(b.shape[1:3]))
    assert shapes == {(64, 112), (64, 64)}
    # 64x64 close-ups cannot fill a 16:9 crop without blowing it up: they only feed square batches
    assert [s.name for s, _, _ in mix._eligible[(64, 112)]] == ["scenes"]
    assert torch.equal(mix.batch(7, 4), mix.batch(7, 4))  # a pure function of (seed, step): exact resume
    assert not torch.equal(mix.batch(7, 4), mix.batch(8, 4)) or mix.batch(7, 4).shape != mix.batch(8, 4).shape


def test_scene_mix_min_scale_sets_the_crop_scale_range(tmp_path):
    rng = np.random.default_rng(2)
    img = _img(rng, 128, 224)
    whole = cv2.resize(img, (112, 64), interpolation=cv2.INTER_AREA)

    def crops(min_scale):
        src = Source("s", [img], ["s0"], 1.0)
        mix = SceneMix([src], buckets=((64, 112, 1.0),), seed=0, min_scale=min_scale)
        return [mix.batch(step, 1)[0].numpy() for step in range(12)]

    # min_scale 1: every crop is the whole image (or its mirror); lower: zoomed-in crops
    assert all(np.array_equal(c, whole) or np.array_equal(c, whole[:, ::-1]) for c in crops(1.0))
    assert not all(np.array_equal(c, whole) or np.array_equal(c, whole[:, ::-1]) for c in crops(0.3))
    src = _zip(tmp_path / "v.zip", [(f"davis_c{c}_{f:05d}.jpg", img) for c in range(20) for f in range(2)])
    with pytest.raises(InputError, match="min_scale"):
        load_scene_mix([src], [1.0], min_scale=0.0)


def test_load_scene_mix_holds_out_whole_clips(tmp_path):
    rng = np.random.default_rng(1)
    items = [(f"davis_clip{c}_{f:05d}.jpg", _img(rng, 144, 256)) for c in range(30) for f in range(3)]
    items.append(("grey_photo.jpg", np.repeat(_img(rng, 144, 200)[..., :1], 3, 2)))
    src = _zip(tmp_path / "video.zip", items)
    mix, val, held = load_scene_mix([src], [1.0], holdout_share=0.2, seed=0)
    train_groups = {group_of(n) for n in mix.sources[0].names}
    assert held and not (set(held) & train_groups)  # no clip on both sides
    assert len(val) == 3 * len(held) and tuple(val.images.shape[1:]) == (64, 112, 3)
    assert len(mix) == 90 - len(val)  # the grey photo is skipped
    with pytest.raises(InputError):
        load_scene_mix([src], [1.0, 2.0])


class _Affine(torch.nn.Module):
    """out = cond * 2 + x, so guided output is checkable by hand."""

    def forward(self, x, t, cond):
        return cond[:, :1].expand_as(x) * 2 + x


def test_guided_combines_conditional_and_null():
    x = torch.randn(2, 2, 8, 8)
    cond = torch.rand(2, 1, 8, 8)
    t = torch.tensor([5.0, 5.0])
    net = _Affine()
    assert torch.equal(Guided(net, 1.0)(x, t, cond), net(x, t, cond))
    out_c, out_n = net(x, t, cond), net(x, t, torch.full_like(cond, NULL_COND))
    torch.testing.assert_close(Guided(net, 3.0)(x, t, cond), out_n + 3.0 * (out_c - out_n))
    with pytest.raises(InputError):
        Guided(net, float("nan"))


@pytest.fixture
def cfg_model_path(tmp_path):
    torch.manual_seed(0)
    net = ColorUNet(TINY)
    with torch.no_grad():
        net.out.weight.normal_(0, 0.02)
    path = tmp_path / "cfg.safetensors"
    save_checkpoint(path, net.state_dict(), ModelInfo(TINY, Schedule.COSINE, 1000, Prediction.V, {}, guidance=2.5))
    return path


def test_guidance_scale_stored_bounded_and_used(cfg_model_path, tiny_model_path, tmp_path):
    assert read_info(cfg_model_path).guidance == 2.5
    assert read_info(tiny_model_path).guidance is None
    cfg, plain = load_model(cfg_model_path), load_model(tiny_model_path)
    assert guidance_scale(cfg) == 2.5 and guidance_scale(cfg, 1.0) == 1.0 and guidance_scale(plain) == 1.0
    with pytest.raises(InputError, match="not trained for classifier-free guidance"):
        guidance_scale(plain, 2.0)
    l = torch.rand(1, 1, 16, 24) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)
    default = sample_ab(cfg, l, steps=3, generator=g())
    assert torch.equal(default, sample_ab(cfg, l, steps=3, generator=g(), guidance=2.5))
    assert not torch.equal(default, sample_ab(cfg, l, steps=3, generator=g(), guidance=1.0))
    with pytest.raises(InputError):
        SampleOptions(guidance=-1)
    # a file claiming an absurd scale is refused at load
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(str(cfg_model_path), "pt") as f:
        meta = dict(f.metadata())
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(str(cfg_model_path)), str(bad), metadata=dict(meta, **{"hueshift.guidance": "1e9"}))
    with pytest.raises(CheckpointError, match="guidance"):
        read_info(bad)


class _Counting:
    """A stand-in network that records the batch sizes it was called with and tells cond from null."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, t, cond):
        self.batches.append(x.shape[0])
        return torch.where(cond[:, :1] == NULL_COND, torch.zeros_like(x), torch.ones_like(x))


def test_guidance_interval_guides_only_inside_it():
    net, x, c = _Counting(), torch.zeros(2, 2, 8, 8), torch.zeros(2, 1, 8, 8)
    g = Guided(net, 3.0, (0.2, 0.6), num_timesteps=1001)  # guided for 200 <= t <= 600
    assert torch.equal(g(x, torch.tensor([100.0, 100.0]), c), torch.ones_like(x))  # outside: conditional only
    assert torch.equal(g(x, torch.tensor([600.0, 600.0]), c), torch.full_like(x, 3.0))  # inside: 0 + 3 * (1 - 0)
    mixed = g(x, torch.tensor([100.0, 400.0]), c)
    assert torch.equal(mixed[0], torch.ones_like(x[0])) and torch.equal(mixed[1], torch.full_like(x[1], 3.0))
    assert net.batches == [2, 4, 4]  # one pass outside the interval, two (as one batch) inside
    for bad in [(0.5, 0.2), (-0.1, 1.0), (0.0, 1.5), ("a", 1), (1.0,)]:
        with pytest.raises(InputError, match="guidance interval"):
            SampleOptions(guidance_interval=bad)


def test_guidance_interval_in_sampling(cfg_model_path):
    cfg = load_model(cfg_model_path)
    l = torch.rand(1, 1, 16, 24) * 2 - 1
    g = lambda: torch.Generator().manual_seed(0)
    batches = []
    hook = cfg.net.register_forward_pre_hook(lambda m, args: batches.append(args[0].shape[0]))
    try:
        full = sample_ab(cfg, l, steps=6, generator=g())
        assert batches == [2] * 6  # guided everywhere by default
        assert torch.equal(full, sample_ab(cfg, l, steps=6, generator=g(), guidance_interval=(0.0, 1.0)))
        batches.clear()
        half = sample_ab(cfg, l, steps=6, generator=g(), guidance_interval=(0.5, 1.0))
        assert batches == [2, 2, 2, 1, 1, 1]  # timesteps 999, 799, 599 guided; 400, 200, 0 not
    finally:
        hook.remove()
    assert not torch.equal(full, half) and torch.isfinite(half).all()


def test_colorize_frames_with_guidance(cfg_model_path):
    model = load_model(cfg_model_path)
    x = torch.rand(1, 3, 20, 36)
    y = colorize_frames(model, x, SampleOptions(steps=2, guidance=4.0))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_train_cli_scene_mix_with_cond_drop(tmp_path):
    rng = np.random.default_rng(2)
    src = _zip(tmp_path / "scenes.zip", [(f"davis_c{c}_{f}.jpg", _img(rng, 100, 180)) for c in range(12) for f in range(2)])
    photos = _zip(tmp_path / "tiny.zip", [(f"n0_{i}.JPEG", _img(rng, 64, 64)) for i in range(20)])
    init = tmp_path / "init.safetensors"
    save_checkpoint(init, ColorUNet(TINY).state_dict(), ModelInfo(TINY, Schedule.COSINE, 1000, Prediction.V, {}))
    out = tmp_path / "run"
    rc = train_main([str(src), str(photos), "--weights", "0.7", "0.3", "--holdout-share", "0.25", "-o", str(out),
                     "--steps", "4", "--batch", "4", "--cond-drop", "0.5", "--config", TINY.to_json(),
                     "--init", str(init), "--log-every", "2", "--val-every", "2", "--sample-every", "0",
                     "--ckpt-every", "0", "--no-progress", "--threads", "1"])
    assert rc == 0
    model = load_model(out / "model-fp16.safetensors")
    assert model.info.guidance == 1.0 and model.info.provenance["cond_drop"] == 0.5
    assert json.loads((out / "held_out.json").read_text())
    assert train_main([str(src), "--weights", "1", "-o", str(tmp_path / "r2"), "--cond-drop", "1.5"]) == 2
