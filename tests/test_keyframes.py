"""Shot cuts and keyframes on synthetic shots with known cuts, flashes and motion, and on the real clips.

``texture`` and ``shot`` are shared with test_propagate.py and test_deflicker.py.
"""

import cv2
import numpy as np
import pytest
from conftest import shared_clips

from hueshift_core.errors import InputError
from hueshift_core.video.analysis import frame_l, to_prop
from hueshift_core.video.keyframes import CutDetector, KeyframeOptions, KeyframeSelector, detect_cuts, structure
from hueshift_core.video.pipeline import PipelineOptions
from hueshift_core.video.propagate import compute_flow, flow_confidence, warp
from hueshift_core.video.staged import plan_keyframes


def texture(seed: int, h: int = 96, w: int = 160, sigma: float = 2.0) -> np.ndarray:
    """uint8 [h, w] blurred noise with a random tonal range (each shot its own look)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 255, (h, w)).astype(np.float32), (0, 0), sigma)
    base = (base - base.min()) / (base.max() - base.min())
    lo, hi = rng.uniform(0, 80), rng.uniform(150, 255)
    return (lo + (hi - lo) * base).astype(np.uint8)


def shot(seed: int, n: int, dx: int = 2, h: int = 96, w: int = 160, sigma: float = 2.0) -> list[np.ndarray]:
    """n frames of a camera panning right by dx px per frame over one texture."""
    big = texture(seed, h, w + n * dx + 8, sigma)
    return [big[:, i * dx:i * dx + w] for i in range(n)]


def flash(l: np.ndarray, gain: float, offset: float = 0.0) -> np.ndarray:
    return np.clip(l.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def recall_precision(found: list[int], truth: list[int]) -> tuple[float, float]:
    tp = len(set(found) & set(truth))
    return tp / len(truth), tp / max(1, len(found))


def test_cuts_recall_and_precision_with_motion_and_flashes():
    rng = np.random.default_rng(0)
    frames, truth = [], []
    for s in range(12):
        truth.append(len(frames))
        clip = shot(s, int(rng.integers(8, 24)), dx=int(rng.integers(0, 6)), sigma=float(rng.uniform(1.5, 4)))
        if s % 3 == 1:  # a flash (or a dip) inside the shot is not a cut
            j = len(clip) // 2
            clip[j] = flash(clip[j], *[(1.8, 20), (0.5, 0), (1.0, 70)][s % 9 // 3])
        frames += clip
    found = detect_cuts(np.stack(frames))
    recall, precision = recall_precision(found, truth)
    assert recall >= 0.9 and precision >= 0.9, (
        f"recall {recall:.2f} precision {precision:.2f}: found {found}, truth {truth}")


def test_no_cut_in_a_moving_shot_a_fade_or_a_flash():
    assert detect_cuts(np.stack(shot(1, 60, dx=3))) == [0]
    fade = [flash(f, 1.0 - 0.9 * i / 40) for i, f in enumerate(shot(2, 40, dx=1))]  # fade to near black
    assert detect_cuts(np.stack(fade)) == [0]
    frames = shot(3, 20, dx=2)
    frames[10] = flash(frames[10], 2.5)  # a strong, clipped flash
    assert detect_cuts(np.stack(frames)) == [0]


def test_a_cut_between_shots_of_the_same_tones_is_found():
    a = shot(4, 12, dx=1)
    b = [np.ascontiguousarray(f[::-1, ::-1]) for f in shot(4, 12, dx=1)[::-1]]  # same histogram, new picture
    assert detect_cuts(np.stack(a + b)) == [0, 12]


def test_structure_ignores_brightness_and_flat_frames():
    l = texture(5)
    assert np.abs(structure(l) - structure(flash(l, 0.6, 40))).mean() < 0.05
    noise = np.random.default_rng(0).integers(10, 13, (96, 160)).astype(np.uint8)  # a black frame with sensor noise
    assert np.abs(structure(noise)).max() < 0.5
    assert abs(np.abs(structure(l) - structure(texture(6))).mean() - 1.1) < 0.15  # unrelated pictures ~1.1


def test_min_shot_spacing():
    frames = shot(7, 5) + shot(8, 2) + shot(9, 5)  # a 2-frame shot: too short to be a shot of its own
    assert detect_cuts(np.stack(frames), KeyframeOptions(min_shot=4)) == [0, 5]
    assert detect_cuts(np.stack(frames), KeyframeOptions(min_shot=1)) == [0, 5, 7]


def _plan(l_frames, options):
    """Keyframes of grey frames (uint8 L used as the grey level) as the pipeline and nodes choose them."""
    rgb = np.repeat(np.asarray(l_frames)[..., None], 3, axis=-1)
    return plan_keyframes(rgb, PipelineOptions(keyframes=options))


def test_max_gap_and_motion_keyframes():
    frames = np.stack(shot(10, 60, dx=1))
    plan = _plan(frames, KeyframeOptions(max_gap=20))
    assert plan.shot_starts == (0,)
    assert plan.keyframes == (0, 20, 40)
    fast = np.stack(shot(11, 40, dx=6))  # 6 px/frame over 160 px: the view is replaced within ~27 frames
    plan = _plan(fast, KeyframeOptions(max_gap=1000, track_threshold=0.6))
    assert len(plan.keyframes) >= 2
    gaps = np.diff(plan.keyframes)
    assert gaps.min() >= KeyframeOptions().min_gap
    static = np.stack(shot(12, 30, dx=0))
    assert _plan(static, KeyframeOptions(max_gap=1000)).keyframes == (0,)


def test_every_cut_is_a_keyframe_and_streaming_matches_batch():
    frames = np.stack(shot(13, 15, dx=2) + shot(14, 25, dx=4) + shot(15, 10, dx=0))
    opts = KeyframeOptions(max_gap=12)
    plan = _plan(frames, opts)
    assert plan.shot_starts == (0, 15, 40)
    assert set(plan.shot_starts) <= set(plan.keyframes)
    # the streaming selector, fed the tracked share the way the pipeline does, makes the same decisions
    sel, conf, keys, starts = KeyframeSelector(opts), None, [], []
    frames = np.stack([to_prop(frame_l(np.repeat(f[..., None], 3, -1))[0], f.shape) for f in frames])
    for i, l in enumerate(frames):
        cut = sel.cuts.push(l)
        tracked = None
        if conf is not None and not cut:
            fb, ff = compute_flow(l, frames[i - 1]), compute_flow(frames[i - 1], l)
            conf = warp(conf, fb) * flow_confidence(l, frames[i - 1], fb, ff)
            tracked = float((conf > 0.5).mean())
        d = sel.decide(cut, tracked)
        if d.keyframe:
            keys.append(i)
            conf = np.ones(l.shape, np.float32)
        if d.cut:
            starts.append(i)
    assert (tuple(keys), tuple(starts)) == (plan.keyframes, plan.shot_starts)


def test_bad_input():
    with pytest.raises(InputError, match="uint8"):
        detect_cuts(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(InputError, match="no frames"):
        plan_keyframes(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(InputError):
        CutDetector().push(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError):
        KeyframeOptions(max_gap=0)
    with pytest.raises(InputError):
        KeyframeOptions(track_threshold=1.5)
    assert KeyframeOptions(max_gap=2).min_gap == 2  # a short max_gap wins over the default min_gap
    assert detect_cuts(np.zeros((1, 4, 4), np.uint8)) == [0]


def _real_l(path, n):
    from hueshift_core.video import read_frames
    frames = np.concatenate(list(read_frames(path, 16, max_frames=n, max_side=224)))
    return [(cv2.cvtColor(f.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0] * 2.55 + 0.5).astype(np.uint8)
            for f in frames]


@pytest.mark.skipif(len(shared_clips()) < 3, reason="development clips not present")
def test_real_clips_no_false_cuts_and_joins_found():
    clips = [_real_l(c, 30) for c in shared_clips()[:4]]
    for c in clips:
        assert detect_cuts(np.stack(c)) == [0]
    frames, truth = [], []
    for c in clips:
        truth.append(len(frames))
        c = list(c)
        c[15] = flash(c[15], 1.6, 30)
        frames += c
    found = detect_cuts(np.stack(frames))
    recall, precision = recall_precision(found, truth)
    assert recall == 1.0 and precision == 1.0, f"recall {recall:.2f} precision {precision:.2f}: {found} vs {truth}"
