"""Streaming decode: :func:`read_frames` yields uint8 RGB batches ``[B, H, W, 3]`` decoded one frame at a
time (memory bounded by the batch); :func:`is_grey_video` samples a video for colour."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from .. import threads
from ..errors import InputError, VideoError
from ..model.lab import GREY_THRESHOLD, is_grey
from .yuv import frame_to_rgb
from .container import check_readable, decode_packets, open_video, truncated_message, video_stream
from .probing import probe


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
    check_readable(path)
    return _read_frames(path, batch_size, start, max_frames, every_nth, max_side, times)


def _read_frames(path, batch_size, start, max_frames, every_nth, max_side, times=None) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    kept, index, bad, size = 0, -1, [], None
    reformatter = VideoReformatter()
    first_pts = None
    with open_video(path) as c:
        stream = video_stream(c)
        stream.thread_type = "AUTO"
        stream.thread_count = threads.current()  # FFmpeg's decoder threads: the CPUs left free (threads.py)
        listed = int(stream.frames or 0)
        for frame in decode_packets(c, stream, bad):
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
        msg = truncated_message(Path(path), index + 1, listed, len(bad))
        warnings.warn(msg, stacklevel=2)



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
        with open_video(path) as c:
            s = video_stream(c)
            for k in range(sample):
                t = info.duration_s * (k + 0.5) / sample
                try:
                    c.seek(int(t / s.time_base) + (s.start_time or 0), stream=s)
                    frame = next(decode_packets(c, s, []), None)
                except av.error.FFmpegError:
                    break
                if frame is not None:
                    rgb = frame_to_rgb(frame, s, reformatter)
                    frames.append(cv2.resize(rgb, (256, max(1, 256 * rgb.shape[0] // rgb.shape[1])),
                                             interpolation=cv2.INTER_AREA))
    if not frames:
        frames = [f for b in read_frames(path, sample, max_frames=sample, max_side=256) for f in b]
    return is_grey(np.concatenate(frames, axis=0), threshold)  # all frames share one width
