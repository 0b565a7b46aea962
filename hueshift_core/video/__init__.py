"""The video path: video files in and out, and the streaming pipeline that colours grey video.

Files: :func:`probe` -> :class:`VideoInfo` (:mod:`.probing`); :func:`read_frames` yields uint8 RGB batches
``[B, H, W, 3]`` decoded one frame at a time, memory bounded by the batch (:mod:`.read`); :class:`VideoWriter`
encodes H.264 into a hidden temporary file renamed into place when complete, so an error or Ctrl-C never
leaves a half-written video, and can carry over a source's audio (:mod:`.write`, :mod:`.audio`). YUV -> RGB
uses the stream's own matrix and range (BT.709 / BT.601 / ..., tv / pc), an untagged stream being BT.709 from
720 lines up and BT.601 below, tv range; output is BT.709, tv range, and tagged so (:mod:`.yuv`). Opening
and decoding damaged files is :mod:`.container`; folders and ``%06d`` patterns of images read and written as
video are :mod:`.sequence`.

The pipeline (:mod:`.pipeline`, :class:`VideoPipeline`): per frame, L and the flow to the frame before
(:mod:`.analysis`, :mod:`.propagate`), shot cuts and keyframes (:mod:`.keyframes`), keyframe colour from the
model (:mod:`.keyframe_colour`), colour carried between keyframes along the flow (:mod:`.segments`),
deflicker (:mod:`.deflicker`), then the chroma upscaled and merged with the full-resolution L.
:func:`colorize_video` runs it from one file to another (:mod:`.files`); :mod:`.staged` runs the same stages
one at a time over a whole clip in memory (the ComfyUI stage nodes).
"""

from __future__ import annotations

from .audio import mux_audio
from .yuv import frame_to_rgb
from .container import decode_packets, open_video, video_stream
from .files import VideoResult, check_video_io, colorize_video
from .keyframes import KeyframeOptions
from .pipeline import MODES, PipelineOptions, PipelineStats, VideoPipeline
from .probing import MAX_PIXELS, VideoInfo, count_frames, probe
from .read import is_grey_video, read_frames
from .sequence import SequenceWriter, is_sequence, probe_sequence, read_sequence
from .write import FORMATS, VideoWriter, available_encoders, check_writable, exact_fps, temp_name

__all__ = [
    "FORMATS", "MAX_PIXELS", "MODES", "KeyframeOptions", "PipelineOptions", "PipelineStats", "SequenceWriter",
    "VideoInfo", "VideoPipeline", "VideoResult", "VideoWriter", "available_encoders", "check_video_io",
    "check_writable", "colorize_video", "count_frames", "decode_packets", "exact_fps", "frame_to_rgb",
    "is_grey_video", "is_sequence", "mux_audio", "open_video", "probe", "probe_sequence", "read_frames",
    "read_sequence", "temp_name", "video_stream",
]
