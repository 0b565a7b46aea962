"""Streaming video decode and encode (PyAV), with named metadata and the right colours.

* :func:`probe` -> :class:`VideoInfo`; :func:`read_frames` yields uint8 RGB batches
  ``[B, H, W, 3]`` decoded one frame at a time (memory bounded by the batch);
* :class:`VideoWriter` encodes H.264 into a hidden temporary file and renames it when complete,
  so an error or Ctrl-C never leaves a half-written video; it can carry over a source's audio.

Colour: YUV -> RGB uses the stream's own matrix and range (BT.709 / BT.601 / ..., tv / pc);
an untagged stream is BT.709 from 720 lines up and BT.601 below, tv range (what players assume).
Output is converted with BT.709, tv range, and tagged so (matrix, primaries, transfer, range).
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
from av.video.reformatter import Interpolation, VideoReformatter

from . import threads
from .color import GREY_THRESHOLD, is_grey
from .errors import InputError, VideoError
from .outputs import check_input_file, check_output

log = logging.getLogger(__name__)

ENCODERS = ("libx264", "libopenh264", "mpeg4")  # preference order
ODD_SIZE_ENCODERS = ("libx264", "mpeg4")  # libopenh264 only takes even sizes
MAX_PIXELS = 8192 * 8192
EXACT_COUNT_MAX_BYTES = 256 << 20  # without an index, count packets of files up to this size
MP4_AUDIO = {"aac", "mp3", "opus", "alac", "ac3", "eac3", "flac"}  # codecs mp4/mov carry as they are
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}  # anything else: mp4
# AVCOL_SPC_* -> (our name, swscale's name)
MATRICES = {1: ("bt709", "itu709"), 4: ("fcc", "fcc"), 5: ("bt601", "itu601"), 6: ("bt601", "itu601"),
            7: ("smpte240m", "smpte240m"), 9: ("bt2020", "bt2020"), 10: ("bt2020", "bt2020")}
# Full-chroma interpolation + accurate rounding: flat colours come back exact (the fast path is ~2 levels off).
DECODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
ENCODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video. Colours are those the decoder will use."""

    path: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    frame_count_exact: bool  # False: duration x fps, an estimate
    duration_s: float
    has_audio: bool
    codec: str  # e.g. "h264"
    pix_fmt: str  # e.g. "yuv420p"
    color_space: str  # matrix: "bt709", "bt601", "smpte240m", "bt2020", "fcc", "rgb" or "gray"
    color_range: str  # "tv" (16-235) or "pc" (0-255)
    color_tagged: bool  # False: the file does not name its matrix; bt709 from 720 lines up, else bt601
    rotation: int = 0  # display rotation (degrees counter-clockwise) applied to every decoded frame; width and
    # height are those displayed, after it
    variable_rate: bool = False  # frame times are irregular (VFR): a writer should carry them (read_frames(times=))
    time_base: Fraction | None = None  # the stream's time base (the unit of its timestamps)


def available_encoders() -> list[str]:
    """The video encoders this PyAV build has, best first (libx264, libopenh264, mpeg4)."""
    return [e for e in ENCODERS if e in av.codecs_available]


def _check_readable(path: str | os.PathLike) -> Path:
    """A regular, non-empty, readable file (never opens a FIFO or a device, which could block or never end)."""
    return check_input_file(path, "video", VideoError)


def _rotation(frame: av.VideoFrame) -> int:
    """The frame's display rotation in quarter turns counter-clockwise (0..3), from its display matrix."""
    try:
        degrees = float(getattr(frame, "rotation", 0) or 0)
    except (TypeError, ValueError):
        return 0
    if not np.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) % 4


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    p = _check_readable(path)
    try:
        container = av.open(str(p))
    except PermissionError:
        raise VideoError(f"cannot read {p}: permission denied; fix its permissions") from None
    except av.error.EOFError:
        raise VideoError(f"{p} ends before its first frame: it holds no frames or is cut short; "
                         "check the file or get it again") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err.__class__.__name__
        raise VideoError(f"{p} is not a readable video ({reason}): it is not a video, or an mp4 cut short before "
                         "its index; check the file or re-encode it") from None
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        container.close()
        raise VideoError(f"{p} is a still image ({fmt.removesuffix('_pipe')}), not a video; "
                         "give a video file (mp4, mov, mkv, ...)")
    if _video(container) is None:
        kinds = sorted({"cover image" if s in container.streams.video else s.type for s in container.streams})
        container.close()
        raise VideoError(f"{p} has no video stream ({'only ' + ', '.join(kinds) if kinds else 'no streams at all'});"
                         " give a video file")
    return container


def _video(container: av.container.Container) -> av.video.stream.VideoStream | None:
    """The first video stream that is not a cover image (``attached_pic``, as music files carry)."""
    return next((s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None)


def _decode(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
            bad: list[int]) -> Iterator[av.VideoFrame]:
    """Frames of ``stream``, skipping packets that fail (appended to ``bad``) and flushing at the end.

    ``container.decode`` would raise on the cut-off last packet of a truncated file and lose the
    frames still inside the decoder; this skips that packet and yields them.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError:  # demuxer gave up: data missing
            bad.append(-1)
            break
        if packet.size == 0:
            continue
        if packet.is_corrupt:  # e.g. the cut-off last packet: with frame threads it would cost more frames
            bad.append(packet.pts if packet.pts is not None else -1)
            continue
        try:
            yield from stream.decode(packet)
        except av.error.FFmpegError:
            bad.append(packet.pts if packet.pts is not None else -1)
    try:
        yield from stream.decode(None)
    except av.error.FFmpegError:
        bad.append(-1)


def _colour(frame: av.VideoFrame, stream: av.video.stream.VideoStream | None) -> tuple[str, str, bool, str | None, str]:
    """(matrix, range, tagged, swscale matrix or None for non-YUV, swscale range) of a decoded frame.

    The frame's own tags first, then the stream's (a container may tag what the bitstream does not).
    """
    fmt = frame.format
    if fmt.is_rgb or fmt.has_palette:
        return "rgb", "pc", True, None, "JPEG"
    if len(fmt.components) < 3:
        return "gray", "pc", True, None, "JPEG"
    cc = stream.codec_context if stream is not None else None
    spc = int(frame.colorspace) if int(frame.colorspace) in MATRICES else int(cc and cc.colorspace or 2)
    full = (int(frame.color_range or 0) or int(cc and cc.color_range or 0)) == 2 or fmt.name.startswith("yuvj")
    name, sws = MATRICES.get(spc) or (("bt709", "itu709") if frame.height >= 720 else ("bt601", "itu601"))
    return name, ("pc" if full else "tv"), spc in MATRICES, sws, ("JPEG" if full else "MPEG")


def frame_to_rgb(frame: av.VideoFrame, stream: av.video.stream.VideoStream | None = None,
                 reformatter: VideoReformatter | None = None) -> np.ndarray:
    """A decoded frame -> uint8 RGB ``[H, W, 3]``, converted with its own matrix and range."""
    reformatter = reformatter or VideoReformatter()
    _, _, _, matrix, rng = _colour(frame, stream)
    if matrix is None:
        rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
    else:
        rgb = reformatter.reformat(frame, format="rgb24", src_colorspace=matrix, src_color_range=rng,
                                   dst_color_range="JPEG", interpolation=DECODE_FLAGS).to_ndarray()
    k = _rotation(frame)  # a phone video's display matrix: show it upright, as players do
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def count_frames(path: str | os.PathLike) -> int:
    """Exact number of video frames, by demuxing packets (reads the file, decodes nothing).

    Cut-off packets (the end of a truncated file) are not counted.
    """
    with _open(path) as c:
        n = 0
        try:
            for packet in c.demux(_video(c)):
                n += packet.size > 0 and not packet.is_corrupt
        except av.error.FFmpegError:  # truncated: count what is there
            pass
        return n


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read a video's metadata and check that its first frame decodes.

    ``frame_count`` comes from the container's index (mp4, mov) or, for smaller files without
    one, from counting packets: both exact. Otherwise it is duration x fps and
    ``frame_count_exact`` is False. A truncated file may decode fewer frames than its index lists.
    """
    p = _check_readable(path)
    with _open(p) as c:
        s = _video(c)
        first = next(_decode(c, s, []), None)
        if first is None:
            raise VideoError(f"{p} has no decodable video frames: it has zero frames or is truncated or corrupt; "
                             "check the file or re-encode it")
        if first.width * first.height > MAX_PIXELS:
            raise VideoError(f"{p} is {first.width}x{first.height}: frames above {MAX_PIXELS} pixels are not "
                             "supported; downscale it first")
        raw = first.pts is None  # an elementary stream (.h264, .hevc, ...): no timestamps, the container's
        # average rate is ffmpeg's guess (25); the bitstream's own timing (codec frame rate) is right
        rate = (s.codec_context.framerate or s.guessed_rate) if raw else (s.average_rate or s.guessed_rate)
        fps = Fraction(rate or s.guessed_rate or s.average_rate or 25)
        base = s.base_rate
        variable = bool(not raw and base and s.average_rate and abs(float(base) / float(s.average_rate) - 1) > 0.01)
        time_base = s.time_base
        rotation = _rotation(first)
        if s.duration:
            duration = float(s.duration * s.time_base)
        else:
            duration = (c.duration or 0) / av.time_base
        frames, exact = int(s.frames or 0), bool(s.frames)
        space, rng, tagged, _, _ = _colour(first, s)
        info = (s.codec_context.name, first.format.name, space, rng, tagged)
        has_audio = bool(c.streams.audio)
        truncated = exact and not _index_is_whole(c, s)
    if truncated:
        listed, frames = frames, count_frames(p)
        duration = frames / float(fps)
        msg = _truncated_message(p, frames, listed)
        warnings.warn(msg, stacklevel=2)
    elif not exact and p.stat().st_size <= EXACT_COUNT_MAX_BYTES:
        frames, exact = count_frames(p), True
    elif not exact:
        frames = max(1, round(duration * float(fps)))
    if not duration:
        duration = frames / float(fps)
    width, height = (first.height, first.width) if rotation % 2 else (first.width, first.height)
    return VideoInfo(str(path), width, height, fps, frames, exact, duration, has_audio, *info,
                     rotation=rotation * 90, variable_rate=variable, time_base=time_base)


def _index_is_whole(c: av.container.InputContainer, s: av.video.stream.VideoStream) -> bool:
    """True when the frames of the stream's last GOP are all in the file (cheap: one seek, one GOP demuxed)."""
    if not s.duration:
        return True
    end = (s.start_time or 0) + s.duration
    try:
        c.seek(end, stream=s, backward=True)
        last = longest = None
        for packet in c.demux(s):
            if packet.size == 0:
                continue
            if packet.is_corrupt:
                return False
            if packet.pts is None:
                continue
            last = packet.pts if last is None else max(last, packet.pts)
            longest = max(longest or 0, packet.duration or 0)
    except av.error.FFmpegError:
        return False
    # mov stores edit-list durations in ms, so ``end`` can be off by a tick or two: allow half a frame.
    # Packet durations follow decode order, so with B-frames and a variable rate the last shown frame may
    # carry another frame's duration: the longest duration seen is the bound.
    half_frame = 1 / (2 * (s.average_rate or s.guessed_rate or 25) * s.time_base)
    return last is not None and last + longest + half_frame >= end


def read_frames(path: str | os.PathLike, batch_size: int = 16, *, start: int = 0, max_frames: int | None = None,
                every_nth: int = 1, max_side: int | None = None, times: list | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 RGB batches ``[B, H, W, 3]`` (1 <= B <= ``batch_size``), decoding one frame at a time.

    ``start`` skips that many frames, ``every_nth`` keeps one frame in n (counted from ``start``),
    ``max_frames`` caps the frames yielded, ``max_side`` shrinks frames (cv2.INTER_AREA, aspect
    kept) so their long side is at most that. A truncated file yields the frames that decode,
    then warns how many; a file where nothing decodes raises :class:`VideoError`. Bad options
    raise :class:`InputError` at the call, bad files at the first ``next()``. ``times``, a list, receives
    each yielded frame's presentation time in seconds (a Fraction, the first decoded frame at 0; None
    when the stream has no timestamps) as it is decoded: what a writer needs to keep VFR timing.
    Frames with a display rotation are rotated upright.
    """
    ints = (batch_size, every_nth, start) + ((max_frames,) if max_frames is not None else ()) + \
        ((max_side,) if max_side is not None else ())
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in ints):
        raise InputError(f"read_frames needs integer batch_size, every_nth, start, max_frames and max_side; got "
                         f"{batch_size!r}, {every_nth!r}, {start!r}, {max_frames!r}, {max_side!r}")
    if batch_size < 1 or every_nth < 1 or start < 0 or (max_frames is not None and max_frames < 0):
        raise InputError(f"read_frames needs batch_size >= 1, every_nth >= 1, start >= 0 and max_frames >= 0 or "
                         f"None; got {batch_size}, {every_nth}, {start}, {max_frames}")
    if max_side is not None and max_side < 1:
        raise InputError(f"max_side must be >= 1 or None, got {max_side}")
    _check_readable(path)
    return _read_frames(path, batch_size, start, max_frames, every_nth, max_side, times)


def _read_frames(path, batch_size, start, max_frames, every_nth, max_side, times=None) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    kept, index, bad, size = 0, -1, [], None
    reformatter = VideoReformatter()
    first_pts = None
    with _open(path) as c:
        stream = _video(c)
        stream.thread_type = "AUTO"
        stream.thread_count = threads.current()  # FFmpeg's decoder threads: the CPUs left free (threads.py)
        listed = int(stream.frames or 0)
        for frame in _decode(c, stream, bad):
            index += 1
            if max_frames is not None and kept >= max_frames:
                break
            if index < start or (index - start) % every_nth:
                continue
            rgb = frame_to_rgb(frame, stream, reformatter)
            if max_side and max(rgb.shape[:2]) > max_side:
                scale = max_side / max(rgb.shape[:2])
                rgb = cv2.resize(rgb, (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))),
                                 interpolation=cv2.INTER_AREA)
            if size is None:
                size = rgb.shape[:2]
            elif rgb.shape[:2] != size:  # the stream changed resolution: keep one size
                rgb = cv2.resize(rgb, size[::-1], interpolation=cv2.INTER_AREA)
            batch.append(rgb)
            kept += 1
            if times is not None:
                tb = frame.time_base or stream.time_base  # frames flushed from the decoder carry no time base
                if frame.pts is None or tb is None:
                    times.append(None)
                else:
                    first_pts = frame.pts if first_pts is None else first_pts
                    times.append((frame.pts - first_pts) * Fraction(tb))
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
    if batch:
        yield np.stack(batch)
    if index < 0:
        raise VideoError(f"{path} has no decodable video frames: it has zero frames or is truncated or corrupt; "
                         "check the file or re-encode it")
    if bad or (max_frames is None and listed and index + 1 < listed):
        msg = _truncated_message(Path(path), index + 1, listed, len(bad))
        warnings.warn(msg, stacklevel=2)


def _truncated_message(path: Path, frames: int, listed: int, bad: int = 0) -> str:
    """One wording for probe and read_frames, so a command that does both shows it once."""
    if listed:
        return (f"{path} is truncated or damaged: {frames} of the {listed} frames its index lists could be read; "
                "the rest is left out")
    return f"{path} is truncated or damaged: {frames} frames read, {bad} unreadable packet(s) skipped"


def is_grey_video(path: str | os.PathLike, sample: int = 8, threshold: float = GREY_THRESHOLD) -> bool:
    """True when ``sample`` frames spread over the video have mean |a|, |b| (8-bit OpenCV LAB) under ``threshold``.

    Short videos (<= 300 frames) are sampled evenly; longer ones at the keyframes nearest
    ``sample`` evenly spaced times (cheap: no decoding of the frames in between).
    """
    info = probe(path)
    frames: list[np.ndarray] = []
    if info.frame_count <= 300:
        step = max(1, info.frame_count // sample)
        frames = [f for b in read_frames(path, sample, every_nth=step, max_frames=sample, max_side=256) for f in b]
    else:
        reformatter = VideoReformatter()
        with _open(path) as c:
            s = _video(c)
            for k in range(sample):
                t = info.duration_s * (k + 0.5) / sample
                try:
                    c.seek(int(t / s.time_base) + (s.start_time or 0), stream=s)
                    frame = next(_decode(c, s, []), None)
                except av.error.FFmpegError:
                    break
                if frame is not None:
                    rgb = frame_to_rgb(frame, s, reformatter)
                    frames.append(cv2.resize(rgb, (256, max(1, 256 * rgb.shape[0] // rgb.shape[1])),
                                             interpolation=cv2.INTER_AREA))
    if not frames:
        frames = [f for b in read_frames(path, sample, max_frames=sample, max_side=256) for f in b]
    return is_grey(np.concatenate(frames, axis=0), threshold)  # all frames share one width


def _temp_name(p: Path) -> str:
    """The hidden file a :class:`VideoWriter` writes before renaming it to ``p``."""
    return f".{p.stem}.partial{p.suffix or '.mp4'}"


def check_writable(path: str | os.PathLike, inputs=()) -> Path:
    """Fail early, before any work, when ``path`` cannot be written as a video (see
    :func:`~hueshift_core.outputs.check_output`): a folder, a device or FIFO, one of ``inputs``, a name
    too long or not ending in .mp4/.m4v/.mov/.mkv, a folder that is missing or takes no new files."""
    p = Path(path)
    return check_output(p, inputs=inputs, suffixes=tuple(FORMATS), what="output video", temp_name=_temp_name(p),
                        error=VideoError)


def _exact_fps(fps: Fraction | float) -> Fraction:
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
                 time_base: Fraction | None = None) -> None:
        self.path = check_writable(path, [audio_from] if audio_from else ())
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (width, height)) or \
                int(width) < 1 or int(height) < 1 or int(width) * int(height) > MAX_PIXELS:
            raise VideoError(f"invalid frame size {width}x{height}: give integers, 1 to {MAX_PIXELS} pixels")
        if not isinstance(fps, (int, float, Fraction, np.number)) or isinstance(fps, bool) or \
                not np.isfinite(float(fps)) or not 0 < float(fps) <= 1000:
            raise VideoError(f"invalid frame rate {fps!r}: give a positive number such as Fraction(24000, 1001)")
        if not isinstance(crf, (int, np.integer)) or isinstance(crf, bool):
            raise VideoError(f"crf must be an integer 0 (lossless) to 51 (worst), got {crf!r}")
        self.width, self.height = int(width), int(height)
        self.fps = _exact_fps(fps)
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
        self.tmp = self.path.with_name(_temp_name(self.path))
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
            s.thread_count = threads.current()  # the encoder's threads: the CPUs left free (threads.py)
            if self.encoder == "libx264":
                s.options = {"crf": str(self.crf), "preset": "veryfast"}
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
                added = _mux_audio(self.tmp, self.audio_from, self._audio_tmp, self.format, transcode)
            except (av.error.FFmpegError, ValueError, OSError) as e:
                err = e
                self._audio_tmp.unlink(missing_ok=True)
                continue
            if added:
                os.replace(self._audio_tmp, self.tmp)
            return
        msg = f"the audio of {self.audio_from} could not be added ({err}); {self.path} is video only"
        warnings.warn(msg, stacklevel=3)


def _mux_audio(video: Path, audio_from: Path, out: Path, fmt: str, transcode: bool) -> bool:
    """Write ``video``'s video + ``audio_from``'s first audio track (cut at the video's end) to ``out``.

    The audio is copied when ``fmt`` can hold its codec and ``transcode`` is False, else re-encoded
    to AAC. Packets are interleaved by time. Returns False when ``audio_from`` has no audio.
    """
    with av.open(str(audio_from)) as src:
        if not src.streams.audio:
            return False
        a_in = src.streams.audio[0]
        # our frame 0 is the source's first video frame: shift the audio by the video's start time
        v_src = _video(src)
        offset = float(v_src.start_time * v_src.time_base) if v_src and v_src.start_time else 0.0
        opts = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        with av.open(str(video)) as vid, av.open(str(out), mode="w", format=fmt, container_options=opts) as dst:
            v_in = vid.streams.video[0]
            v_out = dst.add_stream_from_template(v_in)
            end = float(v_in.duration * v_in.time_base) if v_in.duration else float("inf")
            if not transcode and (fmt == "matroska" or a_in.codec_context.name in MP4_AUDIO):
                a_out = dst.add_stream_from_template(a_in)
                audio = _copied_audio(src, a_in, offset)
            else:
                # by name: the encoder refuses unnamed layouts ("1 channels"); more than two are downmixed
                a_out = dst.add_stream("aac", rate=_aac_rate(a_in.rate), layout="mono" if a_in.channels == 1 else
                                       "stereo")
                audio = _transcoded_audio(src, a_in, a_out, offset)
            video_packets = (p for p in vid.demux(v_in) if p.dts is not None)
            v_pkt, a_pkt = next(video_packets, None), next(audio, None)
            while v_pkt is not None or a_pkt is not None:
                a_time = float(a_pkt.pts * a_pkt.time_base) if a_pkt is not None else float("inf")
                if a_time >= end:
                    a_pkt, a_time = None, float("inf")
                v_time = float(v_pkt.dts * v_pkt.time_base) if v_pkt is not None else float("inf")
                if v_pkt is not None and v_time <= a_time:
                    v_pkt.stream = v_out
                    dst.mux(v_pkt)
                    v_pkt = next(video_packets, None)
                elif a_pkt is not None:
                    a_pkt.stream = a_out
                    dst.mux(a_pkt)
                    a_pkt = next(audio, None)
    return True


def _aac_rate(rate: int) -> int:
    return rate if rate in av.Codec("aac", "w").audio_rates else 48000


def _copied_audio(src, a_in, offset: float) -> Iterator[av.Packet]:
    shift = round(offset / a_in.time_base)
    for pkt in src.demux(a_in):
        if pkt.dts is None or pkt.pts is None:
            continue
        if shift:  # the source's video starts later than its audio: drop what comes before it
            pkt.pts, pkt.dts = pkt.pts - shift, pkt.dts - shift
            if pkt.pts + (pkt.duration or 0) <= 0:
                continue
        yield pkt  # (with no shift, negative pts such as AAC priming stay: the muxer writes an edit list)


def _transcoded_audio(src, a_in, a_out, offset: float) -> Iterator[av.Packet]:
    rate = a_out.codec_context.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=a_out.layout, rate=rate, frame_size=1024)
    skip = round(offset * rate)  # samples before the first video frame
    done = 0
    frames = src.decode(a_in)
    for frame in _with_flush(frames):
        for out in resampler.resample(frame):
            if done + out.samples <= skip:
                done += out.samples
                continue
            out.pts, out.time_base = done - skip, Fraction(1, rate)
            done += out.samples
            yield from a_out.encode(out)
    yield from a_out.encode(None)


def _with_flush(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame | None]:
    yield from frames
    yield None
