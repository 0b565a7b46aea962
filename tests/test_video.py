"""hueshift_core.video: round trips (size, count, fps, colours), colour matrices against OpenCV, bad files, atomic writes, audio."""

import os
import warnings
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from conftest import shared_clips

from hueshift_core.errors import InputError, VideoError
from hueshift_core.video import VideoWriter, available_encoders, count_frames, is_grey_video, probe, read_frames

PATCHES = [(200, 30, 40), (20, 180, 60), (40, 60, 220), (128, 128, 128)]  # saturated: matrix errors show


def _image(h, w, shift=0):
    """Smooth colour gradients with four flat patches in the middle of its quadrants."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x + shift) % w * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                    255 - x * 255 // max(w - 1, 1)], -1).astype(np.uint8)
    for k, colour in enumerate(PATCHES):
        img[_patch(h, w, k)] = colour
    return img


def _patch(h, w, k):
    """The k-th flat patch: the central half of a quadrant (its inside, away from chroma edges)."""
    y0, x0 = (k // 2) * h // 2, (k % 2) * w // 2
    return slice(y0 + h // 8, y0 + 3 * h // 8 or 1), slice(x0 + w // 8, x0 + 3 * w // 8 or 1)


def _patch_error(got, want):
    """Worst mean abs error over the inner parts of the flat patches (chroma subsampling blurs their edges)."""
    h, w = want.shape[:2]
    err = 0.0
    for k in range(4):
        ys, xs = _patch(h, w, k)
        my, mx = (ys.stop - ys.start) // 4, (xs.stop - xs.start) // 4
        inner = slice(ys.start + my, ys.stop - my), slice(xs.start + mx, xs.stop - mx)
        err = max(err, np.abs(got[inner].astype(float) - want[inner]).mean())
    return err


def _write(path, frames, fps=24, **kw):
    with VideoWriter(path, frames[0].shape[1], frames[0].shape[0], fps, **kw) as w:
        for f in frames:
            w.write(f)
    return path


def _encode_raw(path, frames, *, matrix="itu601", rng="MPEG", tag=True, fps=24, fmt=None):
    """Encode with PyAV directly (not VideoWriter): a given matrix/range, tagged in the stream or not."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if tag:
            s.codec_context.colorspace = {"itu601": 6, "itu709": 1}[matrix]
            s.codec_context.color_range = {"MPEG": 1, "JPEG": 2}[rng]
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=matrix, dst_color_range=rng)
            if not tag:
                vf.colorspace, vf.color_range = 2, 0  # unspecified
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return path


def _sine_video(path, seconds_audio=1.0, codec="aac", fmt=None, frames=24):
    """A 64x48 video of ``frames`` frames at 24 fps with a 440 Hz mono sine track."""
    rate = 48000
    with av.open(str(path), "w", format=fmt) as c:
        vs = c.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aud = c.add_stream(codec, rate=rate)
        aud.layout = "mono"
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(_image(48, 64), format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            c.mux(vs.encode(vf))
        n = int(seconds_audio * rate)
        wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)
        sfmt = "fltp" if codec == "aac" else "s16"
        samples = (wave.astype(np.float32) if codec == "aac" else (wave * 32767).astype(np.int16))[None]
        for k in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + 1024]), format=sfmt, layout="mono")
            af.sample_rate, af.pts = rate, k
            c.mux(aud.encode(af))
        c.mux(vs.encode(None))
        c.mux(aud.encode(None))
    return path


def _read_all(path, **kw):
    return np.concatenate(list(read_frames(path, **kw)))


# --- round trips -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("h,w", [(480, 854), (720, 1280)])
@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(30)])
def test_round_trip_size_count_fps_colours(tmp_path, h, w, fps):
    frames = [_image(h, w, shift=8 * i) for i in range(5)]
    path = _write(tmp_path / "v.mp4", frames, fps)
    info = probe(path)
    assert (info.width, info.height, info.fps, info.frame_count, info.frame_count_exact) == (w, h, fps, 5, True)
    assert (info.codec, info.pix_fmt, info.color_space, info.color_range, info.color_tagged) == \
        ("h264", "yuv420p", "bt709", "tv", True)
    assert abs(info.duration_s - 5 / float(fps)) < 2e-3  # mp4 edit lists keep milliseconds
    back = _read_all(path, batch_size=2)
    assert back.shape == (5, h, w, 3) and count_frames(path) == 5
    for got, want in zip(back, frames):
        assert _patch_error(got, want) < 3.0, "flat colours shifted: matrix/range mismatch"
        assert np.abs(got.astype(float) - want).mean() < 3.0


@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(30), Fraction(25, 2)])
def test_timestamps_are_one_frame_apart(tmp_path, fps):
    """Frame i is shown at exactly i / fps: nothing dropped, duplicated or drifting."""
    path = _write(tmp_path / "t.mp4", [_image(32, 48)] * 9, fps)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        times = [f.pts * s.time_base for f in c.decode(s)]
        assert s.average_rate == fps
    assert times == [Fraction(i) / fps for i in range(9)]


def test_float_fps_is_snapped_to_ntsc(tmp_path):
    path = _write(tmp_path / "f.mp4", [_image(16, 16)] * 2, 29.97)
    assert probe(path).fps == Fraction(30000, 1001)
    assert probe(_write(tmp_path / "g.mp4", [_image(16, 16)] * 2, 25.0)).fps == 25


# matrix/range written (by plain PyAV, not VideoWriter), tagged or not -> what probe must report
COLOUR_CASES = [
    ((240, 320), "itu601", "MPEG", True, ("bt601", "tv", True)),
    ((240, 320), "itu601", "MPEG", False, ("bt601", "tv", False)),  # untagged SD: BT.601
    ((720, 1280), "itu709", "MPEG", False, ("bt709", "tv", False)),  # untagged HD: BT.709
    ((720, 1280), "itu709", "MPEG", True, ("bt709", "tv", True)),
    ((240, 320), "itu709", "MPEG", True, ("bt709", "tv", True)),  # the tag wins over the size
    ((240, 320), "itu601", "JPEG", True, ("bt601", "pc", True)),  # full range
]


@pytest.mark.parametrize("size,matrix,rng,tag,expect", COLOUR_CASES)
def test_decoding_uses_the_stream_matrix_and_range(tmp_path, size, matrix, rng, tag, expect):
    img = _image(*size)
    path = _encode_raw(tmp_path / "c.mp4", [img] * 2, matrix=matrix, rng=rng, tag=tag)
    info = probe(path)
    assert (info.color_space, info.color_range, info.color_tagged) == expect
    got = next(read_frames(path))[0]
    assert _patch_error(got, img) < 3.0
    # the test has teeth: reading with the other matrix or range is off by far more than 3 levels
    other = {"itu601": "itu709", "itu709": "itu601"}[matrix]
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        wrong_matrix = frame.to_ndarray(format="rgb24", src_colorspace=other, src_color_range=rng, dst_color_range="JPEG")
        # (full-range H.264 decodes as yuvj420p, which swscale always reads as full: re-wrap the raw planes)
        raw = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        wrong_range = raw.to_ndarray(format="rgb24", src_colorspace=matrix, dst_color_range="JPEG",
                                     src_color_range={"MPEG": "JPEG", "JPEG": "MPEG"}[rng])
    assert _patch_error(wrong_matrix, img) > 6.0 and _patch_error(wrong_range, img) > 6.0


def test_bt601_matches_opencv(tmp_path):
    """Reference from an independent implementation: OpenCV's I420 -> RGB is BT.601, tv range."""
    img = _image(240, 320)
    path = _encode_raw(tmp_path / "c.mp4", [img], matrix="itu601", rng="MPEG", tag=False)
    with av.open(str(path)) as c:
        planes = next(c.decode(video=0)).to_ndarray()  # yuv420p as one [H * 3/2, W] I420 array
    ref = cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420)
    got = next(read_frames(path))[0]
    assert _patch_error(got, ref) < 1.0
    assert np.abs(got.astype(float) - ref).mean() < 1.5  # chroma upsampling differs only at edges


@pytest.mark.parametrize("h,w", [(479, 853), (15, 17), (16, 16)])
def test_odd_and_tiny_sizes_keep_exact_size(tmp_path, h, w):
    frames = [_image(h, w)] * 3
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, w, h, 24) as wr:
        wr.write(np.stack(frames))
    assert wr.pix_fmt == ("yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p")
    back = _read_all(path)
    assert back.shape == (3, h, w, 3) and (probe(path).width, probe(path).height) == (w, h)
    if h > 100:
        assert _patch_error(back[0], frames[0]) < 3.0


def test_mpeg4_fallback_takes_odd_sizes(tmp_path):
    img = _image(15, 17)
    with VideoWriter(tmp_path / "m.mp4", 17, 15, 24, encoder="mpeg4") as wr:
        wr.write(np.stack([img] * 2))
    assert wr.encoder == "mpeg4" and probe(tmp_path / "m.mp4").codec == "mpeg4"
    assert _read_all(tmp_path / "m.mp4").shape == (2, 15, 17, 3)


def test_encoders():
    found = available_encoders()
    assert found and set(found) <= {"libx264", "libopenh264", "mpeg4"}
    assert found == [e for e in ("libx264", "libopenh264", "mpeg4") if e in found]  # preference order
    with pytest.raises(VideoError, match="not available"):
        VideoWriter("x.mp4", 16, 16, 24, encoder="prores")


def test_single_frame_video(tmp_path):
    path = _write(tmp_path / "one.mp4", [_image(32, 48)])
    info = probe(path)
    assert info.frame_count == 1 and count_frames(path) == 1
    assert [b.shape for b in read_frames(path)] == [(1, 32, 48, 3)]


# --- streaming options -------------------------------------------------------------------------------------------

def test_batches_and_frame_selection(tmp_path):
    levels = [10 + 20 * i for i in range(10)]  # frame i is flat grey 10 + 20 i: its index can be read back
    path = _write(tmp_path / "many.mp4", [np.full((32, 48, 3), v, np.uint8) for v in levels])
    assert [len(b) for b in read_frames(path, batch_size=4)] == [4, 4, 2]
    assert [len(b) for b in read_frames(path, batch_size=1)] == [1] * 10
    def index(frame):  # tv-range quantisation moves a level by up to 1
        return round((frame.mean() - 10) / 20)

    assert [index(f) for f in _read_all(path, batch_size=4, start=2, every_nth=3)] == [2, 5, 8]
    assert [index(f) for f in _read_all(path, start=1, every_nth=2, max_frames=2)] == [1, 3]
    assert list(read_frames(path, start=50)) == []  # past the end: nothing, no error


def test_max_side_keeps_aspect(tmp_path):
    path = _write(tmp_path / "big.mp4", [_image(48, 64)] * 2)
    assert next(read_frames(path, max_side=32)).shape == (2, 24, 32, 3)
    assert next(read_frames(path, max_side=100)).shape == (2, 48, 64, 3)  # never enlarged


def test_bad_options_fail_at_the_call(tmp_path):
    with pytest.raises(InputError, match="batch_size"):
        read_frames(tmp_path / "whatever.mp4", batch_size=0)
    with pytest.raises(InputError, match="max_side"):
        read_frames(tmp_path / "whatever.mp4", max_side=0)
    with pytest.raises(VideoError, match="not found"):
        read_frames(tmp_path / "missing.mp4")


# --- bad files ---------------------------------------------------------------------------------------------------

def _bad_files(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("hello, not a video\n")
    cv2.imwrite(str(tmp_path / "still.png"), _image(32, 48))
    with av.open(str(tmp_path / "music.m4a"), "w", format="mp4") as c:  # audio with a cover image
        s = c.add_stream("aac", rate=48000)
        cover = c.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 32, 48, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        c.start_encoding()
        jpeg = av.Packet(cv2.imencode(".jpg", _image(32, 48))[1].tobytes())
        jpeg.stream, jpeg.pts, jpeg.dts = cover, 0, 0
        c.mux(jpeg)
        for k in range(4):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, k * 1024
            c.mux(s.encode(af))
        c.mux(s.encode(None))
    for name, fmt in [("zero.mp4", "mp4"), ("zero.mkv", "matroska")]:  # a video stream, no frames
        with av.open(str(tmp_path / name), "w", format=fmt) as c:
            s = c.add_stream("libx264", rate=24)
            s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
            c.start_encoding()
    return {
        "missing.mp4": "not found", ".": "is a folder", "empty.mp4": r"empty \(0 bytes\)",
        "notes.mp4": "not a readable video", "still.png": "still image", "music.m4a": r"no video stream \(only audio, cover image\)",
        "zero.mp4": "no video stream|no frames|no decodable", "zero.mkv": "no frames|no decodable",
    }


def test_bad_files_raise_one_clear_line(tmp_path):
    for name, pattern in _bad_files(tmp_path).items():
        path = tmp_path / name
        for call in (probe, count_frames, lambda p: list(read_frames(p)), is_grey_video):
            with pytest.raises(VideoError, match=pattern) as err:
                call(path)
            assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_truncated_file_yields_the_frames_before_the_cut(tmp_path):
    frames = [_image(120, 160, shift=4 * i) for i in range(30)]
    path = _write(tmp_path / "full.mp4", frames)
    full = _read_all(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probe(cut)
        got = _read_all(cut)
    assert any("truncated" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert 5 <= len(got) < 30
    # Frames before the cut decode exactly; the one decoded from the cut-off packet may be damaged
    # (which one that is depends on the decoder's threads).
    np.testing.assert_array_equal(got[:-1], full[: len(got) - 1])
    cut.write_bytes(data[: int(len(data) * 0.1)])  # not even the first frame
    with pytest.raises(VideoError, match="no decodable video frames"):
        probe(cut)
    with pytest.raises(VideoError, match="no decodable video frames"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list(read_frames(cut))


# --- atomic writes -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_in_with_block_leaves_nothing(tmp_path, exc):
    out = tmp_path / "out.mp4"
    with pytest.raises(exc), VideoWriter(out, 32, 32, 24) as w:
        w.write(_image(32, 32))
        assert w.tmp.name == ".out.partial.mp4" and not out.exists()
        raise exc("boom")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_output(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(VideoError, match="uint8 RGB"), VideoWriter(out, 32, 32, 24) as w:
        w.write(np.zeros((32, 33, 3), np.uint8))
    with pytest.raises(VideoError, match="no frames were written"), VideoWriter(out, 32, 32, 24):
        pass
    assert sorted(tmp_path.iterdir()) == [out] and out.read_bytes() == b"previous result"


def test_failed_close_leaves_nothing(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(VideoError, match="disk full"):
        _write(tmp_path / "out.mp4", [_image(32, 32)])
    assert list(tmp_path.iterdir()) == []


def test_bad_output_paths_fail_up_front(tmp_path, monkeypatch):
    with pytest.raises(VideoError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "x.mp4", 32, 32, 24)
    with pytest.raises(VideoError, match="is a folder"):
        VideoWriter(tmp_path, 32, 32, 24)
    with pytest.raises(VideoError, match="invalid frame size"):
        VideoWriter(tmp_path / "x.mp4", 0, 32, 24)
    with pytest.raises(VideoError, match="frame rate"):
        VideoWriter(tmp_path / "x.mp4", 32, 32, 0)
    with pytest.raises(VideoError, match="not open"):
        VideoWriter(tmp_path / "x.mp4", 32, 32, 24).write(_image(32, 32))
    monkeypatch.setattr(os, "access", lambda *a: False)  # as if the folder were read-only (tests run as root)
    with pytest.raises(VideoError, match="not writable"):
        VideoWriter(tmp_path / "x.mp4", 32, 32, 24)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    with pytest.raises(VideoError, match="not writable"):
        VideoWriter(folder / "x.mp4", 32, 32, 24)


# --- audio -------------------------------------------------------------------------------------------------------

def _audio_stream(path):
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        a = c.streams.audio[0]
        end = max(float((p.pts + p.duration) * p.time_base) for p in c.demux(a) if p.pts is not None)
        return a.codec_context.name, end


def _samples(path, n):
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])[:n]


def test_audio_is_copied_and_cut_at_the_video_end(tmp_path):
    src = _sine_video(tmp_path / "src.mp4", seconds_audio=2.0)  # audio outlasts the 1 s video
    assert probe(src).has_audio
    out = _write(tmp_path / "out.mp4", [_image(48, 64)] * 12, audio_from=src)  # 0.5 s
    codec, end = _audio_stream(out)
    assert codec == "aac" and 0.4 < end <= 0.5 + 1024 / 48000
    assert probe(out).has_audio and count_frames(out) == 12
    np.testing.assert_array_equal(_samples(out, 12000), _samples(src, 12000))  # copied packets: same samples
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "src.mp4"]


def test_audio_mp4_cannot_hold_is_reencoded_to_aac(tmp_path):
    src = _sine_video(tmp_path / "src.mkv", codec="pcm_s16le", fmt="matroska")
    out = _write(tmp_path / "out.mp4", [_image(48, 64)] * 24, audio_from=src)
    codec, end = _audio_stream(out)
    assert codec == "aac" and 0.9 < end < 1.1


def test_audio_from_a_silent_or_broken_source(tmp_path):
    silent = _write(tmp_path / "silent.mp4", [_image(48, 64)] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _write(tmp_path / "a.mp4", [_image(48, 64)] * 3, audio_from=silent)
    assert _audio_stream(out) is None
    (tmp_path / "broken.mp4").write_text("no audio here")
    with pytest.warns(UserWarning, match="video only"):
        out = _write(tmp_path / "b.mp4", [_image(48, 64)] * 3, audio_from=tmp_path / "broken.mp4")
    assert _audio_stream(out) is None and count_frames(out) == 3


# --- grey detection ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 320])  # short: every frame sampled; long: keyframes at spread times
def test_is_grey_video(tmp_path, n):
    colour = _image(32, 32)
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    # the colour video starts grey for its first half: sampling only the start would miss the colour
    frames = [grey] * (n // 2) + [colour] * (n - n // 2)
    assert not is_grey_video(_write(tmp_path / "c.mp4", frames))
    assert is_grey_video(_write(tmp_path / "g.mp4", [grey] * n))


# --- the development clips, when present -------------------------------------------------------------------------

@pytest.mark.skipif(not shared_clips(), reason="development clips not present")
def test_real_clip_metadata_and_truncation(tmp_path):
    clip = shared_clips()[0]
    info = probe(clip)
    assert (info.width, info.height, info.fps, info.color_space, info.color_range) == (854, 480, 24, "bt601", "tv")
    assert info.frame_count_exact and count_frames(clip) == info.frame_count
    assert not is_grey_video(clip)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = _read_all(cut, max_side=214)
    assert 0 < len(got) < info.frame_count
    np.testing.assert_array_equal(got[:5], _read_all(clip, max_frames=5, max_side=214))
