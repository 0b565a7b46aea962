"""Video files in and out: streaming decode and encode with PyAV, named metadata and the right colours.

This sub-package is everything that touches a video container: :func:`probe` -> :class:`VideoInfo`
(:mod:`.probe`); :func:`read_frames` yields uint8 RGB batches ``[B, H, W, 3]`` decoded one frame at a
time, memory bounded by the batch (:mod:`.read`); :class:`VideoWriter` encodes H.264 into a hidden
temporary file renamed into place when complete, so an error or Ctrl-C never leaves a half-written video,
and can carry over a source's audio (:mod:`.write`, :mod:`.audio`). YUV -> RGB uses the stream's own
matrix and range (BT.709 / BT.601 / ..., tv / pc), an untagged stream being BT.709 from 720 lines up and
BT.601 below, tv range; output is BT.709, tv range, and tagged so (:mod:`.colour`). Opening and decoding
damaged files is :mod:`.container`.
"""

from __future__ import annotations

from .audio import mux_audio
from .colour import frame_to_rgb
from .container import decode_packets, open_video, video_stream
from .probe import MAX_PIXELS, VideoInfo, count_frames, probe
from .read import is_grey_video, read_frames
from .write import FORMATS, VideoWriter, available_encoders, check_writable, exact_fps, temp_name

__all__ = [
    "FORMATS", "MAX_PIXELS", "VideoInfo", "VideoWriter", "available_encoders", "check_writable", "count_frames",
    "decode_packets", "exact_fps", "frame_to_rgb", "is_grey_video", "mux_audio",
    "open_video", "probe", "read_frames",
    "temp_name", "video_stream",
]
