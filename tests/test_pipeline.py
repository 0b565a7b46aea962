"""The video pipeline end to end: VideoPipeline, hueshift_core.colorize_video and `hueshift colorize`.

All but the last test use the tiny random model of conftest.py (fast, no shipped weights).
"""

import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import shared_clips

from hueshift_core import colorize_video
from hueshift_core.errors import HueShiftError, InputError, VideoError
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import SampleOptions
from hueshift_core.video import VideoWriter, count_frames, probe, probing, read_frames
from hueshift_core.video.keyframes import KeyframeOptions
from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline

FAST = PipelineOptions(sample=SampleOptions(steps=2))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model gains nothing from threads, and OpenMP threads that spin while they wait make
    it many times slower on a machine busy with other work."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pan(n, h=48, w=80, seed=0, colour=False, cut_at=None, dx=3):
    """n uint8 RGB frames [h, w, 3]: a camera panning over a texture; a different texture after ``cut_at``."""
    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.integers(0, 255, (h, w + dx * n, 3)).astype(np.uint8), (0, 0), 2)
    other = cv2.GaussianBlur(rng.integers(0, 255, (h, w + dx * n, 3)).astype(np.uint8), (0, 0), 4) // 3
    for i in range(n):
        src = other if cut_at is not None and i >= cut_at else big
        f = src[:, dx * i:dx * i + w]
        if not colour:
            f = np.repeat(f.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
        yield np.ascontiguousarray(f)


def synthetic(path, n=12, h=48, w=80, fps=24, **kw):
    with VideoWriter(path, w, h, fps) as wr:
        for f in pan(n, h, w, **kw):
            wr.write(f)
    return path


@pytest.mark.parametrize("h,w,n", [(479, 853, 5), (16, 16, 6), (48, 80, 1)])
def test_same_frames_size_and_rate(tmp_path, tiny_model_path, h, w, n):
    src = synthetic(tmp_path / "in.mp4", n=n, h=h, w=w, fps=30)
    res = colorize_video(src, tmp_path / "out.mp4", tiny_model_path, FAST)
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.fps) == (w, h, 30)
    assert count_frames(tmp_path / "out.mp4") == n == res.frames
    assert not res.colour_input


def test_cuts_keyframes_and_colour_detection(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=30, colour=True, cut_at=15)
    opts = PipelineOptions(sample=SampleOptions(steps=2), keyframes=KeyframeOptions(max_gap=10))
    res = colorize_video(src, tmp_path / "out.mp4", tiny_model_path, opts)
    assert res.colour_input
    assert res.shots == 2
    assert 4 <= res.keyframes <= 8  # 2 shot starts + one per <= 10 frames
    assert len(res.keyframe_jumps) == res.keyframes - res.shots  # one per later keyframe of a shot
    assert set(res.stage_seconds) >= {"decode", "lab", "flow", "diffusion", "propagate", "deflicker", "upscale",
                                      "encode"}
    out = np.concatenate(list(read_frames(tmp_path / "out.mp4")))
    assert out.shape == (30, 48, 80, 3)


def test_per_frame_mode_samples_every_frame(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=7)
    res = colorize_video(src, tmp_path / "out.mp4", tiny_model_path,
                         PipelineOptions(mode="per-frame", sample=SampleOptions(steps=2, batch_size=3)))
    assert res.keyframes == 7 and res.frames == 7 and count_frames(tmp_path / "out.mp4") == 7


def test_same_seed_same_frames(tiny_model_path):
    model = get_model(tiny_model_path)
    frames = np.stack(list(pan(10)))
    a, b = (np.concatenate(list(VideoPipeline(model, FAST).run(iter([frames])))) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert a.shape == frames.shape and a.dtype == np.uint8


def _jumps(model, warm, share):
    opts = PipelineOptions(sample=SampleOptions(steps=8), keyframes=KeyframeOptions(max_gap=4), warm_start=warm,
                           share_noise=share)
    pipe = VideoPipeline(model, opts)
    for _ in pipe.run(iter([np.stack(list(pan(17, dx=1)))])):
        pass
    return float(np.mean(pipe.stats.keyframe_jumps))


def test_warm_start_and_shared_noise_reduce_keyframe_jumps(tiny_model_path):
    model = get_model(tiny_model_path)
    cold, warm = _jumps(model, 1.0, False), _jumps(model, 0.5, True)
    assert warm < 0.8 * cold, f"keyframe jump warm {warm:.2f} vs cold {cold:.2f}"


def test_memory_is_bounded_by_the_segment(tiny_model_path):
    """However long the video, the pipeline holds at most one segment and the next keyframe."""
    model = get_model(tiny_model_path)
    held = []
    for n in (30, 300):
        opts = PipelineOptions(sample=SampleOptions(steps=1), keyframes=KeyframeOptions(max_gap=8))
        pipe = VideoPipeline(model, opts)
        batches = (f[None] for f in pan(n, h=32, w=48, dx=1))  # a generator: never a whole video in memory
        assert sum(len(b) for b in pipe.run(batches)) == n
        held.append(pipe.stats.max_buffered)
    assert held[1] == held[0] <= 8 + 1, f"frames held for 30 and 300 frames: {held}"


def test_huge_frames_get_shorter_segments(tiny_model_path):
    model = get_model(tiny_model_path)
    opts = PipelineOptions(sample=SampleOptions(steps=1), max_segment_mb=1)  # 1 MiB: 7 frames of 240x320 L
    pipe = VideoPipeline(model, opts)
    assert sum(len(b) for b in pipe.run(f[None] for f in pan(20, h=240, w=320, dx=1))) == 20
    assert pipe.stats.max_buffered <= 2**20 // (2 * 240 * 320)


def test_stream_errors(tiny_model_path):
    pipe = VideoPipeline(get_model(tiny_model_path), FAST)
    with pytest.raises(InputError, match="uint8"):
        list(pipe.run(iter([np.zeros((2, 16, 16, 3), np.float32)])))
    pipe = VideoPipeline(get_model(tiny_model_path), FAST)
    with pytest.raises(VideoError, match="must not change"):
        list(pipe.run(iter([np.zeros((2, 16, 16, 3), np.uint8), np.zeros((1, 16, 18, 3), np.uint8)])))
    with pytest.raises(InputError):
        PipelineOptions(mode="fast")
    with pytest.raises(InputError):
        PipelineOptions(deflicker=1.0)


def test_bad_inputs_raise_and_leave_no_output(tmp_path, tiny_model_path, monkeypatch):
    out = tmp_path / "out.mp4"
    src = synthetic(tmp_path / "in.mp4", n=3)
    (tmp_path / "text.mp4").write_text("not a video")
    with av.open(str(tmp_path / "zero.mkv"), "w", format="matroska") as c:  # a video stream with no frames
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    cases = [
        (tmp_path / "missing.mp4", out, "not found"),
        (tmp_path / "text.mp4", out, "not a readable video"),
        (tmp_path / "zero.mkv", out, "no frames|no decodable"),
        (src, tmp_path / "nowhere" / "o.mp4", "does not exist"),
        (src, tmp_path, "folder"),
        (src, src, "overwrite"),
    ]
    for s, d, pattern in cases:
        with pytest.raises(VideoError, match=pattern) as err:
            colorize_video(s, d, tiny_model_path, FAST)
        assert isinstance(err.value, HueShiftError) and "\n" not in str(err.value)
    monkeypatch.setattr(probing, "MAX_PIXELS", 1000)  # a frame too large to colorize
    with pytest.raises(VideoError, match="pixels"):
        colorize_video(src, out, tiny_model_path, FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "text.mp4", "zero.mkv"]


def test_truncated_input_gives_the_frames_that_decode(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=30, h=96, w=128, dx=6)
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.75)])
    with pytest.warns(UserWarning, match="truncated"):
        res = colorize_video(cut, tmp_path / "out.mp4", tiny_model_path, FAST)
    assert 5 <= res.frames < 30 and count_frames(tmp_path / "out.mp4") == res.frames


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_error_mid_stream_leaves_no_output(tmp_path, tiny_model_path, exc):
    src = synthetic(tmp_path / "in.mp4", n=10)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an older output")
    calls = []

    def progress(n):
        calls.append(n)
        if sum(calls) >= 2:
            raise exc

    with pytest.raises(exc):
        colorize_video(src, out, tiny_model_path, FAST, progress=progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]
    assert out.read_bytes() == b"an older output"  # untouched


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=6)
    cpu = colorize_video(src, tmp_path / "cpu.mp4", tiny_model_path, FAST)
    gpu = colorize_video(src, tmp_path / "gpu.mp4", tiny_model_path, FAST, device="cuda")
    assert gpu.frames == cpu.frames == 6


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hueshift_core.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_cli_colorize(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=8, colour=True)
    r = _cli("colorize", src, "-o", tmp_path / "out.mp4", "--model", tiny_model_path, "--steps", 2, "--no-progress",
             "--threads", 1)
    assert r.returncode == 0, r.stderr
    assert "turned grey first" in r.stderr and r.stdout.strip() == str(tmp_path / "out.mp4")
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.fps, count_frames(tmp_path / "out.mp4")) == (80, 48, 24, 8)
    for bad, pattern in [(tmp_path / "missing.mp4", "not found"), (tmp_path / "out.mp4.txt", "not found")]:
        r = _cli("colorize", bad, "-o", tmp_path / "x.mp4", "--model", tiny_model_path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and pattern in r.stderr, r.stderr
    r = _cli("colorize", src, "-o", tmp_path / "x.mp4", "--model", tiny_model_path, "--max-gap", "0")
    assert r.returncode == 2 and "max_gap" in r.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_cli_no_consensus(tmp_path):
    """`--no-consensus` reaches the pipeline from every command that colours video, and changes what the
    shipped model (which has a colour prior) gives a shot with several keyframes."""
    from hueshift_core.cli.commands import build_parser
    from hueshift_core.cli.options import pipeline_options

    parser = build_parser()
    for argv in (["colorize", "in.mp4", "-o", "out.mp4"], ["colorize-many", "in.mp4", "-o", "out"],
                 ["eval", "clip.mp4", "--report", "r.json"]):
        assert pipeline_options(parser.parse_args(argv)).consensus
        assert not pipeline_options(parser.parse_args(argv + ["--no-consensus"])).consensus
    src = synthetic(tmp_path / "in.mp4", n=16, h=96, w=160)
    outs = []
    for extra in ([], ["--no-consensus"]):
        out = tmp_path / f"out{len(extra)}.mp4"
        r = _cli("colorize", src, "-o", out, "--max-gap", 4, "--no-progress", "--threads", 1, *extra)
        assert r.returncode == 0, r.stderr
        outs.append(np.concatenate(list(read_frames(out))).astype(np.float32))
    assert np.abs(outs[0] - outs[1])[4:].mean() > 0.1  # later keyframes (and what they colour) differ
    # the shot's first keyframe (frame 0) is the same; frames 1-3 blend in keyframe 4's colour, which differs
    np.testing.assert_array_equal(outs[0][0], outs[1][0])


@pytest.mark.slow
@pytest.mark.skipif(not shared_clips(), reason="development clips not present")
def test_real_clip_with_shipped_model(tmp_path):
    clip = shared_clips()[0]
    res = colorize_video(clip, tmp_path / "out.mp4", None, PipelineOptions(), max_frames=30)
    assert res.frames == 30 and res.colour_input
    out = np.concatenate(list(read_frames(tmp_path / "out.mp4")))
    lab = cv2.cvtColor(out[15].astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    assert np.abs(lab[..., 1:]).mean() > 3.0, "output is nearly grey"
