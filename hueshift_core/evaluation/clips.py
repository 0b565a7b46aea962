"""Colorize colour clips turned grey and measure against them (the ``hueshift eval`` command is
:mod:`hueshift_core.cli.eval`).

For each clip the pipeline sees only its lightness (the clip turned grey), and the output is
compared frame by frame with the original colours (:class:`~hueshift_core.evaluation.VideoMetrics`):
PSNR, CIEDE2000, colourfulness and its ratio to the truth's, CDC and warp error. The same numbers
are reported for the ground truth itself (``ground_truth``: the temporal floor) and for the grey
clip (``grey``: a = b = 0), and the colorization speed (frames per second, metrics excluded).
Everything streams: two decoders run in step, and no clip is held in memory.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HueShiftError, InputError
from ..model.checkpoint import ColorModel
from ..outputs import same_file
from ..video import VideoWriter, check_writable, is_grey_video, probe, read_frames
from ..video.pipeline import PipelineOptions, VideoPipeline
from .accumulators import VideoMetrics

LABELS = {"output": "hueshift", "truth": "ground_truth", "grey": "grey"}


def _clean(d: Any) -> Any:
    """Non-finite floats -> None, at any depth (JSON has no NaN)."""
    if isinstance(d, dict):
        return {k: _clean(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_clean(v) for v in d]
    return None if isinstance(d, float) and not math.isfinite(d) else d


def _f(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``, or "n/a" where a metric is undefined (None)."""
    return "n/a" if value is None else format(value, spec)


def evaluate_clip(clip: str | Path, model: ColorModel, options: PipelineOptions = PipelineOptions(), *,
                  save_to: str | Path | None = None, max_frames: int | None = None) -> dict[str, Any]:
    """Colorize one colour clip from its lightness and score it. Returns a JSON-ready dict.

    A grey clip is refused (:class:`InputError`): it has no colours to measure against."""
    info = probe(clip)
    if save_to is not None:
        check_writable(save_to, [clip])
    if is_grey_video(clip):
        raise InputError(f"{clip} is grey: eval compares the colorized clip with the clip's own colours, so it "
                         "needs colour clips (use `hueshift colorize` for grey ones)")
    pipe = VideoPipeline(model, options)
    metrics = VideoMetrics(baselines=True)
    truths = (f for batch in read_frames(clip, 16, max_frames=max_frames) for f in batch)
    times: list | None = [] if save_to and info.variable_rate else None  # VFR: the saved clip keeps its timing
    writer = VideoWriter(save_to, info.width, info.height, info.fps,
                         time_base=info.time_base if times is not None else None) if save_to else None
    colour_time = metric_time = 0.0
    t = time.perf_counter()
    try:
        if writer:
            writer.__enter__()
        for out in pipe.run(read_frames(clip, options.decode_batch, max_frames=max_frames, times=times)):
            colour_time += time.perf_counter() - t
            t = time.perf_counter()
            for frame in out:
                truth = next(truths, None)
                if truth is None:
                    raise InputError(f"{clip}: the colorized video is longer than the original")
                metrics.update(frame, truth)
            if writer:
                writer.write(out, times[writer.frames:writer.frames + len(out)] if times is not None else None)
            metric_time += time.perf_counter() - t
            t = time.perf_counter()
        if writer:
            writer.__exit__(None, None, None)
    except BaseException:
        if writer:
            writer.__exit__(*sys.exc_info())
        raise
    result: dict[str, Any] = {LABELS[k]: _clean(v.as_dict()) for k, v in metrics.summaries().items()}
    result["frames"] = pipe.stats.frames
    result["keyframes"] = pipe.stats.keyframes
    result["fps"] = round(pipe.stats.frames / colour_time, 3) if colour_time else None
    result["metric_seconds"] = round(metric_time, 2)
    return result


def evaluate(clips: list[str | Path], model: ColorModel, options: PipelineOptions = PipelineOptions(), *,
             save_dir: str | Path | None = None, max_frames: int | None = None,
             log=print, on_error=None) -> dict[str, Any]:
    """Score every clip and average the numbers (per-clip means, weighted equally).

    A bad clip raises its :class:`HueShiftError`, unless ``on_error(clip, err)`` is given: then it is
    reported there, listed under ``"failed"`` and the other clips are done (at least one must succeed)."""
    per_clip: dict[str, Any] = {}
    failed: dict[str, str] = {}
    names = [Path(c).stem for c in clips]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"several clips are named {dup[0]}.*: their results would overwrite each other in the "
                         "report; rename them")
    for clip in clips:
        name = Path(clip).stem
        save = Path(save_dir) / f"{name}.mp4" if save_dir else None
        try:
            if save is not None and same_file(save, clip):
                raise InputError(f"--save-dir would overwrite the clip {clip}: choose another folder")
            per_clip[name] = evaluate_clip(clip, model, options, save_to=save, max_frames=max_frames)
        except HueShiftError as err:
            if on_error is None:
                raise
            failed[str(clip)] = str(err)
            on_error(clip, err)
            continue
        r = per_clip[name]
        h, g, t = r["hueshift"], r["grey"], r["ground_truth"]
        log(f"{name:16s} {r['frames']:4d} frames  dE00 {_f(h['ciede2000'], '.2f')} (grey "
            f"{_f(g['ciede2000'], '.2f')})  colourfulness x{_f(h['colourfulness_ratio'], '.2f')}  "
            f"CDC {_f(h['cdc'], '.5f')} (truth {_f(t['cdc'], '.5f')})  warp "
            f"{_f(h['warp_error'], '.5f')} (truth {_f(t['warp_error'], '.5f')})  {_f(r['fps'], '')} fps")
    if not per_clip:
        raise InputError(f"none of the {len(clips)} clip(s) could be evaluated")
    average: dict[str, Any] = {}
    for label in LABELS.values():
        keys = per_clip[next(iter(per_clip))][label].keys()
        average[label] = {}
        for k in keys:
            if k == "frames":
                continue
            values = [c[label][k] for c in per_clip.values() if c[label][k] is not None]
            average[label][k] = float(np.mean(values)) if values else None
    frames = sum(c["frames"] for c in per_clip.values())
    seconds = sum(c["frames"] / c["fps"] for c in per_clip.values() if c["fps"])
    average["fps"] = frames / seconds if seconds else None
    result = {"clips": per_clip, "average": average}
    if failed:
        result["failed"] = failed
    return result
