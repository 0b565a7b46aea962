"""``hueshift eval CLIP... --report report.json``: colorize colour clips turned grey, measure against them.

For each clip the pipeline sees only its lightness (the clip turned grey), and the output is
compared frame by frame with the original colours (:class:`~hueshift_core.metrics.VideoMetrics`):
PSNR, CIEDE2000, colourfulness and its ratio to the truth's, CDC and warp error. The same numbers
are reported for the ground truth itself (``ground_truth``: the temporal floor) and for the grey
clip (``grey``: a = b = 0), and the colorization speed (frames per second, metrics excluded).
Everything streams: two decoders run in step, and no clip is held in memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import ColorModel
from .cli_image import add_model_arguments
from .colorize import SampleOptions, get_model
from .diffusion import Sampler
from .errors import InputError
from .keyframes import KeyframeOptions
from .metrics import VideoMetrics
from .pipeline import MODES, PipelineOptions, VideoPipeline
from .video import VideoWriter, probe, read_frames

LABELS = {"output": "hueshift", "truth": "ground_truth", "grey": "grey"}


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def evaluate_clip(clip: str | Path, model: ColorModel, options: PipelineOptions = PipelineOptions(), *,
                  save_to: str | Path | None = None, max_frames: int | None = None) -> dict[str, Any]:
    """Colorize one colour clip from its lightness and score it. Returns a JSON-ready dict."""
    info = probe(clip)
    pipe = VideoPipeline(model, options)
    metrics = VideoMetrics(baselines=True)
    truths = (f for batch in read_frames(clip, 16, max_frames=max_frames) for f in batch)
    writer = VideoWriter(save_to, info.width, info.height, info.fps) if save_to else None
    colour_time = metric_time = 0.0
    t = time.perf_counter()
    try:
        if writer:
            writer.__enter__()
        for out in pipe.run(read_frames(clip, options.decode_batch, max_frames=max_frames)):
            colour_time += time.perf_counter() - t
            t = time.perf_counter()
            for frame in out:
                truth = next(truths, None)
                if truth is None:
                    raise InputError(f"{clip}: the colorized video is longer than the original")
                metrics.update(frame, truth)
            if writer:
                writer.write(out)
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
             log=print) -> dict[str, Any]:
    """Score every clip and average the numbers (per-clip means, weighted equally)."""
    per_clip: dict[str, Any] = {}
    for clip in clips:
        name = Path(clip).stem
        save = Path(save_dir) / f"{name}.mp4" if save_dir else None
        if save is not None and save.resolve() == Path(clip).resolve():
            raise InputError(f"--save-dir would overwrite the clip {clip}: choose another folder")
        per_clip[name] = evaluate_clip(clip, model, options, save_to=save, max_frames=max_frames)
        r = per_clip[name]
        log(f"{name:16s} {r['frames']:4d} frames  dE00 {r['hueshift']['ciede2000']:.2f} (grey "
            f"{r['grey']['ciede2000']:.2f})  colourfulness x{r['hueshift']['colourfulness_ratio']:.2f}  "
            f"CDC {r['hueshift']['cdc']:.5f} (truth {r['ground_truth']['cdc']:.5f})  warp "
            f"{r['hueshift']['warp_error']:.5f} (truth {r['ground_truth']['warp_error']:.5f})  {r['fps']} fps")
    average: dict[str, Any] = {}
    for label in LABELS.values():
        keys = per_clip[next(iter(per_clip))][label].keys()
        average[label] = {k: float(np.mean([c[label][k] for c in per_clip.values() if c[label][k] is not None]))
                          for k in keys if k != "frames"}
    frames = sum(c["frames"] for c in per_clip.values())
    average["fps"] = frames / sum(c["frames"] / c["fps"] for c in per_clip.values() if c["fps"])
    return {"clips": per_clip, "average": average}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clips", nargs="+", help="colour video files (or folders of .mp4) used as ground truth")
    p.add_argument("--report", required=True, help="JSON report to write")
    add_model_arguments(p)
    p.add_argument("--mode", choices=MODES, default="keyframes")
    p.add_argument("--deflicker", type=float, default=0.5)
    p.add_argument("--warm-start", type=float, default=0.5)
    p.add_argument("--max-gap", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--save-dir", default=None, help="also write each colorized clip here")


def run(args: argparse.Namespace) -> int:
    clips: list[Path] = []
    for c in args.clips:
        p = Path(c)
        clips += sorted(p.glob("*.mp4")) if p.is_dir() else [p]
    if not clips:
        raise InputError(f"no clips found in {args.clips}")
    report_path = Path(args.report)
    if not report_path.parent.is_dir():
        raise InputError(f"report folder {report_path.parent} does not exist")
    if args.save_dir:
        Path(args.save_dir).mkdir(parents=True, exist_ok=True)
    options = PipelineOptions(
        mode=args.mode, deflicker=args.deflicker, upscale=args.upscale, warm_start=args.warm_start,
        sample=SampleOptions(steps=args.steps, sampler=Sampler(args.sampler), seed=args.seed,
                             batch_size=args.batch_size, guidance=args.guidance),
        keyframes=KeyframeOptions(max_gap=args.max_gap))
    model = get_model(args.model, args.device)
    result = evaluate(clips, model, options, save_dir=args.save_dir, max_frames=args.max_frames,
                      log=lambda s: print(s, file=sys.stderr, flush=True))
    result["settings"] = {"mode": args.mode, "steps": args.steps, "sampler": args.sampler, "seed": args.seed,
                          "deflicker": args.deflicker, "warm_start": args.warm_start, "upscale": args.upscale,
                          "max_gap": args.max_gap, "model": args.model or "default"}
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.device}"
    tmp = report_path.with_name(f".{report_path.name}.partial")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, report_path)
    a = result["average"]
    print(f"average over {len(clips)} clips: dE00 {a['hueshift']['ciede2000']:.2f} (grey {a['grey']['ciede2000']:.2f}), "
          f"colourfulness x{a['hueshift']['colourfulness_ratio']:.2f}, CDC {a['hueshift']['cdc']:.5f} "
          f"(truth {a['ground_truth']['cdc']:.5f}), warp {a['hueshift']['warp_error']:.5f} "
          f"(truth {a['ground_truth']['warp_error']:.5f}), {a['fps']:.2f} fps -> {report_path}", file=sys.stderr)
    return 0
