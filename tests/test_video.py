import warnings
from fractions import Fraction

import av
import numpy as np
import pytest

from hueshift_core.errors import VideoError
from hueshift_core.video import VideoWriter, available_encoders, count_frames, is_grey_video, probe, read_frames

from conftest import shared_clips


def _patches(h, w):
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (200, 30, 40)
    img[h // 2:, : w // 2] = (20, 180, 60)
    img[: h // 2, w // 2:] = (40, 60, 220)
    img[h // 2:, w // 2:] = (128, 128, 128)
    return img


def _write(path, frames, fps=24, **kw):
    with VideoWriter(path, frames[0].shape[1], frames[0].shape[0], fps, **kw) as w:
        for f in frames:
            w.write(f)
    return path


@pytest.mark.parametrize("h,w", [(480, 854), (720, 1280)])
@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(30)])
def test_round_trip_colours_size_fps_count(tmp_path, h, w, fps):
    img = _patches(h, w)
    path = _write(tmp_path / "v.mp4", [img] * 7, fps)
    info = probe(path)
    assert (info.width, info.height, info.fps) == (w, h, fps)
    frames = np.concatenate(list(read_frames(path, batch_size=3)))
    assert frames.shape == (7, h, w, 3) and count_frames(path) == 7
    for ys, xs in [(slice(h // 8, 3 * h // 8), slice(w // 8, 3 * w // 8)),
                   (slice(5 * h // 8, 7 * h // 8), slice(5 * w // 8, 7 * w // 8))]:
        err = np.abs(frames[3][ys, xs].astype(float) - img[ys, xs].astype(float)).mean()
        assert err < 3.0, f"colour shifted by {err:.2f} levels: matrix/range mismatch"


def test_bt601_source_is_decoded_with_its_matrix(tmp_path):
    """An SD file tagged BT.601 (as the development clips are) decodes to the right colours."""
    img = _patches(240, 320)
    path = tmp_path / "sd601.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.colorspace, s.codec_context.color_range = 5, 1
        for i in range(3):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="itu601", dst_color_range="MPEG")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    frame = next(read_frames(path))[0]
    assert np.abs(frame[30:90, 40:120].astype(float) - img[30:90, 40:120]).mean() < 3.0


@pytest.mark.parametrize("h,w", [(479, 853), (15, 17), (16, 16)])
def test_odd_and_tiny_sizes_keep_exact_size(tmp_path, h, w):
    path = _write(tmp_path / "odd.mp4", [_patches(h, w)] * 3)
    assert next(read_frames(path)).shape == (3, h, w, 3)


def test_single_frame_and_streaming_batches(tmp_path):
    path = _write(tmp_path / "one.mp4", [_patches(32, 48)])
    assert probe(path).frame_count == 1
    path = _write(tmp_path / "many.mp4", [_patches(32, 48)] * 10)
    sizes = [len(b) for b in read_frames(path, batch_size=4)]
    assert sizes == [4, 4, 2]
    assert [len(b) for b in read_frames(path, batch_size=4, start=2, every_nth=3, max_frames=2)] == [2]
    assert next(read_frames(path, max_side=24)).shape[1:] == (16, 24, 3)


def test_bad_inputs(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="folder"):
        probe(tmp_path)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        probe(tmp_path / "empty.mp4")
    (tmp_path / "notes.mp4").write_text("hello, not a video")
    with pytest.raises(VideoError, match="not a readable video"):
        probe(tmp_path / "notes.mp4")
    with pytest.raises(VideoError, match="not a readable video"):
        list(read_frames(tmp_path / "notes.mp4"))


def test_truncated_file_yields_what_decodes(tmp_path):
    path = _write(tmp_path / "full.mp4", [np.roll(_patches(120, 160), i * 4, axis=1) for i in range(30)])
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            n = sum(len(b) for b in read_frames(cut))
        except VideoError as err:  # moov atom at the end: nothing decodable is also a clear error
            assert "truncated" in str(err) or "not a readable" in str(err)
            return
    assert 0 < n <= 30


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 32, 32, 24) as w:
            w.write(_patches(32, 32))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VideoError, match="uint8"):
        with VideoWriter(out, 32, 32, 24) as w:
            w.write(np.zeros((32, 33, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VideoError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "x.mp4", 32, 32, 24)


def test_audio_is_copied(tmp_path):
    src = tmp_path / "with_audio.mp4"
    with av.open(str(src), "w") as c:
        vs = c.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        as_ = c.add_stream("aac", rate=48000)
        for i in range(24):
            vf = av.VideoFrame.from_ndarray(_patches(48, 64), format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            for p in vs.encode(vf):
                c.mux(p)
        t = np.arange(48000) / 48000
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, 48000, 1024):
            af = av.AudioFrame.from_ndarray(samples[:, k:k + 1024], format="fltp", layout="mono")
            af.sample_rate = 48000
            for p in as_.encode(af):
                c.mux(p)
        for s in (vs, as_):
            for p in s.encode(None):
                c.mux(p)
    assert probe(src).has_audio
    out = _write(tmp_path / "out.mp4", [_patches(48, 64)] * 24, audio_from=src)
    info = probe(out)
    assert info.has_audio and count_frames(out) == 24


def test_encoder_and_grey_detection(tmp_path):
    assert available_encoders()[0] in ("libx264", "libopenh264", "mpeg4")
    grey = np.repeat(_patches(32, 48)[..., :1], 3, axis=2)
    assert is_grey_video(_write(tmp_path / "g.mp4", [grey] * 3))
    assert not is_grey_video(_write(tmp_path / "c.mp4", [_patches(32, 48)] * 3))


@pytest.mark.skipif(not shared_clips(), reason="development clips not present")
def test_real_clip_metadata():
    clip = shared_clips()[0]
    info = probe(clip)
    assert (info.width, info.height, info.fps) == (854, 480, 24)
    assert count_frames(clip) == info.frame_count
