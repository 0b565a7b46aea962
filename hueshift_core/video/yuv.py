"""Colour matrices: YUV -> RGB with the stream's own matrix and range, and the encoder's settings.

Decoding uses the frame's tags, then the stream's; an untagged stream is BT.709 from 720 lines up and
BT.601 below, tv range (what players assume). Encoding (:mod:`.write`) converts with BT.709, tv range,
with :data:`ENCODE_FLAGS`.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from .container import quarter_turns

# AVCOL_SPC_* -> (our name, swscale's name)
MATRICES = {1: ("bt709", "itu709"), 4: ("fcc", "fcc"), 5: ("bt601", "itu601"), 6: ("bt601", "itu601"),
            7: ("smpte240m", "smpte240m"), 9: ("bt2020", "bt2020"), 10: ("bt2020", "bt2020")}
# Full-chroma interpolation + accurate rounding: flat colours come back exact (the fast path is ~2 levels off).
DECODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
ENCODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


def frame_colour(frame: av.VideoFrame, stream: av.video.stream.VideoStream | None) -> tuple[str, str, bool, str | None, str]:
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
    _, _, _, matrix, rng = frame_colour(frame, stream)
    if matrix is None:
        rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
    else:
        rgb = reformatter.reformat(frame, format="rgb24", src_colorspace=matrix, src_color_range=rng,
                                   dst_color_range="JPEG", interpolation=DECODE_FLAGS).to_ndarray()
    k = quarter_turns(frame)  # a phone video's display matrix: show it upright, as players do
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb
