"""Streaming video decode and encode (PyAV), with named metadata and the right colours.

* :func:`probe` -> :class:`VideoInfo`; :func:`read_frames` yields uint8 RGB batches
  ``[B, H, W, 3]`` decoded frame by frame (memory bounded by the batch);
* :class:`VideoWriter` encodes H.264 to a temporary file and renames it when complete, so
  an error or Ctrl-C never leaves a half-written video; it can copy the audio of a source.

Colour: YUV -> RGB uses the stream's own matrix and range (BT.709 / BT.601, tv / pc); an
untagged stream is BT.709 from 720 lines up and BT.601 below (what players assume). Output is
encoded as BT.709, tv range, and tagged so. Odd sizes keep their exact size: yuv420p needs even
sides, so those are encoded as yuv444p (High 4:4:4 profile).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .errors import VideoError

log = logging.getLogger(__name__)

ENCODERS = ("libx264", "libopenh264", "mpeg4")
MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    frame_count_exact: bool
    duration_s: float
    has_audio: bool
    codec: str
    pix_fmt: str
    color_space: str
    color_range: str


def available_encoders() -> list[str]:
    """The H.264 (or fallback) encoders this PyAV build has, best first."""
    return [e for e in ENCODERS if e in av.codecs_available]


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"video not found: {p}")
    if p.is_dir():
        raise VideoError(f"{p} is a folder, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p} is empty (0 bytes)")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoError(f"{p} is not a readable video ({err.__class__.__name__}): check the file or re-encode it") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{p} has no video stream")
    return container


def _matrix(frame: av.VideoFrame) -> tuple[str, str]:
    """(src_colorspace, src_color_range) names for PyAV's reformatter."""
    cs = int(frame.colorspace or 2)
    if cs == 1:
        space = "itu709"
    elif cs in (5, 6):
        space = "itu601"
    elif cs == 7:
        space = "smpte240m"
    elif cs in (9, 10):
        space = "bt2020"
    else:  # unspecified: what players assume
        space = "itu709" if frame.height >= 720 else "itu601"
    full = int(frame.color_range or 0) == 2 or frame.format.name.startswith("yuvj")
    return space, ("JPEG" if full else "MPEG")


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame -> uint8 RGB ``[H, W, 3]`` with its own colour matrix and range."""
    if frame.format.name in ("rgb24", "bgr24", "gray", "rgba", "bgra", "gbrp"):
        return frame.to_ndarray(format="rgb24")
    space, rng = _matrix(frame)
    return frame.to_ndarray(format="rgb24", src_colorspace=space, src_color_range=rng, dst_color_range="JPEG")


def count_frames(path: str | os.PathLike) -> int:
    """Exact number of video frames, by demuxing packets (no decoding)."""
    with _open(path) as c:
        stream = c.streams.video[0]
        try:
            return sum(1 for pkt in c.demux(stream) if pkt.size)
        except av.error.FFmpegError:
            return 0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata and check that at least one frame decodes."""
    with _open(path) as c:
        s = c.streams.video[0]
        fps = s.average_rate or s.guessed_rate or Fraction(25)
        try:
            first = next(c.decode(s), None)
        except av.error.FFmpegError:
            first = None
        if first is None:
            raise VideoError(f"{path} has no decodable video frames: the file is empty, truncated or corrupt")
        if first.width * first.height > MAX_PIXELS:
            raise VideoError(f"{path} is {first.width}x{first.height}: frames above {MAX_PIXELS} pixels are not supported")
        space, rng = _matrix(first)
        frames = int(s.frames or 0)
        exact = frames > 0
        if not exact:
            dur = float(s.duration * s.time_base) if s.duration else (c.duration or 0) / av.time_base
            frames = max(1, round(dur * float(fps)))
        duration = frames / float(fps)
        return VideoInfo(str(path), first.width, first.height, Fraction(fps), frames, exact, duration,
                         bool(c.streams.audio), s.codec_context.name, first.format.name, space, rng)


def read_frames(path: str | os.PathLike, batch_size: int = 16, *, start: int = 0, max_frames: int | None = None,
                every_nth: int = 1, max_side: int | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 RGB batches ``[B, H, W, 3]`` (B <= ``batch_size``), decoding one frame at a time.

    ``start`` skips that many frames, ``every_nth`` keeps one frame in n, ``max_frames`` caps
    the frames yielded, ``max_side`` shrinks frames (area filter, aspect kept) so their long
    side is at most that. A truncated file yields the frames that decode, then stops with a
    warning; a file where nothing decodes raises :class:`VideoError`.
    """
    if batch_size < 1 or every_nth < 1 or start < 0:
        raise VideoError("batch_size and every_nth must be >= 1 and start >= 0")
    batch: list[np.ndarray] = []
    kept = 0
    with _open(path) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        index = -1
        it = c.decode(stream)
        while True:
            try:
                frame = next(it)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                warnings.warn(f"{path}: decoding stopped after {index + 1} frames ({err.__class__.__name__}); "
                              "the file is probably truncated", stacklevel=2)
                break
            index += 1
            if index < start or (index - start) % every_nth:
                continue
            rgb = frame_to_rgb(frame)
            if max_side and max(rgb.shape[:2]) > max_side:
                scale = max_side / max(rgb.shape[:2])
                size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            batch.append(rgb)
            kept += 1
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
            if max_frames is not None and kept >= max_frames:
                break
    if batch:
        yield np.stack(batch)
    if kept == 0 and index < 0:
        raise VideoError(f"{path} has no decodable video frames: the file is empty, truncated or corrupt")


def is_grey_video(path: str | os.PathLike, sample: int = 8, threshold: float = 2.0) -> bool:
    """True when the first ``sample`` frames have mean |a|, |b| (8-bit OpenCV LAB) under ``threshold``."""
    for batch in read_frames(path, batch_size=sample, max_frames=sample, max_side=256):
        lab = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2LAB) for f in batch]).astype(np.float32)
        return float(np.abs(lab[..., 1:] - 128).mean()) < threshold
    return True


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when ``path`` cannot be written."""
    p = Path(path)
    if p.is_dir():
        raise VideoError(f"output {p} is a folder: give a file name such as {p / 'out.mp4'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise VideoError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise VideoError(f"output folder {parent} is not writable")
    return p


class VideoWriter:
    """Encode uint8 RGB frames to ``path`` (H.264 mp4), atomically.

    ``with VideoWriter(path, w, h, fps) as w: w.write(batch)`` — frames go to a hidden
    temporary file beside ``path`` which is renamed over ``path`` only when the block ends
    without an exception; otherwise it is deleted and ``path`` is untouched.
    ``audio_from``: a video whose audio track is copied into the output (re-encoded to AAC
    if its codec does not fit mp4); without one, or if that fails, the output has no audio.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction | float, *, crf: int = 18,
                 audio_from: str | os.PathLike | None = None, encoder: str | None = None) -> None:
        self.path = check_writable(path)
        if width < 1 or height < 1:
            raise VideoError(f"invalid frame size {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.fps = Fraction(fps).limit_denominator(1001 * 1000) if not isinstance(fps, Fraction) else fps
        if self.fps <= 0:
            raise VideoError(f"invalid frame rate {fps}")
        encoders = [encoder] if encoder else available_encoders()
        if not encoders:
            raise VideoError("this PyAV build has no H.264 or MPEG-4 encoder: install the `av` wheel from PyPI")
        self.encoder = encoders[0]
        self.crf = crf
        self.audio_from = audio_from
        suffix = self.path.suffix or ".mp4"
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{suffix}")
        self.frames = 0
        self._container = None
        self._stream = None

    def __enter__(self) -> "VideoWriter":
        try:
            self._container = av.open(str(self.tmp), mode="w", format="mp4")
        except (av.error.FFmpegError, OSError) as err:
            raise VideoError(f"cannot create {self.tmp}: {err}") from None
        even = self.width % 2 == 0 and self.height % 2 == 0
        s = self._container.add_stream(self.encoder, rate=self.fps)
        s.width, s.height = self.width, self.height
        if self.encoder == "libx264":
            s.pix_fmt = "yuv420p" if even else "yuv444p"
            s.options = {"crf": str(self.crf), "preset": "veryfast"}
        elif self.encoder == "mpeg4":
            s.pix_fmt = "yuv420p"
            s.options = {"qscale": "3"}
        else:
            s.pix_fmt = "yuv420p"
        cc = s.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # BT.709, tv range
        self._stream = s
        return self

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 RGB ``[H, W, 3]`` or ``[B, H, W, 3]`` of the writer's size."""
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise VideoError(f"frames must be uint8 [B, {self.height}, {self.width}, 3], got {frames.dtype} {frames.shape}")
        for rgb in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            vf = vf.reformat(format=self._stream.pix_fmt, dst_colorspace="itu709", dst_color_range="MPEG")
            vf.pts = self.frames  # in units of 1/fps, the encoder's time base
            for pkt in self._stream.encode(vf):
                self._container.mux(pkt)
            self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        ok = exc_type is None
        try:
            if ok:
                for pkt in self._stream.encode(None):
                    self._container.mux(pkt)
                if self.frames == 0:
                    raise VideoError("no frames were written")
        except BaseException:
            ok = False
            raise
        finally:
            try:
                self._container.close()
            except av.error.FFmpegError:
                ok = False
            if ok and self.audio_from:
                with_audio = self.tmp.with_name(self.tmp.name + ".audio.mp4")
                if remux_with_audio(self.tmp, self.audio_from, with_audio):
                    os.replace(with_audio, self.tmp)
            if ok:
                os.replace(self.tmp, self.path)
            elif self.tmp.exists():
                self.tmp.unlink()


def remux_with_audio(video_path: Path, audio_from: str | os.PathLike, out_path: Path) -> bool:
    """Copy ``video_path``'s video and ``audio_from``'s first audio track into ``out_path``.

    Returns False (and leaves ``out_path`` absent) when the source has no usable audio.
    """
    try:
        with av.open(str(audio_from)) as src:
            if not src.streams.audio:
                return False
            with av.open(str(video_path)) as vid, av.open(str(out_path), mode="w", format="mp4") as out:
                v_in = vid.streams.video[0]
                a_in = src.streams.audio[0]
                v_out = out.add_stream_from_template(v_in)
                copy_audio = a_in.codec_context.name in ("aac", "mp3", "opus", "alac", "ac3")
                a_out = out.add_stream_from_template(a_in) if copy_audio else out.add_stream("aac", rate=a_in.rate or 48000)
                for pkt in vid.demux(v_in):
                    if pkt.dts is None:
                        continue
                    pkt.stream = v_out
                    out.mux(pkt)
                end = float(v_in.duration * v_in.time_base) if v_in.duration else None
                if copy_audio:
                    for pkt in src.demux(a_in):
                        if pkt.dts is None:
                            continue
                        if end is not None and pkt.pts is not None and float(pkt.pts * a_in.time_base) > end:
                            break
                        pkt.stream = a_out
                        out.mux(pkt)
                else:
                    for frame in src.decode(a_in):
                        frame.pts = None
                        for pkt in a_out.encode(frame):
                            out.mux(pkt)
                    for pkt in a_out.encode(None):
                        out.mux(pkt)
        return True
    except (av.error.FFmpegError, ValueError) as err:
        warnings.warn(f"audio of {audio_from} could not be copied ({err}); the output has no audio", stacklevel=2)
        if out_path.exists():
            out_path.unlink()
        return False
