"""``hueshift eval CLIP... --report report.json``: colorize colour clips turned grey, measure against them
(:func:`hueshift_core.evaluation.evaluate`), write the JSON report."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

from ..errors import InputError
from ..evaluation.clips import _clean, _f, evaluate
from ..model.checkpoint import get_model, resolve_device
from ..model.sampling import SampleOptions, guidance_scale
from ..outputs import atomic_write_bytes, check_output
from .options import add_model_arguments, add_video_arguments, pipeline_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clips", nargs="+", help="colour video files (or folders of .mp4) used as ground truth")
    p.add_argument("--report", required=True, help="JSON report to write")
    add_model_arguments(p)
    add_video_arguments(p)
    p.add_argument("--batch-size", type=int, default=SampleOptions().batch_size)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--save-dir", default=None, help="also write each colorized clip here")


def run(args: argparse.Namespace) -> int:
    """Every clip is tried: a bad one is reported and skipped, the rest are measured, the report lists the
    failures, and the exit status is 2 if any clip failed."""
    prefix = "hueshift eval"
    clips: list[Path] = []
    for c in args.clips:
        p = Path(c)
        if p.is_dir():
            found = sorted(p.glob("*.mp4"))
            if not found:
                raise InputError(f"folder {p} holds no .mp4 clips")
            clips += found
        else:
            clips.append(p)
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {args.max_frames}")
    report_path = Path(args.report)
    check_output(report_path, inputs=clips, what="report", temp_name=f".{report_path.name}.partial")
    options = pipeline_options(args, batch_size=args.batch_size)
    device = resolve_device(args.device)
    save_dir = Path(args.save_dir) if args.save_dir else None
    created = False
    if save_dir is not None:
        if save_dir.exists() and not save_dir.is_dir():
            raise InputError(f"--save-dir {save_dir} is a file, not a folder")
        if not save_dir.exists():
            try:
                save_dir.mkdir(parents=True)
                created = True
            except OSError as err:
                raise InputError(f"cannot create --save-dir {save_dir}: {err.strerror or err}") from None
    try:
        model = get_model(args.model, device)
        guidance_scale(model, args.guidance)
        result = evaluate(clips, model, options, save_dir=save_dir, max_frames=args.max_frames,
                          log=lambda s: print(s, file=sys.stderr, flush=True),
                          on_error=None if len(clips) == 1 else
                          lambda clip, err: print(f"{prefix}: error: {' '.join(str(err).split())}", file=sys.stderr,
                                                  flush=True))
    finally:
        if created:
            try:
                save_dir.rmdir()  # only if empty
            except OSError:
                pass
    result["settings"] = {"mode": args.mode, "steps": args.steps, "sampler": args.sampler, "seed": args.seed,
                          "deflicker": args.deflicker, "warm_start": args.warm_start, "upscale": args.upscale,
                          "max_gap": args.max_gap, "model": args.model or "default"}
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.device}"
    atomic_write_bytes(report_path, json.dumps(_clean(result), indent=2).encode(), "report")
    a, n = result["average"], len(result["clips"])
    print(f"average over {n} clip(s): dE00 {_f(a['hueshift']['ciede2000'], '.2f')} (grey "
          f"{_f(a['grey']['ciede2000'], '.2f')}), colourfulness x{_f(a['hueshift']['colourfulness_ratio'], '.2f')}, "
          f"CDC {_f(a['hueshift']['cdc'], '.5f')} (truth {_f(a['ground_truth']['cdc'], '.5f')}), warp "
          f"{_f(a['hueshift']['warp_error'], '.5f')} (truth {_f(a['ground_truth']['warp_error'], '.5f')}), "
          f"{_f(a['fps'], '.2f')} fps -> {report_path}", file=sys.stderr)
    failed = result.get("failed", {})
    if failed:
        print(f"{prefix}: {n} of {len(clips)} clips evaluated; {len(failed)} failed: {', '.join(failed)}",
              file=sys.stderr)
        return 2
    return 0
