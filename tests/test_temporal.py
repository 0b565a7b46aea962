"""Keyframes, propagation and deflicker on synthetic sequences with known motion and cuts."""

import numpy as np
import pytest

from hueshift_core.errors import InputError
from hueshift_core.video.deflicker import Deflicker, deflicker
from hueshift_core.video.keyframes import detect_cuts
from hueshift_core.video.propagate import compute_flow, flow_confidence, warp


def texture(seed, h=96, w=160):
    rng = np.random.default_rng(seed)
    import cv2
    base = cv2.GaussianBlur(rng.integers(0, 255, (h, w)).astype(np.float32), (0, 0), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    lo, hi = rng.uniform(0, 80), rng.uniform(150, 255)
    return (lo + (hi - lo) * base).astype(np.uint8)


def shot(seed, n, dx=2, h=96, w=160):
    big = texture(seed, h, w + n * dx + 8)
    return [big[:, i * dx:i * dx + w] for i in range(n)]


def test_cut_recall_and_precision():
    rng = np.random.default_rng(0)
    frames, truth = [], []
    for s in range(8):
        truth.append(len(frames))
        frames += shot(s, int(rng.integers(6, 20)), dx=int(rng.integers(0, 5)))
    found = detect_cuts(np.stack(frames))
    tp = len(set(found) & set(truth))
    recall, precision = tp / len(truth), tp / len(found)
    assert recall >= 0.9 and precision >= 0.9, f"recall {recall:.2f} precision {precision:.2f} found {found} truth {truth}"


def test_flow_recovers_a_known_shift_and_warp_follows_it():
    a, b = shot(3, 2, dx=4)
    flow = compute_flow(a, b)
    inner = flow[16:-16, 16:-16]
    assert abs(float(np.median(inner[..., 0])) + 4) < 0.5 and abs(float(np.median(inner[..., 1]))) < 0.5
    back = warp(b.astype(np.float32), flow)
    assert np.abs(back[16:-16, 16:-16] - a[16:-16, 16:-16]).mean() < 4


def test_confidence_is_low_where_occluded():
    a = texture(4)
    b = a.copy()
    b[30:70, 60:110] = texture(5)[30:70, 60:110]  # a new object appears: no match for those pixels
    f_ab, f_ba = compute_flow(a, b), compute_flow(b, a)
    conf = flow_confidence(a, b, f_ab, f_ba)
    assert conf[40:60, 70:100].mean() < conf[:20].mean()
    assert conf[:20].mean() > 0.8


def test_deflicker_reduces_flicker_keeps_colour_and_resets_at_cuts():
    rng = np.random.default_rng(0)
    l = np.stack([texture(9)] * 30)
    base = np.full((96, 160, 2), (30.0, -20.0), np.float32)
    ab = np.stack([base + rng.normal(0, 8, 2).astype(np.float32) for _ in range(30)])
    out = deflicker(l, ab, strength=0.7)
    assert out.std(axis=0).mean() < 0.5 * ab.std(axis=0).mean()
    assert np.allclose(out.mean((0, 1, 2)), ab.mean((0, 1, 2)), atol=3)  # no wash-out
    l2 = np.concatenate([l[:15], np.stack([texture(10)] * 15)])
    ab2 = np.concatenate([np.full((15, 96, 160, 2), 40, np.float32), np.full((15, 96, 160, 2), -40, np.float32)])
    out2 = deflicker(l2, ab2, shot_starts=[0, 15], strength=0.9)
    assert np.allclose(out2[15], -40)  # nothing leaks over the cut
    with pytest.raises(InputError):
        Deflicker(1.5)
