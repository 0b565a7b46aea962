"""Encoding: :class:`VideoWriter` writes H.264 (or mpeg4) into a hidden temporary file and renames it when
complete, so an error or Ctrl-C never leaves a half-written video; :func:`check_writable` checks an output
before any work."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Container
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from ..errors import VideoError
from ..outputs import check_output
from .audio import mux_audio
from .yuv import ENCODE_FLAGS
from .probing import MAX_PIXELS

log = logging.getLogger(__name__)

ENCODERS = ("libx264", "libopenh264", "mpeg4")  # preference order
ODD_SIZE_ENCODERS = ("libx264", "mpeg4")  # libopenh264 only takes even sizes
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}  # anything else: mp4


# libx264's speed preset. On 854x480 frames of the development clips at crf 18, one thread
# (benchmarks/bench_stages.py): superfast took 28 % less CPU than veryfast for 9 % larger files;
# ultrafast is cheaper still but more than doubles the size.
X264_PRESET = "superfast"
# The encoder's thread count, the same everywhere: x264's bitstream depends on its thread count, so a count that
# followed --threads (or a Ray worker's one thread) made the decoded frames of one input differ between runs
# (tests/test_cluster.py::test_same_frames_split_or_whole_and_on_any_thread_count).
ENCODER_THREADS = 4


def x264_qp(crf: int) -> int:
    """libx264 runs at a constant quantiser, not crf: crf's rate control carries state from frame to frame, so
    a film cut into pieces encoded apart (``colorize-many``) decoded differently from one encode of the whole;
    at a constant quantiser the pieces join to the same frames (tests/test_cluster.py). ``crf + 4`` is about
    crf's size at 18 on the development clips (a one-off check, no committed figure); 0 stays lossless."""
    return 0 if crf == 0 else min(51, crf + 4)


#: With ``keyframes`` (the pipeline's ``shot_starts``, filled as frames are analysed), every shot start is an IDR
#: frame: the encode of a film then breaks at its cuts exactly where one cut into pieces does.


def available_encoders() -> list[str]:
    """The video encoders this PyAV build has, best first (libx264, libopenh264, mpeg4)."""
    return [e for e in ENCODERS if e in av.codecs_available]



def temp_name(p: Path) -> str:
    """The hidden file a :class:`VideoWriter` writes before renaming it to ``p``."""
    return f".{p.stem}.partial{p.suffix or '.mp4'}"


def check_writable(path: str | os.PathLike, inputs=()) -> Path:
    """Fail early, before any work, when ``path`` cannot be written as a video (see
    :func:`~hueshift_core.outputs.check_output`): a folder, a device or FIFO, one of ``inputs``, a name
    too long or not ending in .mp4/.m4v/.mov/.mkv, a folder that is missing or takes no new files."""
    p = Path(path)
    return check_output(p, inputs=inputs, suffixes=tuple(FORMATS), what="output video", temp_name=temp_name(p),
                        error=VideoError)


def exact_fps(fps: Fraction | float) -> Fraction:
    """``fps`` as a Fraction; a float near an NTSC rate (23.976, 29.97, 59.94) becomes n*1000/1001."""
    if isinstance(fps, Fraction):
        return fps
    if isinstance(fps, int):
        return Fraction(fps)
    n = round(float(fps) * 1.001)
    if abs(float(fps) - round(float(fps))) > 1e-3 and abs(float(fps) - n * 1000 / 1001) < 1e-3:
        return Fraction(n * 1000, 1001)
    return Fraction(float(fps)).limit_denominator(1001)


class VideoWriter:
    """Encode uint8 RGB frames to ``path`` (H.264 in mp4, or mov/mkv by the name's suffix), atomically.

    ``with VideoWriter(path, w, h, fps) as wr: wr.write(batch)`` — frames go to a hidden
    ``.NAME.partial.SUFFIX`` beside ``path``, renamed over ``path`` only when the block ends
    without an exception (Ctrl-C included) and the file closes cleanly; otherwise it is deleted
    and ``path`` is untouched. A bad output folder raises :class:`VideoError` at construction.

    Encoder (``self.encoder``): the first of libx264 -> libopenh264 -> mpeg4 this PyAV has.
    Even sizes are yuv420p. Odd sizes keep their exact size: libx264 encodes them as yuv444p
    (High 4:4:4 profile, which some browsers and phones do not play), mpeg4 as yuv420p;
    libopenh264 cannot. RGB -> YUV uses BT.709, tv range, and the stream is tagged so.
    ``fps`` is kept exact (pass ``Fraction(24000, 1001)``; a float like 29.97 is snapped to
    30000/1001); frame i has pts i in a 1/fps time base, so nothing is dropped or duplicated.
    ``audio_from``: a video whose first audio track is copied in (or re-encoded to AAC when the
    container cannot hold its codec) and cut at the video's end; without audio, or if that fails
    (with a warning), the output is video only.
    ``time_base`` (a Fraction): frames are timed by ``write(frames, times=...)`` (seconds from the first
    frame, as :func:`read_frames` gives them) in this unit instead of one per 1/fps: variable-frame-rate
    sources keep their timing. The name must end in .mp4, .m4v, .mov or .mkv (what is written).
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: Fraction | float, *, crf: int = 18,
                 audio_from: str | os.PathLike | None = None, encoder: str | None = None,
                 time_base: Fraction | None = None, keyframes: Container[int] = ()) -> None:
        self.path = check_writable(path, [audio_from] if audio_from else ())
        self.keyframes = keyframes  # frame indices (from 0) to encode as IDR frames: shot starts
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (width, height)) or \
                int(width) < 1 or int(height) < 1 or int(width) * int(height) > MAX_PIXELS:
            raise VideoError(f"invalid frame size {width}x{height}: give integers, 1 to {MAX_PIXELS} pixels")
        if not isinstance(fps, (int, float, Fraction, np.number)) or isinstance(fps, bool) or \
                not np.isfinite(float(fps)) or not 0 < float(fps) <= 1000:
            raise VideoError(f"invalid frame rate {fps!r}: give a positive number such as Fraction(24000, 1001)")
        if not isinstance(crf, (int, np.integer)) or isinstance(crf, bool):
            raise VideoError(f"crf must be an integer 0 (lossless) to 51 (worst), got {crf!r}")
        self.width, self.height = int(width), int(height)
        self.fps = exact_fps(fps)
        if self.fps <= 0:
            raise VideoError(f"invalid frame rate {fps}: give a positive number such as Fraction(24000, 1001)")
        if not 0 <= crf <= 51:
            raise VideoError(f"crf must be 0 (lossless) to 51 (worst), got {crf}; 18 looks transparent")
        even = self.width % 2 == 0 and self.height % 2 == 0
        fits = [e for e in available_encoders() if even or e in ODD_SIZE_ENCODERS]
        if encoder is not None and encoder not in fits:
            raise VideoError(f"encoder {encoder!r} is not available for {self.width}x{self.height} here; "
                             f"choose one of {fits} or leave it out")
        if not fits:
            raise VideoError(f"this PyAV build has no encoder for {self.width}x{self.height} (wanted one of "
                             f"{ENCODERS}); install the `av` wheel from PyPI, which includes libx264")
        self.encoder = encoder or fits[0]
        self.pix_fmt = "yuv444p" if self.encoder == "libx264" and not even else "yuv420p"
        self.crf = crf
        self.audio_from = Path(audio_from) if audio_from else None
        suffix = self.path.suffix.lower()
        self.format = FORMATS.get(suffix, "mp4")
        self.tmp = self.path.with_name(temp_name(self.path))
        self.time_base = Fraction(time_base) if time_base else None
        if self.time_base is not None and self.time_base <= 0:
            raise VideoError(f"invalid time base {time_base}: give a positive Fraction such as Fraction(1, 90000)")
        self._last_pts = -1
        self.frames = 0
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._reformatter = VideoReformatter()
        self._done = False

    def __enter__(self) -> VideoWriter:  # noqa: PYI034
        try:
            opts = {"movflags": "+faststart"} if self.format in ("mp4", "mov") and not self.audio_from else {}
            self._container = av.open(str(self.tmp), mode="w", format=self.format, container_options=opts)
            s = self._container.add_stream(self.encoder, rate=self.fps)
            s.width, s.height, s.pix_fmt = self.width, self.height, self.pix_fmt
            s.thread_count = ENCODER_THREADS  # fixed: the same file whatever --threads or the worker (see above)
            if self.encoder == "libx264":
                s.options = {"qp": str(x264_qp(self.crf)), "preset": X264_PRESET, "forced-idr": "1"}
            elif self.encoder == "mpeg4":
                s.options = {"qscale": str(min(31, max(1, round(self.crf / 6))))}
            else:  # libopenh264 has no crf: ~0.15 bit per pixel at crf 18, halving every 6
                s.bit_rate = int(self.width * self.height * float(self.fps) * 0.15 * 2 ** ((18 - self.crf) / 6))
            cc = s.codec_context
            if self.time_base is not None:
                cc.time_base = self.time_base
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # BT.709, tv range
            self._stream = s
        except BaseException as err:
            self._abort()
            if isinstance(err, (av.error.FFmpegError, OSError)):
                raise VideoError(f"cannot start writing {self.path} with {self.encoder}: {err}") from None
            raise
        return self

    def write(self, frames: np.ndarray, times: list | None = None) -> None:
        """Append uint8 RGB ``[H, W, 3]`` or ``[B, H, W, 3]`` of the writer's size; ``times`` (with a
        ``time_base``): each frame's time in seconds from the first frame (None entries: one frame on)."""
        if self._stream is None:
            raise VideoError("VideoWriter is not open: use it as `with VideoWriter(...) as w: w.write(frames)`")
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise VideoError(f"frames must be uint8 RGB [B, {self.height}, {self.width}, 3] or [{self.height}, "
                             f"{self.width}, 3], got {frames.dtype} {frames.shape}; convert floats with "
                             "(x * 255).round().astype(np.uint8)")
        vf_done: list[int] = []
        try:
            for rgb in frames:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                vf = self._reformatter.reformat(vf, format=self.pix_fmt, dst_colorspace="itu709",
                                                dst_color_range="MPEG", interpolation=ENCODE_FLAGS)
                if self.time_base is None:
                    vf.pts, vf.time_base = self.frames, 1 / self.fps
                else:
                    t = times[len(vf_done)] if times is not None and len(vf_done) < len(times) else None
                    pts = round(Fraction(t) / self.time_base) if t is not None else \
                        self._last_pts + round(1 / (self.fps * self.time_base))
                    pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the source says
                    vf.pts, vf.time_base, self._last_pts = pts, self.time_base, pts
                if self.frames in self.keyframes:  # a shot start: an IDR frame (see x264_qp)
                    vf.pict_type = PictureType.I
                vf_done.append(1)
                self._container.mux(self._stream.encode(vf))
                self.frames += 1
        except av.error.FFmpegError as err:
            raise VideoError(f"encoding frame {self.frames} of {self.path} failed ({err}); is the disk full?") from None

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._done:  # closed already (a second __exit__ after a failed close)
            return
        if exc_type is not None:
            self._abort()
            return
        ok = False
        try:
            if self.frames == 0:
                raise VideoError(f"no frames were written to {self.path}; nothing was saved")
            try:
                self._container.mux(self._stream.encode(None))
                self._container.close()
            except av.error.FFmpegError as err:
                raise VideoError(f"finishing {self.path} failed ({err}); nothing was saved. Is the disk full?") from None
            if self.audio_from:
                self._add_audio()
            try:
                os.replace(self.tmp, self.path)
            except OSError as err:
                raise VideoError(f"cannot put the finished video in place as {self.path} ({err.strerror or err}); "
                                 "nothing was saved") from None
            ok = True
        finally:
            self._done = True
            if not ok:
                self._abort()

    def _abort(self) -> None:
        """Close quietly and delete the temporary file(s)."""
        self._done = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception as err:  # noqa: BLE001 — already failing; the file is deleted next
                log.debug("closing %s after a failure: %s", self.tmp, err)
        for p in (self.tmp, self._audio_tmp):
            p.unlink(missing_ok=True)

    @property
    def _audio_tmp(self) -> Path:
        return self.tmp.with_name(self.tmp.name + ".audio" + (self.path.suffix or ".mp4"))

    def _add_audio(self) -> None:
        """Copy the audio in (re-encode it to AAC if copying fails); warn and keep video only if both fail."""
        err: Exception | None = None
        for transcode in (False, True):
            try:
                added = mux_audio(self.tmp, self.audio_from, self._audio_tmp, self.format, transcode)
            except (av.error.FFmpegError, ValueError, OSError) as e:
                err = e
                self._audio_tmp.unlink(missing_ok=True)
                continue
            if added:
                os.replace(self._audio_tmp, self.tmp)
            return
        msg = f"the audio of {self.audio_from} could not be added ({err}); {self.path} is video only"
        warnings.warn(msg, stacklevel=3)
