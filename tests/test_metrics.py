"""hueshift_core.evaluation: PSNR, CIEDE2000, colourfulness, CDC, warp error, and the streaming accumulator.

Reference implementations (scipy, scikit-image) are test-only dependencies.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from hueshift_core import evaluation as M
from hueshift_core.errors import InputError

scipy_distance = pytest.importorskip("scipy.spatial.distance")
skcolor = pytest.importorskip("skimage.color")

# Sharma, Wu & Dalal (2005), Table 1: L1, a1, b1, L2, a2, b2, ΔE00.
SHARMA = np.array([
    [50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425],
    [50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615],
    [50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412],
    [50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000],
    [50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000],
    [50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000],
    [50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669],
    [50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669],
    [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792],
    [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792],
    [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195],
    [50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195],
    [50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045],
    [50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045],
    [50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461],
    [50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065],
    [50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492],
    [50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977],
    [50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030],
    [50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535],
    [50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000],
    [50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000],
    [50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000],
    [50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000],
    [60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644],
    [63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630],
    [61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731],
    [35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645],
    [22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373],
    [36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146],
    [90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441],
    [90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381],
    [6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377],
    [2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082],
])


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour texture uint8 [h, w, 3] with full contrast: good for optical flow."""
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    return cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)


def moving_video(n: int = 6, h: int = 64, w: int = 96, step: tuple[int, int] = (2, 1)) -> list[np.ndarray]:
    """Crops of one big texture, translated by ``step`` = (dx, dy) integer pixels per frame."""
    dx, dy = step
    big = texture(h + n * dy + 20, w + n * dx + 20)
    return [np.ascontiguousarray(big[10 + k * dy:10 + k * dy + h, 10 + k * dx:10 + k * dx + w]) for k in range(n)]


def flicker(frames: list[np.ndarray], amount: float = 0.15) -> list[np.ndarray]:
    """Per-frame alternating colour gains: the colours flicker while the content stays put."""
    gains = [np.array([1 + amount, 1.0, 1 - amount]), np.array([1 - amount, 1.0, 1 + amount])]
    return [np.clip(f * gains[k % 2], 0, 255).astype(np.uint8) for k, f in enumerate(frames)]


# ---------------------------------------------------------------------- identical frames


def test_identical_frames_give_perfect_scores():
    video = [texture(48, 64, seed=3)] * 6  # static video
    frame = video[0]
    assert M.psnr(frame, frame) == math.inf
    assert M.mean_ciede2000(frame, frame) == 0.0
    assert M.cdc(video) == 0.0
    assert M.warp_error(video, video) == pytest.approx(0.0, abs=1e-12)

    s = M.evaluate_video(video, video)["output"]
    assert s.frames == 6 and s.psnr == M.PSNR_CAP and s.psnr_identical_frames == 6
    assert s.ciede2000 == 0.0 and s.cdc == 0.0 and s.warp_error == pytest.approx(0.0, abs=1e-12)
    assert s.colourfulness_ratio == pytest.approx(1.0)


def test_psnr_value():
    a = np.full((4, 5, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # MSE = 100 / 60
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / (100 / 60)))


def test_bad_input_is_rejected():
    with pytest.raises(InputError):
        M.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(InputError):
        M.colourfulness(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InputError):
        M.evaluate_video([np.zeros((8, 8, 3), np.uint8)] * 2, [np.zeros((8, 8, 3), np.uint8)])


# ---------------------------------------------------------------------- CIEDE2000


def test_ciede2000_sharma_table():
    lab1, lab2, expected = SHARMA[:, :3], SHARMA[:, 3:6], SHARMA[:, 6]
    np.testing.assert_allclose(M.ciede2000(lab1, lab2), expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(M.ciede2000(lab2, lab1), expected, atol=1e-4, rtol=0)  # symmetric


def test_ciede2000_matches_skimage_on_random_lab():
    rng = np.random.default_rng(1)
    lo, hi = [0, -110, -110], [100, 110, 110]
    lab1 = rng.uniform(lo, hi, (5000, 3))
    lab2 = np.concatenate([rng.uniform(lo, hi, (2500, 3)),  # far apart
                           lab1[2500:] + rng.normal(0, 2, (2500, 3))])  # near
    ref = skcolor.deltaE_ciede2000(lab1, lab2)
    np.testing.assert_allclose(M.ciede2000(lab1, lab2), ref, atol=1e-9, rtol=0)
    np.testing.assert_allclose(M.ciede2000(lab1, lab2, dtype=np.float32), ref, atol=2e-3, rtol=0)


def test_lab_conversion_and_mean_ciede2000_match_skimage():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    np.testing.assert_allclose(M.frame_to_lab(a), skcolor.rgb2lab(a), atol=0.01)
    assert np.array_equal(M.lab_to_frame(M.frame_to_lab(a)), a)
    ref = float(np.mean(skcolor.deltaE_ciede2000(skcolor.rgb2lab(a), skcolor.rgb2lab(b))))
    assert M.mean_ciede2000(a, b) == pytest.approx(ref, abs=2e-3)


def test_grey_like_keeps_lightness_and_drops_colour():
    frame = texture(32, 40, seed=4)
    grey = M.grey_like(frame)
    assert grey.dtype == np.uint8 and grey.shape == frame.shape
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    lab_f, lab_g = M.frame_to_lab(frame), M.frame_to_lab(grey)
    assert np.abs(lab_f[..., 0] - lab_g[..., 0]).max() < 0.5  # L within one 8-bit level
    assert np.abs(lab_g[..., 1:]).max() < 1e-3
    assert M.colourfulness(grey) == 0.0


# ---------------------------------------------------------------------- colourfulness


def test_colourfulness_grey_and_hand_computed():
    assert M.colourfulness(np.full((8, 8, 3), 77, np.uint8)) == 0.0
    # Constant (200, 100, 50): rg = 100, yb = 150 - 50 = 100, no spread.
    assert M.colourfulness(np.full((8, 8, 3), (200, 100, 50), np.uint8)) == pytest.approx(0.3 * 100 * math.sqrt(2))
    # Half pure red, half pure blue: rg in {255, 0}, yb in {127.5, -255}.
    img = np.zeros((4, 6, 3), np.uint8)
    img[:, :3] = (255, 0, 0)
    img[:, 3:] = (0, 0, 255)
    sigma = math.hypot(255 / 2, 382.5 / 2)
    mu = math.hypot(127.5, (127.5 - 255) / 2)
    assert M.colourfulness(img) == pytest.approx(sigma + 0.3 * mu)


# ---------------------------------------------------------------------- CDC


def two_level_frame(lo: int, hi: int) -> np.ndarray:
    """Half the pixels at grey level ``lo``, half at ``hi`` (all channels)."""
    f = np.empty((10, 10, 3), np.uint8)
    f[:5], f[5:] = lo, hi
    return f


def test_js_divergence_hand_values_and_scipy():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.0, 0.5, 0.5])
    assert M.js_divergence(p, q) == pytest.approx(math.log(2) / 2)
    assert M.js_divergence(p, p) == 0.0
    assert M.js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.log(2))
    h1 = M.channel_histograms(texture(30, 40, seed=5))
    h2 = M.channel_histograms(texture(30, 40, seed=6))
    js = M.js_divergence(h1, h2)
    assert js.shape == (3,)
    for c in range(3):
        assert js[c] == pytest.approx(scipy_distance.jensenshannon(h1[c], h2[c]) ** 2, rel=1e-9, abs=1e-15)


def test_cdc_of_a_global_colour_shift():
    # One global shift of +10 grey levels per frame: frames i and i+1 share one of their two
    # histogram bins (JS = ln2 / 2), frames two or more apart share none (JS = ln 2).
    video = [two_level_frame(50 + 10 * k, 60 + 10 * k) for k in range(6)]
    expected = (math.log(2) / 2 + math.log(2) + math.log(2)) / 3
    assert M.cdc(video) == pytest.approx(expected)
    assert M.cdc(video[:2]) == pytest.approx(math.log(2) / 2)  # only gap 1 has pairs
    assert math.isnan(M.cdc(video[:1]))
    # A real shift of a textured frame: positive, and the reference's scipy JS.
    frame = texture(30, 40, seed=7)
    shifted = np.clip(frame.astype(int) + (12, -8, 5), 0, 255).astype(np.uint8)
    h0, h1 = M.channel_histograms(frame), M.channel_histograms(shifted)
    ref = np.mean([scipy_distance.jensenshannon(h0[c], h1[c]) ** 2 for c in range(3)])
    assert M.cdc([frame, shifted]) == pytest.approx(ref) and ref > 0.05


def test_cdc_accumulator_equals_batch():
    video = moving_video(7) + flicker(moving_video(3))
    acc = M.CDCAccumulator()
    for f in video:
        acc.update(f)
    assert acc.value() == pytest.approx(M.cdc(video), rel=1e-12)
    assert len(acc._history) == 4  # ring buffer only


# ---------------------------------------------------------------------- warp error


def test_dis_flow_recovers_translation():
    video = moving_video(2, step=(2, 1))
    flow = M.dis_flow(video[0], video[1])
    # Content moves by (-dx, -dy) between the crops.
    assert np.median(flow[..., 0]) == pytest.approx(-2, abs=0.05)
    assert np.median(flow[..., 1]) == pytest.approx(-1, abs=0.05)
    occluded = M.occlusion_mask(flow, M.dis_flow(video[1], video[0]))
    assert 0.0 < occluded.mean() < 0.25  # the border strip that leaves the view, little else


def test_occlusion_mask_rules():
    h, w = 20, 30
    zero = np.zeros((h, w, 2), np.float32)
    assert not M.occlusion_mask(zero, zero).any()
    fw = zero.copy()
    fw[..., 0] = 3.0
    inconsistent = M.occlusion_mask(fw, zero)  # b does not undo f: |f + b|^2 = 9 > 0.09 + 0.5
    assert inconsistent.all()
    consistent = M.occlusion_mask(fw, -fw)
    assert not consistent[:, : w - 3].any() and consistent[:, w - 3:].all()  # only what leaves the frame
    assert not M.occlusion_mask(fw, -fw, exclude_outside=False).any()
    step = zero.copy()
    step[:, 15:, 0] = 1.0  # a motion boundary between columns 14 and 15
    boundary = M.occlusion_mask(step, -step, exclude_outside=False)
    assert boundary[:, 14].all() and boundary.sum() == h


def test_warp_error_follows_motion_and_catches_flicker():
    truth = moving_video(6, step=(2, 1))
    follow = M.warp_error(truth, truth)
    flick = M.warp_error(flicker(truth), truth)
    assert follow < 1e-4
    assert flick > 1e-3 and flick > 50 * follow
    # Fair to the static case too: colours that stay put while the truth moves are not stable.
    frozen = M.warp_error([truth[0]] * 6, truth)
    assert frozen > 20 * follow


# ---------------------------------------------------------------------- accumulator


def test_accumulator_equals_batch_and_baselines():
    truth = moving_video(7, step=(1, 2))
    rng = np.random.default_rng(8)
    output = [np.clip(f.astype(int) + rng.integers(-20, 21, f.shape), 0, 255).astype(np.uint8)
              for f in flicker(truth, 0.05)]

    vm = M.VideoMetrics(baselines=True)
    per_frame = [vm.update(o, t) for o, t in zip(output, truth)]
    got = vm.summaries()
    s = got["output"]

    psnrs = [M.psnr(o, t) for o, t in zip(output, truth)]
    des = [M.mean_ciede2000(o, t) for o, t in zip(output, truth)]
    c_out = np.mean([M.colourfulness(o) for o in output])
    c_truth = np.mean([M.colourfulness(t) for t in truth])
    assert [f.psnr for f in per_frame] == pytest.approx(psnrs)
    assert s.frames == 7 and s.psnr_identical_frames == 0
    assert s.psnr == pytest.approx(np.mean(psnrs))
    assert s.ciede2000 == pytest.approx(np.mean(des))
    assert s.colourfulness_output == pytest.approx(c_out)
    assert s.colourfulness_truth == pytest.approx(c_truth)
    assert s.colourfulness_ratio == pytest.approx(c_out / c_truth)
    assert s.cdc == pytest.approx(M.cdc(output))
    assert s.warp_error == pytest.approx(M.warp_error(output, truth))
    assert set(s.as_dict()) >= {"psnr", "ciede2000", "cdc", "warp_error", "colourfulness_ratio", "frames"}

    floor = got["truth"]
    assert floor.psnr == M.PSNR_CAP and floor.ciede2000 == 0.0 and floor.colourfulness_ratio == 1.0
    assert floor.cdc == pytest.approx(M.cdc(truth))
    assert floor.warp_error == pytest.approx(M.warp_error(truth, truth))
    assert floor.warp_error < s.warp_error

    greys = [M.grey_like(t) for t in truth]
    grey = got["grey"]
    assert grey.colourfulness_output == 0.0 and grey.colourfulness_ratio == 0.0
    assert grey.ciede2000 == pytest.approx(np.mean([M.mean_ciede2000(g, t) for g, t in zip(greys, truth)]))
    assert grey.psnr == pytest.approx(np.mean([M.psnr(g, t) for g, t in zip(greys, truth)]))
    assert grey.warp_error == pytest.approx(M.warp_error(greys, truth))

    # The stand-alone streaming warp error agrees as well.
    wacc = M.WarpErrorAccumulator()
    for o, t in zip(output, truth):
        wacc.update(o, t)
    assert wacc.value() == pytest.approx(s.warp_error)


def test_accumulator_survives_reused_buffers():
    truth = moving_video(4)
    vm = M.VideoMetrics()
    buf = np.empty_like(truth[0])
    for t in truth:  # a decoder that writes every frame into one buffer
        buf[...] = t
        vm.update(buf, t)
    assert vm.summary().warp_error == pytest.approx(M.warp_error(truth, truth))
