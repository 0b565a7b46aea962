"""The ComfyUI staged graph against the one-pass pipeline on the development clips.

    python benchmarks/eval_staged.py [CLIPS_DIR] [--max-frames 24] [--model M] [--out docs/eval/staged.json]

For each clip (its first ``--max-frames`` frames, in memory as an IMAGE batch would be) it runs
``VideoPipeline`` (what ``hueshift colorize`` and *Colorize Video File* run) and the chain the stage nodes
call (``staged.plan_keyframes -> colour_keyframes -> propagate_keyframes -> finish_frames``: Keyframe
Select -> DDPM Colorize -> Propagate -> LAB Upscale) with the same seed and settings, and reports for both:
keyframes, the mean keyframe jump (|a/b| between a later keyframe's sample and the colour carried into it),
ΔE00 to the truth, colourfulness ratio, CDC and warp error, and the largest pixel difference between them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import machine  # benchmarks/common.py

from hueshift_core import threads
from hueshift_core.evaluation.accumulators import VideoMetrics
from hueshift_core.model.checkpoint import get_model
from hueshift_core.video import read_frames, staged
from hueshift_core.video.keyframe_colour import KeyframeStats
from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
KEYS = ("ciede2000", "colourfulness_ratio", "cdc", "warp_error")


def score(out: np.ndarray, truth: np.ndarray) -> dict:
    m = VideoMetrics()
    for o, t in zip(out, truth):
        m.update(o, t)
    return {k: v for k, v in m.summary().as_dict().items() if k in KEYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="?", default=str(DEFAULT))
    ap.add_argument("--max-frames", type=int, default=24)
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="docs/eval/staged.json")
    args = ap.parse_args()
    threads.configure(args.threads)
    model, options = get_model(args.model), PipelineOptions()
    rows = {}
    for clip in sorted(Path(args.clips).glob("*.mp4")):
        truth = np.concatenate(list(read_frames(clip, 16, max_frames=args.max_frames)))
        t = time.perf_counter()
        pipe = VideoPipeline(model, options)
        a = np.concatenate(list(pipe.run(iter([truth]))))
        t_pipe, t = time.perf_counter() - t, time.perf_counter()
        plan = staged.plan_keyframes(truth, options, multiple=model.info.config.multiple)
        stats = KeyframeStats()
        keys = staged.colour_keyframes(model, truth, plan, options, stats=stats)
        b = staged.finish_frames(truth, staged.propagate_keyframes(truth, plan, keys, options))
        t_staged = time.perf_counter() - t
        rows[clip.stem] = {
            "pipeline": {"keyframes": pipe.stats.keyframes, "jump": float(np.mean(pipe.stats.keyframe_jumps or [0])),
                         "seconds": round(t_pipe, 1), **score(a, truth)},
            "staged": {"keyframes": len(plan.keyframes), "jump": float(np.mean(stats.jumps or [0])),
                       "seconds": round(t_staged, 1), **score(b, truth)},
            "max_pixel_difference": int(np.abs(a.astype(np.int16) - b).max()),
        }
        print(clip.stem, json.dumps(rows[clip.stem]), flush=True)
    mean = {path: {k: float(np.mean([r[path][k] for r in rows.values()])) for k in ("keyframes", "jump", *KEYS)}
            for path in ("pipeline", "staged")}
    report = {"clips": rows, "mean": mean, "max_pixel_difference": max(r["max_pixel_difference"] for r in rows.values()),
              "settings": {"max_frames": args.max_frames, "model": Path(model.path).name}, "machine": machine("cpu")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for path, m in mean.items():
        print(f"{path:9s} keyframes {m['keyframes']:.2f} jump {m['jump']:.2f} ΔE00 {m['ciede2000']:.2f} "
              f"colourfulness {m['colourfulness_ratio']:.2f}x CDC {m['cdc']:.5f} warp {m['warp_error']:.5f}")
    print("largest pixel difference between the two:", report["max_pixel_difference"])


if __name__ == "__main__":
    main()
