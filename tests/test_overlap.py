"""Stages overlapped on threads (hueshift_core.video.overlap) and the CPU stages made faster for it: the same
frames as one thread, in order, errors where they belong, memory bounded, and the fast paths equal to their
plain references within rounding."""

import dataclasses
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from test_pipeline import FAST, one_torch_thread, pan, synthetic  # noqa: F401 — its autouse fixture applies here too

from hueshift_core import colorize_video
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.lab import lab_to_rgb_u8
from hueshift_core.model.upscale import Upscale, upscale_ab, upscale_merge_u8
from hueshift_core.video import read_frames
from hueshift_core.video.keyframes import KeyframeOptions
from hueshift_core.video.overlap import Prefetch, map_ahead
from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline, overlap_depths
from hueshift_core.video.propagate import compute_flow, fb_confidence, flow_confidence, warp


def test_prefetch_keeps_order_bounds_and_stops():
    made = []

    def source():
        for i in range(100):
            made.append(i)
            yield i

    with Prefetch(source(), depth=3) as it:
        assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
        time.sleep(0.2)
        assert len(made) <= 5 + 3 + 1  # at most `depth` ahead (plus the one being offered)
    assert len(made) < 100  # closed early: the thread stopped


def test_prefetch_hands_errors_over_in_order():
    def source():
        yield 1
        raise ValueError("bad frame 2")

    it = Prefetch(source())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad frame 2"):
        next(it)
    it.close()


def test_map_ahead_in_order_on_one_other_thread_bounded():
    main = threading.get_ident()
    seen, running = [], []

    def fn(x):
        seen.append(threading.get_ident())
        time.sleep(0.01 * (x % 3))  # uneven work: results must still come in order
        return x * x

    produced = []

    def items():
        for i in range(20):
            produced.append(i)
            running.append(len(produced) - len(out))
            yield i

    out = []
    for r in map_ahead(fn, items(), depth=3):
        out.append(r)
    assert out == [i * i for i in range(20)]
    assert len(set(seen)) == 1 and main not in seen
    assert max(running) <= 3 + 2  # pending beyond the one yielded stays within depth


def test_map_ahead_error_at_its_place_and_close_cancels():
    def fn(x):
        if x == 4:
            raise RuntimeError("job 4 failed")
        return x

    got = []
    with pytest.raises(RuntimeError, match="job 4 failed"):
        for r in map_ahead(fn, range(10), depth=2):
            got.append(r)
    assert got == [0, 1, 2, 3]

    calls = []
    gen = map_ahead(lambda x: calls.append(x) or time.sleep(0.02), range(100), depth=2)
    next(gen)
    gen.close()
    assert len(calls) < 10  # what had not started was cancelled


def test_overlap_depths_one_segment_within_budget():
    assert overlap_depths(480, 854, 48) == (49, 13, 13)  # a whole segment each way at 854x480 (4 frames a job)
    frames4k, jobs4k, encode4k = overlap_depths(2160, 3840, 48)
    assert 2 <= frames4k < 49 and 2 <= jobs4k < 49 and encode4k == 2  # large frames: fewer, within the budgets
    assert frames4k * 4 * 3840 * 2160 <= 128 * 2**20 and jobs4k * 5 * 3840 * 2160 <= 128 * 2**20
    assert overlap_depths(8, 8, 1) == (2, 2, 2)


@pytest.mark.parametrize("mode", ["keyframes", "per-frame"])
def test_overlapped_pipeline_gives_exactly_the_frames_of_one_thread(tiny_model_path, mode):
    model = get_model(tiny_model_path)
    frames = np.stack(list(pan(30, cut_at=17)))
    opts = PipelineOptions(mode=mode, sample=FAST.sample, keyframes=KeyframeOptions(max_gap=6))
    runs = {}
    for overlap in (False, True):
        pipe = VideoPipeline(model, dataclasses.replace(opts, overlap=overlap))
        runs[overlap] = np.concatenate(list(pipe.run(iter([frames[:7], frames[7:20], frames[20:]]))))
        assert pipe.stats.frames == 30
    assert np.array_equal(runs[False], runs[True])


def test_overlapped_pipeline_error_in_a_later_batch_comes_out_and_threads_end(tiny_model_path):
    model = get_model(tiny_model_path)
    frames = np.stack(list(pan(12)))
    before = threading.active_count()

    def batches():
        yield frames[:6]
        yield frames[6:, :20]  # the frame size changes: the analysis thread raises

    with pytest.raises(Exception, match="frame size must not change"):
        list(VideoPipeline(model, FAST).run(batches()))
    time.sleep(0.3)
    assert threading.active_count() <= before


def test_colorize_video_same_file_content_with_and_without_overlap(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=20)
    outs = []
    for overlap in (False, True):
        dst = tmp_path / f"out-{overlap}.mp4"
        colorize_video(src, dst, tiny_model_path, dataclasses.replace(FAST, overlap=overlap))
        outs.append(np.concatenate(list(read_frames(dst, 8))))
    assert np.array_equal(outs[0], outs[1])


def test_cpu_merge_equals_the_plain_composition_within_rounding():
    rng = np.random.default_rng(0)
    l_full = (rng.random((3, 96, 170)) * 100).astype(np.float16)
    ab = (rng.standard_normal((3, 24, 44, 2)) * 20).astype(np.float32)
    for method in Upscale:
        ref_ab = upscale_ab(torch.from_numpy(ab).permute(0, 3, 1, 2), torch.from_numpy(l_full.astype(np.float32))[:, None],
                            method)
        ref = lab_to_rgb_u8(l_full.astype(np.float32), ref_ab.permute(0, 2, 3, 1).numpy())
        got = upscale_merge_u8(l_full, ab, method)
        assert got.shape == (3, 96, 170, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - ref).max() <= 1


def test_flow_confidence_equals_its_formula():
    rng = np.random.default_rng(1)
    a = cv2.GaussianBlur(rng.integers(0, 255, (64, 96)).astype(np.uint8), (0, 0), 2)
    b = np.roll(a, (2, 3), (0, 1))
    f_ab, f_ba = compute_flow(a, b), compute_flow(b, a)
    back = warp(f_ba, f_ab)
    err = np.sum((f_ab + back) ** 2, axis=-1)
    bound = 0.01 * (np.sum(f_ab ** 2, -1) + np.sum(back ** 2, -1)) + 0.5
    want_fb = np.clip(1.0 - (err - bound) / (3.0 * bound), 0.0, 1.0)
    np.testing.assert_array_equal(fb_confidence(f_ab, f_ba), want_fb)
    h, w = a.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = gx + f_ab[..., 0], gy + f_ab[..., 1]
    b_at = cv2.remap(b.astype(np.float32), tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    photo = np.clip(1.0 - (np.abs(a.astype(np.float32) - b_at) - 10.0) / 20.0, 0.0, 1.0)
    inside = (tx >= -0.5) & (tx <= w - 0.5) & (ty >= -0.5) & (ty <= h - 0.5)
    np.testing.assert_array_equal(flow_confidence(a, b, f_ab, f_ba), (want_fb * photo * inside).astype(np.float32))


def test_closing_a_prefetch_wakes_a_consumer_waiting_on_another_thread():
    gate = threading.Event()

    def slow():
        gate.wait(5)
        yield 1

    src = Prefetch(slow(), depth=1)
    got = []
    consumer = threading.Thread(target=lambda: got.append(list(src)))
    consumer.start()
    time.sleep(0.1)
    gate.set()
    src.close()
    consumer.join(5)
    assert not consumer.is_alive()  # it saw the end instead of waiting forever


def test_interrupted_colorize_leaves_no_file_and_no_threads(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=30)
    before = threading.active_count()
    calls = []

    def progress(n):
        calls.append(n)
        raise KeyboardInterrupt  # what Ctrl-C (or ComfyUI's interrupt) raises in the caller's thread

    with pytest.raises(KeyboardInterrupt):
        colorize_video(src, tmp_path / "out.mp4", tiny_model_path,
                       dataclasses.replace(FAST, keyframes=KeyframeOptions(max_gap=4)), progress=progress)
    assert calls and not (tmp_path / "out.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.mp4"]  # no partial file either
    time.sleep(0.3)
    assert threading.active_count() <= before
