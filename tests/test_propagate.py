"""Flow, warp, confidence and colour propagation on synthetic sequences with known motion."""

import numpy as np
import pytest
import torch
from test_keyframes import shot, texture

from hueshift_core.errors import InputError
from hueshift_core.video.analysis import Sizes
from hueshift_core.video.pipeline import PipelineOptions
from hueshift_core.video.propagate import blend, carry, compute_flow, fb_confidence, flow_confidence, warp
from hueshift_core.video.staged import ClipPlan, propagate_keyframes


def test_flow_recovers_a_known_shift_and_warp_follows_it():
    a, b = shot(3, 2, dx=4)  # b is a moved 4 px left
    flow = compute_flow(a, b)
    assert flow.shape == (96, 160, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16]
    assert abs(float(np.median(inner[..., 0])) + 4) < 0.5 and abs(float(np.median(inner[..., 1]))) < 0.5
    back = warp(b.astype(np.float32), flow)  # b pulled into a's frame
    assert np.abs(back[16:-16, 16:-16] - a[16:-16, 16:-16]).mean() < 4
    ab = np.random.default_rng(0).normal(size=(96, 160, 2)).astype(np.float32)
    assert warp(ab, np.zeros_like(flow)).shape == ab.shape
    np.testing.assert_allclose(warp(ab, np.zeros_like(flow)), ab, atol=1e-5)


def test_odd_and_tiny_sizes():
    a, b = shot(4, 2, dx=1, h=37, w=53)
    assert compute_flow(a, b).shape == (37, 53, 2)
    tiny = np.zeros((4, 6), np.uint8)
    assert not compute_flow(tiny, tiny).any()  # too small for DIS: no motion
    with pytest.raises(InputError, match="one size"):
        compute_flow(a, b[:-1])


def test_confidence_is_low_where_occluded():
    bg, obj = texture(4), texture(5, 40, 40)

    def frame(x):
        f = bg.copy()
        f[28:68, x:x + 40] = obj
        return f

    a, b = frame(40), frame(52)  # an object moves 12 px right: a's background at x 80..92 is covered in b
    f_ab, f_ba = compute_flow(a, b), compute_flow(b, a)
    conf = flow_confidence(a, b, f_ab, f_ba)
    assert conf.shape == (96, 160) and conf.dtype == np.float32 and 0.0 <= conf.min() and conf.max() <= 1.0
    assert conf[:20].mean() > 0.9 and conf[76:].mean() > 0.9
    assert conf[32:64, 82:90].mean() < 0.4
    c = b.copy()
    c[30:70, 60:110] = texture(6)[30:70, 60:110]  # new content appears: nothing in a matches it
    assert flow_confidence(a, c, compute_flow(a, c), compute_flow(c, a))[40:60, 95:105].mean() < 0.4


def test_fb_confidence_flags_inconsistent_flow():
    flow = np.zeros((32, 32, 2), np.float32)
    flow[8:16, 8:16] = (5, 0)  # forward says these pixels moved, backward says nothing did
    conf = fb_confidence(flow, np.zeros_like(flow))
    assert conf[8:16, 8:16].max() < 0.1 and conf[20:, 20:].min() == 1.0


def test_content_leaving_the_view_is_not_tracked():
    a, b = shot(6, 2, dx=8)  # the left 8 columns of a are out of b's view
    f_ab, f_ba = compute_flow(a, b), compute_flow(b, a)
    conf = flow_confidence(a, b, f_ab, f_ba)
    assert conf[20:-20, :6].mean() < 0.2 and conf[20:-20, 40:-40].mean() > 0.8


def _propagate(l_frames, key_ab: dict, shot_starts=(0,)):
    """Colour carried from the keyframes ``{index: ab [h, w, 2]}`` to every frame of grey frames (uint8 L
    as the grey level), as the pipeline and the Propagate node carry it (no deflicker) -> ab [N, h, w, 2]."""
    rgb = np.repeat(np.asarray(l_frames)[..., None], 3, axis=-1)
    h, w = rgb.shape[1:3]
    plan = ClipPlan(tuple(sorted(key_ab)), tuple(shot_starts), len(rgb), Sizes((h, w), (h, w), (h, w)))
    keys = torch.from_numpy(np.stack([key_ab[k] for k in plan.keyframes])).permute(0, 3, 1, 2)
    out = propagate_keyframes(rgb, plan, keys, PipelineOptions(deflicker=0.0))
    return out.permute(0, 2, 3, 1).numpy()


def test_propagation_carries_a_colour_patch_along_the_motion():
    frames = np.stack(shot(6, 9, dx=3))  # the picture moves 3 px left per frame
    key = np.zeros((96, 160, 2), np.float32)
    key[40:60, 60:80] = (50, -30)
    out = _propagate(frames, {0: key, 8: np.roll(key, -24, axis=1)})
    assert out.shape == (9, 96, 160, 2)
    # at frame 4 the patch sits 12 px further left: columns 48..68
    assert out[4][45:55, 52:64, 0].mean() > 40 and out[4][45:55, 52:64, 1].mean() < -24
    assert abs(out[4][45:55, 72:78, 0].mean()) < 10  # where the patch was is no longer coloured
    np.testing.assert_allclose(out[0], key, atol=1e-4)  # keyframes keep their colour
    out = _propagate(frames, {0: key})  # one keyframe: carried forward to the end of the shot
    assert out[8][45:55, 40:52, 0].mean() > 40


def test_propagation_never_crosses_a_cut():
    frames = np.stack(shot(7, 5) + shot(8, 5))
    red, blue = np.full((96, 160, 2), (40, 30), np.float32), np.full((96, 160, 2), (-20, -40), np.float32)
    out = _propagate(frames, {0: red, 5: blue}, shot_starts=[0, 5])
    np.testing.assert_allclose(out[:5].mean((1, 2)), [(40, 30)] * 5, atol=1e-3)
    np.testing.assert_allclose(out[5:].mean((1, 2)), [(-20, -40)] * 5, atol=1e-3)
    with pytest.raises(InputError, match="frame 5 is a keyframe of the plan but has no colour"):
        _propagate(frames, {0: red}, shot_starts=[0, 5])


def test_blend_weights_and_fallback():
    ones, zeros = np.ones((4, 4), np.float32), np.zeros((4, 4), np.float32)
    a, b = np.full((4, 4, 2), 10.0, np.float32), np.full((4, 4, 2), -10.0, np.float32)
    # confident forward, lost backward: the forward colour, even far from its keyframe
    assert blend(a, ones, b, zeros, t=0.8)[0, 0, 0] > 5
    # both lost: fall back to the nearer keyframe's carried colour by temporal distance
    np.testing.assert_allclose(blend(a, zeros, b, zeros, t=0.25), 5.0, atol=1e-4)
    np.testing.assert_allclose(blend(a, ones, b, ones, t=0.5), 0.0, atol=1e-4)


def test_carry_multiplies_confidence():
    ab = np.full((8, 8, 2), 3.0, np.float32)
    half = np.full((8, 8), 0.5, np.float32)
    ab2, conf2 = carry(ab, half, np.zeros((8, 8, 2), np.float32), half)
    np.testing.assert_allclose(ab2, ab)
    np.testing.assert_allclose(conf2, 0.25)
