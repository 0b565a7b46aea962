"""The video pipeline end to end: hueshift_core.colorize_video and the `hueshift colorize` CLI."""

import subprocess
import sys

import numpy as np
import pytest

from hueshift_core import colorize_video
from hueshift_core.colorize import SampleOptions
from hueshift_core.errors import VideoError
from hueshift_core.keyframes import KeyframeOptions
from hueshift_core.pipeline import PipelineOptions, VideoPipeline
from hueshift_core.colorize import get_model
from hueshift_core.video import VideoWriter, count_frames, probe, read_frames

from conftest import shared_clips

FAST = PipelineOptions(sample=SampleOptions(steps=2))


def synthetic(path, n=12, h=48, w=80, fps=24, colour=False, cut_at=None):
    rng = np.random.default_rng(0)
    import cv2
    big = cv2.GaussianBlur(rng.integers(0, 255, (h, w + 3 * n, 3)).astype(np.uint8), (0, 0), 2)
    other = cv2.GaussianBlur(rng.integers(0, 255, (h, w + 3 * n, 3)).astype(np.uint8), (0, 0), 4) // 3
    with VideoWriter(path, w, h, fps) as wr:
        for i in range(n):
            src = other if cut_at is not None and i >= cut_at else big
            f = src[:, 3 * i:3 * i + w]
            if not colour:
                f = np.repeat(f.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
            wr.write(np.ascontiguousarray(f))
    return path


@pytest.mark.parametrize("h,w,n", [(479, 853, 5), (16, 16, 6), (48, 80, 1)])
def test_same_frames_size_and_rate(tmp_path, tiny_model_path, h, w, n):
    src = synthetic(tmp_path / "in.mp4", n=n, h=h, w=w, fps=30)
    res = colorize_video(src, tmp_path / "out.mp4", tiny_model_path, FAST)
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.fps) == (w, h, 30)
    assert count_frames(tmp_path / "out.mp4") == n == res.frames


def test_keyframes_cuts_and_colour_detection(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=30, colour=True, cut_at=15)
    opts = PipelineOptions(sample=SampleOptions(steps=2), keyframes=KeyframeOptions(max_gap=10))
    res = colorize_video(src, tmp_path / "out.mp4", tiny_model_path, opts)
    assert res.colour_input
    assert res.shots == 2
    assert 3 <= res.keyframes <= 8
    out = np.concatenate(list(read_frames(tmp_path / "out.mp4")))
    assert out.shape[0] == 30


def test_per_frame_mode(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=7)
    res = colorize_video(src, tmp_path / "out.mp4", tiny_model_path,
                         PipelineOptions(mode="per-frame", sample=SampleOptions(steps=2, batch_size=3)))
    assert res.keyframes == 7 and res.frames == 7


def test_memory_is_bounded_by_the_segment(tiny_model_path):
    """The pipeline buffers at most one keyframe segment however long the video is."""
    model = get_model(tiny_model_path)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (1, 32, 48, 3), dtype=np.uint8)
    for n in (20, 200):
        pipe = VideoPipeline(model, PipelineOptions(sample=SampleOptions(steps=1), keyframes=KeyframeOptions(max_gap=8)))
        total = sum(len(b) for b in pipe.run(iter([frame] * n)))
        assert total == n
        assert pipe.stats.max_buffered <= 8 + 1  # a segment and the next keyframe


def test_bad_inputs_leave_no_output(tmp_path, tiny_model_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match="not found"):
        colorize_video(tmp_path / "missing.mp4", out, tiny_model_path, FAST)
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="not a readable video"):
        colorize_video(tmp_path / "text.mp4", out, tiny_model_path, FAST)
    src = synthetic(tmp_path / "in.mp4", n=3)
    with pytest.raises(VideoError, match="does not exist"):
        colorize_video(src, tmp_path / "nowhere" / "o.mp4", tiny_model_path, FAST)
    with pytest.raises(VideoError, match="overwrite"):
        colorize_video(src, src, tiny_model_path, FAST)
    assert not out.exists()


def test_error_mid_stream_leaves_no_output(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=10)
    out = tmp_path / "out.mp4"
    calls = []

    def progress(n):
        calls.append(n)
        if sum(calls) >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        colorize_video(src, out, tiny_model_path, FAST, progress=progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "hueshift_core.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def test_cli_colorize(tmp_path, tiny_model_path):
    src = synthetic(tmp_path / "in.mp4", n=8, colour=True)
    r = _cli("colorize", src, "-o", tmp_path / "out.mp4", "--model", tiny_model_path, "--steps", 2, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "turned grey first" in r.stderr
    assert count_frames(tmp_path / "out.mp4") == 8
    r = _cli("colorize", tmp_path / "missing.mp4", "-o", tmp_path / "x.mp4", "--model", tiny_model_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not found" in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not shared_clips(), reason="development clips not present")
def test_real_clip_with_shipped_model(tmp_path):
    clip = shared_clips()[0]
    res = colorize_video(clip, tmp_path / "out.mp4", None, PipelineOptions(), max_frames=30)
    assert res.frames == 30 and res.colour_input
    out = np.concatenate(list(read_frames(tmp_path / "out.mp4")))
    import cv2
    lab = cv2.cvtColor(out[15].astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    assert np.abs(lab[..., 1:]).mean() > 3.0, "output is nearly grey"
