"""Video files in, video files out: :func:`colorize_video` runs the pipeline from one file to another.

:func:`check_video_io` is everything checked before any work (the input probed, a video file or a frame
sequence; the output writable, never the input itself); :func:`colorize_video` then decodes (one batch
ahead, on its own thread), runs :class:`~hueshift_core.video.pipeline.VideoPipeline` and encodes (on
its own thread), and returns a :class:`VideoResult`. The output appears only when complete.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..hints import FrameColour, HintPoint, user_colours
from ..model.checkpoint import ColorModel, get_model
from .overlap import Prefetch
from .pipeline import PipelineOptions, VideoPipeline, overlap_depths
from .probing import VideoInfo, probe
from .read import read_frames
from .sequence import SequenceWriter, check_sequence_output, is_pattern, is_sequence, probe_sequence, read_sequence
from .write import VideoWriter, check_writable

__all__ = ["VideoResult", "check_video_io", "colorize_video"]


@dataclass
class VideoResult:
    path: str
    frames: int
    width: int
    height: int
    fps: Fraction
    seconds: float  # wall time of the whole call (probe, model load, decode ... encode)
    keyframes: int
    shots: int
    colour_input: bool  # the input had colour: it was turned grey first
    encoder: str
    stage_seconds: dict[str, float]  # decode, lab, keyframes, flow, propagate, diffusion, deflicker, upscale, to_rgb, encode
    keyframe_jumps: list[float]  # see PipelineStats.keyframe_jumps
    max_buffered: int = 0
    keyframe_chroma: list[float] = field(default_factory=list)  # see PipelineStats.keyframe_chroma

    @property
    def fps_processed(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def check_video_io(src: str | Path, dst: str | Path, fps: float | Fraction | None = None) -> VideoInfo:
    """What :func:`colorize_video` checks before any work: the input probed (a video file, or a frame
    sequence played at ``fps``, default 24; ``fps`` is refused for a video file) and the output writable (a
    video file or a ``%06d.png`` pattern; never the input itself). Returns the input's :class:`VideoInfo`;
    raises :class:`~hueshift_core.errors.HueShiftError` with what to fix."""
    if is_sequence(src):
        info = probe_sequence(src, fps)
    else:
        if fps is not None:
            raise InputError("a frame rate (fps) is for a frame-sequence input (a folder or scans/%06d.png); "
                             "a video file keeps its own rate")
        info = probe(src)
    if is_pattern(dst):
        check_sequence_output(dst, [src])
    else:
        check_writable(dst, [src])  # also refuses dst == src (by inode), before any work
    return info


def colorize_video(src: str | Path, dst: str | Path, model: ColorModel | str | Path | None = None,
                   options: PipelineOptions = PipelineOptions(), *, device: str = "cpu",
                   progress: Callable[[int], None] | None = None, max_frames: int | None = None,
                   fps: float | Fraction | None = None, info: VideoInfo | None = None,
                   hints: list[HintPoint] | dict[int, FrameColour] | None = None,
                   references: dict[int, np.ndarray | FrameColour] | None = None) -> VideoResult:
    """Colorize the video ``src`` into ``dst``: H.264 mp4 of the same size, frame count and frame
    rate, with ``src``'s audio track when it has one.

    Frame sequences (:mod:`~hueshift_core.video.sequence`): ``src`` may be a folder of images or a pattern
    such as ``scans/%06d.png`` (played at ``fps``, default 24; ``fps`` is refused for a video file,
    whose own rate is kept), and ``dst`` a pattern such as ``out/%06d.png`` (numbered from 1, no audio).

    ``model``: a loaded model, a checkpoint path, or None for the shipped default (loaded on
    ``device``). ``dst`` appears only when complete: an error or Ctrl-C leaves no file.
    ``progress(n)`` is called with the number of frames finished since the last call.
    Decoding (one batch ahead) and encoding run on their own threads, overlapped with the pipeline.
    Raises :class:`~hueshift_core.errors.HueShiftError` on bad input, before any work when it can.
    ``info``: what :func:`check_video_io` returned for this ``src`` and ``dst`` (a caller that checked first,
    e.g. before loading the model); None = check here.
    ``hints`` (points, each with its frame or time, or {frame: FrameColour}) and ``references`` ({frame: colour
    image}) are the user's colours (:mod:`hueshift_core.hints`): checked before any work, carried through each shot.
    """
    t0 = time.perf_counter()
    if not isinstance(options, PipelineOptions):
        raise InputError(f"options must be a PipelineOptions, got {type(options).__name__}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise InputError(f"max_frames must be an integer >= 1 or None, got {max_frames!r}")
    if info is None:
        info = check_video_io(src, dst, fps)
    src_seq, dst_seq = is_sequence(src), is_pattern(dst)
    n = min(info.frame_count, max_frames) if max_frames else info.frame_count
    user = user_colours(info.height, info.width, hints=hints, references=references, fps=float(info.fps),
                        num_frames=n or None) if hints is not None or references else {}
    if not isinstance(model, ColorModel):
        model = get_model(model, device)
    pipe = VideoPipeline(model, options, user=user)
    times: list | None = [] if info.variable_rate and not dst_seq else None  # VFR: carry each frame's time
    if src_seq:
        frames = read_sequence(src, options.decode_batch, max_frames=max_frames, fps=info.fps)
    else:
        frames = read_frames(src, options.decode_batch, max_frames=max_frames, times=times)
    if dst_seq:
        writer_cm = SequenceWriter(dst, info.width, info.height, inputs=[src])
    else:
        writer_cm = VideoWriter(dst, info.width, info.height, info.fps, audio_from=src if info.has_audio else None,
                                time_base=info.time_base if info.variable_rate else None, keyframes=pipe.shot_starts)
    with writer_cm as writer:
        depth = overlap_depths(info.height, info.width, options.keyframes.max_gap)[2] if options.overlap else 2
        encoder = _Encoder(writer, times, depth)
        reader = Prefetch(frames, depth=2, name="hueshift-decode")
        try:
            with contextlib.closing(pipe.run(reader, progress)) as outs:  # its threads end before the reader's
                for out in outs:
                    encoder.put(out)
        except BaseException:
            encoder.close(abort=True)
            raise
        finally:
            reader.close()
        encoder.close()
        t = time.perf_counter()
    pipe.stats.seconds["encode"] = encoder.seconds + time.perf_counter() - t
    s = pipe.stats
    return VideoResult(str(dst), s.frames, info.width, info.height, info.fps, time.perf_counter() - t0, s.keyframes,
                       s.shots, s.colour_input, writer.encoder, dict(s.seconds), s.keyframe_jumps, s.max_buffered,
                       s.keyframe_chroma)


_DONE = object()


class _Encoder:
    """Encode finished batches on a thread (at most ``depth`` waiting), so encoding overlaps the pipeline.
    ``close()`` waits for the last frame and re-raises the thread's error; ``close(abort=True)`` drops
    what waits and returns once the frame being encoded is done (the writer then deletes its file)."""

    def __init__(self, writer, times: list | None, depth: int = 2) -> None:
        self.writer, self.times = writer, times
        self.seconds = 0.0
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hueshift-encode", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            out = self._q.get()
            if out is _DONE or self._abort.is_set():
                return
            if self._error is not None:
                continue
            t = time.perf_counter()
            try:
                if self.times is not None:
                    self.writer.write(out, self.times[self.writer.frames:self.writer.frames + len(out)])
                else:
                    self.writer.write(out)
            except BaseException as err:  # noqa: BLE001 — re-raised by put() / close()
                self._error = err
            self.seconds += time.perf_counter() - t

    def put(self, out: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(out)

    def close(self, abort: bool = False) -> None:
        if abort:
            self._abort.set()
            while True:  # make room for the sentinel
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
        self._q.put(_DONE)
        self._thread.join()
        if self._error is not None and not abort:
            raise self._error
