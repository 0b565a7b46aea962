"""Probing a video: :func:`probe` -> :class:`VideoInfo` (size, exact frame rate and count, colours,
rotation, audio), and :func:`count_frames`."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from fractions import Fraction

import av

from ..errors import VideoError
from .yuv import frame_colour
from .container import check_readable, decode_packets, open_video, quarter_turns, truncated_message, video_stream

MAX_PIXELS = 8192 * 8192
EXACT_COUNT_MAX_BYTES = 256 << 20  # without an index, count packets of files up to this size


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



def count_frames(path: str | os.PathLike) -> int:
    """Exact number of video frames, by demuxing packets (reads the file, decodes nothing).

    Cut-off packets (the end of a truncated file) are not counted.
    """
    with open_video(path) as c:
        n = 0
        try:
            for packet in c.demux(video_stream(c)):
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
    p = check_readable(path)
    with open_video(p) as c:
        s = video_stream(c)
        first = next(decode_packets(c, s, []), None)
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
        rotation = quarter_turns(first)
        if s.duration:
            duration = float(s.duration * s.time_base)
        else:
            duration = (c.duration or 0) / av.time_base
        frames, exact = int(s.frames or 0), bool(s.frames)
        space, rng, tagged, _, _ = frame_colour(first, s)
        info = (s.codec_context.name, first.format.name, space, rng, tagged)
        has_audio = bool(c.streams.audio)
        truncated = exact and not _index_is_whole(c, s)
    if truncated:
        listed, frames = frames, count_frames(p)
        duration = frames / float(fps)
        msg = truncated_message(p, frames, listed)
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
