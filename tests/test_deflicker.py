"""Deflicker: less temporal variance, same colour, follows motion, restarts at cuts."""

import numpy as np
import pytest
from test_keyframes import shot, texture

from hueshift_core.errors import InputError
from hueshift_core.video.deflicker import Deflicker, deflicker


def flickering(n=30, seed=0, sigma=8.0):
    rng = np.random.default_rng(seed)
    base = np.full((96, 160, 2), (30.0, -20.0), np.float32)
    return np.stack([base + rng.normal(0, sigma, 2).astype(np.float32) for _ in range(n)])


def colourfulness(ab: np.ndarray) -> float:
    return float(np.hypot(ab[..., 0], ab[..., 1]).mean())


def test_reduces_flicker_of_a_static_scene_and_keeps_the_colour():
    l = np.stack([texture(9)] * 30)
    ab = flickering()
    out = deflicker(l, ab, strength=0.7)
    assert out.shape == ab.shape and out.dtype == np.float32
    assert out[5:].std(axis=0).mean() < 0.5 * ab[5:].std(axis=0).mean()
    np.testing.assert_allclose(out.mean((0, 1, 2)), ab.mean((0, 1, 2)), atol=3)  # no drift
    assert colourfulness(out) > 0.97 * colourfulness(ab)  # no wash-out


def test_follows_motion_instead_of_smearing():
    frames = np.stack(shot(2, 12, dx=3))  # the picture moves 3 px left per frame
    ab = np.zeros((12, 96, 160, 2), np.float32)
    for i in range(12):
        ab[i, 40:60, 70 - 3 * i:90 - 3 * i] = (50, 40)  # a coloured patch moving with it
    out = deflicker(frames, ab, strength=0.9)
    last = out[-1]
    assert last[45:55, 40:52, 0].mean() > 45  # the patch is where it is now, at full colour
    assert abs(last[45:55, 60:80, 0].mean()) < 8  # and left no trail where it used to be


def test_restarts_at_a_cut():
    l = np.concatenate([np.stack([texture(9)] * 15), np.stack([texture(10)] * 15)])
    ab = np.concatenate([np.full((15, 96, 160, 2), 40, np.float32), np.full((15, 96, 160, 2), -40, np.float32)])
    out = deflicker(l, ab, shot_starts=[0, 15], strength=0.9)
    np.testing.assert_allclose(out[15:], -40)  # nothing leaks over the cut
    np.testing.assert_allclose(out[:15], 40)


def test_streaming_equals_batch_and_zero_strength_is_identity():
    l = np.stack(shot(3, 10, dx=1))
    ab = flickering(10, seed=1)
    f = Deflicker(0.6)
    streamed = np.stack([f.push(l[i], ab[i], cut=i in (0, 6)) for i in range(10)])
    np.testing.assert_allclose(streamed, deflicker(l, ab, [0, 6], 0.6), atol=1e-5)
    np.testing.assert_allclose(deflicker(l, ab, strength=0.0), ab)


def test_bad_input():
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        Deflicker(1.5)
    with pytest.raises(InputError):
        deflicker(np.zeros((3, 8, 8), np.uint8), np.zeros((2, 8, 8, 2), np.float32))
    with pytest.raises(InputError):
        Deflicker().push(np.zeros((8, 8), np.uint8), np.zeros((8, 9, 2), np.float32))


def test_disagreeing_hues_are_averaged_without_losing_saturation():
    l = np.stack([texture(9)] * 20)
    ab = np.stack([np.full((96, 160, 2), (30.0, 0.0) if i % 2 else (0.0, 30.0), np.float32) for i in range(20)])
    out = deflicker(l, ab, strength=0.6)
    assert out[10:].std(axis=0).mean() < 0.6 * ab[10:].std(axis=0).mean()  # steadier hue
    assert colourfulness(out[10:]) > 0.97 * colourfulness(ab)  # a plain average would lose ~30%
