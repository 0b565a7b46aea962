"""Long videos in pieces: decoding a piece from its first frame's timestamp, and joining encoded pieces
without re-encoding (timestamps shifted, the source's audio added once)."""

from __future__ import annotations

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter
import numpy as np

from .. import video as _video
from ..errors import VideoError

log = logging.getLogger(__name__)



# ---- decoding a piece ----------------------------------------------------------------------------
def frames_with_pts(path: str, start_pts: int | None = None, stop_pts: int | None = None) -> Iterator[tuple[int | None, np.ndarray]]:
    """(pts, uint8 RGB) of every frame with ``start_pts <= pts < stop_pts`` in display order, decoded
    from the keyframe at or before ``start_pts`` (a seek), converted as :func:`video.read_frames` does."""
    reformatter = VideoReformatter()
    with _video.open_video(path) as c:
        s = _video.video_stream(c)
        s.thread_type = "AUTO"
        if start_pts is not None:
            c.seek(start_pts, stream=s, backward=True)
        for frame in _video.decode_packets(c, s, []):
            if start_pts is not None and (frame.pts is None or frame.pts < start_pts):
                continue
            if stop_pts is not None and frame.pts is not None and frame.pts >= stop_pts:
                break
            yield frame.pts, _video.frame_to_rgb(frame, s, reformatter)


def batches(frames: Iterator[tuple[int | None, np.ndarray]], size: int, pts: list | None = None,
             limit: int | None = None) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    n = 0
    for p, rgb in frames:
        if limit is not None and n >= limit:
            break
        if pts is not None:
            pts.append(p)
        batch.append(rgb)
        n += 1
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


# ---- joining pieces ------------------------------------------------------------------------------
def join_videos(parts: list[Path], dst: Path, fps: Fraction, audio_from: Path | None = None) -> int:
    """Concatenate H.264 mp4 ``parts`` (made by one encoder with one set of settings, frames at 1/fps)
    into ``dst`` without re-encoding: each part's packets shifted by the frames before it. Adds
    ``audio_from``'s audio once. Atomic like :class:`~hueshift_core.video.VideoWriter`. Returns the frames."""
    dst = Path(dst)
    tmp = dst.with_name(_video.temp_name(dst))
    audio_tmp = tmp.with_name(tmp.name + ".audio" + dst.suffix)
    fmt = _video.FORMATS.get(dst.suffix.lower(), "mp4")
    frames = 0
    ok = False
    try:
        opts = {"movflags": "+faststart"} if fmt in ("mp4", "mov") and audio_from is None else {}
        with av.open(str(tmp), mode="w", format=fmt, container_options=opts) as out:
            o_stream, extradata, last_dts = None, None, None
            for part in parts:
                with av.open(str(part)) as inp:
                    s = inp.streams.video[0]
                    if o_stream is None:
                        o_stream = out.add_stream_from_template(s)
                        extradata = bytes(s.codec_context.extradata or b"")
                    elif bytes(s.codec_context.extradata or b"") != extradata:
                        raise VideoError(f"{part} was encoded with other settings than the first piece; "
                                         "delete the job's .hueshift-parts folder and run again")
                    shift = round(Fraction(frames) / fps / s.time_base)
                    n = 0
                    for pkt in inp.demux(s):
                        if pkt.dts is None:
                            continue
                        pkt.pts += shift
                        pkt.dts += shift
                        if last_dts is not None and pkt.dts <= last_dts:  # never expected: parts share one delay
                            pkt.dts = last_dts + 1
                            if pkt.dts > pkt.pts:
                                raise VideoError(f"{part} cannot follow the piece before it without re-encoding")
                        last_dts = pkt.dts
                        pkt.stream = o_stream
                        out.mux(pkt)
                        n += 1
                    frames += n
        if audio_from is not None:
            err = None
            for transcode in (False, True):
                try:
                    if _video.mux_audio(tmp, Path(audio_from), audio_tmp, fmt, transcode):
                        os.replace(audio_tmp, tmp)
                    err = None
                    break
                except (av.error.FFmpegError, ValueError, OSError) as e:
                    err = e
                    audio_tmp.unlink(missing_ok=True)
            if err is not None:
                log.warning("the audio of %s could not be added (%s); %s is video only", audio_from, err, dst)
        os.replace(tmp, dst)
        ok = True
    except av.error.FFmpegError as err:
        raise VideoError(f"joining the pieces of {dst} failed ({err})") from None
    finally:
        if not ok:
            tmp.unlink(missing_ok=True)
            audio_tmp.unlink(missing_ok=True)
    return frames
