"""Opening a video container and decoding its packets, robust to damaged files.

* :func:`open_video` opens a file (never a FIFO or device) and refuses, with one line, what is not a video;
* :func:`video_stream` picks its first real video stream (not a cover image);
* :func:`decode_packets` yields frames, skipping packets that fail instead of losing the decoder's frames;
* :func:`quarter_turns` reads a frame's display rotation; :func:`truncated_message` is the one wording
  for a file cut short.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from ..errors import VideoError
from ..outputs import check_input_file


def check_readable(path: str | os.PathLike) -> Path:
    """A regular, non-empty, readable file (never opens a FIFO or a device, which could block or never end)."""
    return check_input_file(path, "video", VideoError)


def quarter_turns(frame: av.VideoFrame) -> int:
    """The frame's display rotation in quarter turns counter-clockwise (0..3), from its display matrix."""
    try:
        degrees = float(getattr(frame, "rotation", 0) or 0)
    except (TypeError, ValueError):
        return 0
    if not np.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) % 4


def open_video(path: str | os.PathLike) -> av.container.InputContainer:
    p = check_readable(path)
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
    if video_stream(container) is None:
        kinds = sorted({"cover image" if s in container.streams.video else s.type for s in container.streams})
        container.close()
        raise VideoError(f"{p} has no video stream ({'only ' + ', '.join(kinds) if kinds else 'no streams at all'});"
                         " give a video file")
    return container


def video_stream(container: av.container.Container) -> av.video.stream.VideoStream | None:
    """The first video stream that is not a cover image (``attached_pic``, as music files carry)."""
    return next((s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic), None)


def decode_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
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



def truncated_message(path: Path, frames: int, listed: int, bad: int = 0) -> str:
    """One wording for probe and read_frames, so a command that does both shows it once."""
    if listed:
        return (f"{path} is truncated or damaged: {frames} of the {listed} frames its index lists could be read; "
                "the rest is left out")
    return f"{path} is truncated or damaged: {frames} frames read, {bad} unreadable packet(s) skipped"
