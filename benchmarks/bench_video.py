"""End-to-end video speed on real clips: frames per second and seconds per stage.

    python benchmarks/bench_video.py [CLIPS_DIR_OR_FILES...] [--mode keyframes|per-frame] [--device cpu]
                                     [--json out.json] [--max-frames N]

Default clips: ../shared/data/clips (854x480, 24 fps). Each clip is colorized once with the
default settings and the shipped model; the model is loaded before timing starts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import machine  # benchmarks/common.py

from hueshift_core.colorize import SampleOptions, get_model
from hueshift_core.pipeline import PipelineOptions, colorize_video

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", default=[str(DEFAULT)])
    ap.add_argument("--mode", default="keyframes", choices=["keyframes", "per-frame"])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    files: list[Path] = []
    for c in args.clips:
        p = Path(c)
        files += sorted(p.glob("*.mp4")) if p.is_dir() else [p]
    if not files:
        sys.exit(f"no clips found in {args.clips}")
    model = get_model(None, args.device)
    opts = PipelineOptions(mode=args.mode, sample=SampleOptions(steps=args.steps))
    where = machine(args.device)
    rows = []
    totals: dict[str, float] = {}
    frames_total, seconds_total = 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for clip in files:
            t = time.perf_counter()
            res = colorize_video(clip, Path(tmp) / "out.mp4", model, opts, device=args.device, max_frames=args.max_frames)
            wall = time.perf_counter() - t
            rows.append({"clip": clip.stem, "frames": res.frames, "keyframes": res.keyframes, "seconds": round(wall, 2),
                         "fps": round(res.frames / wall, 2),
                         "stages_s": {k: round(v, 3) for k, v in res.stage_seconds.items()}})
            frames_total += res.frames
            seconds_total += wall
            for k, v in res.stage_seconds.items():
                totals[k] = totals.get(k, 0.0) + v
            print(f"{clip.stem:16s} {res.frames:4d} frames {res.keyframes:3d} keyframes {wall:7.2f} s "
                  f"{res.frames / wall:6.2f} fps", flush=True)
    summary = {"machine": where, "mode": args.mode, "steps": args.steps, "frames": frames_total,
               "seconds": round(seconds_total, 2), "fps": round(frames_total / seconds_total, 2),
               "stage_ms_per_frame": {k: round(1000 * v / frames_total, 2) for k, v in totals.items()},
               "clips": rows}
    print(f"\n{where}\nmode {args.mode}: {frames_total} frames in {seconds_total:.1f} s = "
          f"{frames_total / seconds_total:.2f} fps end to end")
    for k, v in summary["stage_ms_per_frame"].items():
        print(f"  {k:10s} {v:8.2f} ms/frame")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
