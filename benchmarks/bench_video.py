"""End-to-end video speed on real clips: frames per second end to end and per stage, keyframe jumps.

    python benchmarks/bench_video.py [CLIPS_DIR_OR_FILES...] [--mode keyframes|per-frame] [--device cpu]
        [--model PATH] [--short-side 64] [--steps N] [--sampler S] [--warm-start S] [--no-share-noise] [--deflicker S] [--upscale guided|bicubic]
        [--max-frames N] [--json out.json]

Default clips: ../shared/data/clips (854x480, 24 fps). Each clip is colorized once, decode to
encode, with the shipped model unless ``--model``; the model is loaded before timing starts.
Per stage it reports milliseconds per frame of the whole run and that stage's own rate
(frames / stage seconds). ``keyframe jump``: mean |ab| (CIELAB) between a later keyframe's
sampled colour and the colour carried into it from the keyframe before (tracked pixels);
compare ``--warm-start 0.5`` (default) with ``--warm-start 1 --no-share-noise``.
The load average is printed: on a shared machine other processes slow every number, and
PyTorch's OpenMP threads, which spin while they wait, slow diffusion several times over unless
``OMP_WAIT_POLICY=PASSIVE`` is set (record it with the numbers: the JSON's ``command`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from hueshift_core import threads

threads.set_wait_policy()  # as the hueshift command does, before torch loads (OMP_WAIT_POLICY=ACTIVE to compare)

from common import machine  # noqa: E402 — benchmarks/common.py imports torch

from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import SampleOptions  # noqa: E402
from hueshift_core.model.upscale import Upscale  # noqa: E402
from hueshift_core.video.files import colorize_video  # noqa: E402
from hueshift_core.video.pipeline import MODES, PipelineOptions  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", default=[str(DEFAULT)])
    ap.add_argument("--mode", default="keyframes", choices=MODES)
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--steps", type=int, default=SampleOptions.steps)
    ap.add_argument("--sampler", default=SampleOptions.sampler.value,
                    help=f"ddim, ddpm or dpmpp_2m (default {SampleOptions.sampler.value})")
    ap.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's own)")
    ap.add_argument("--short-side", type=int, default=SampleOptions.short_side, help="working resolution (short side)")
    ap.add_argument("--warm-start", type=float, default=PipelineOptions.warm_start)
    ap.add_argument("--no-share-noise", action="store_true")
    ap.add_argument("--deflicker", type=float, default=PipelineOptions.deflicker)
    ap.add_argument("--upscale", default=Upscale.GUIDED.value, choices=[u.value for u in Upscale])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-overlap", action="store_true", help="every stage on one thread (PipelineOptions.overlap=False)")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenCV/codec threads (default: the policy's)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    n_threads = threads.configure(args.threads)
    files: list[Path] = []
    for c in args.clips:
        p = Path(c)
        files += sorted(p.glob("*.mp4")) if p.is_dir() else [p]
    if not files:
        sys.exit(f"no clips found in {args.clips}")
    model = get_model(args.model, args.device)
    opts = PipelineOptions(mode=args.mode, sample=SampleOptions(steps=args.steps, sampler=args.sampler, guidance=args.guidance,
                                                                    short_side=args.short_side), warm_start=args.warm_start,
                           share_noise=not args.no_share_noise, deflicker=args.deflicker, upscale=args.upscale,
                           overlap=not args.no_overlap)
    where = machine(args.device)
    load_before = os.getloadavg()[0]
    rows = []
    totals: dict[str, float] = {}
    jumps: list[float] = []
    chroma: list[float] = []
    frames_total, seconds_total, cpu_total = 0, 0.0, 0.0
    cuda = args.device.startswith("cuda")
    if cuda:
        import torch
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        for clip in files:
            t, c = time.perf_counter(), cpu_seconds()
            res = colorize_video(clip, Path(tmp) / "out.mp4", model, opts, device=args.device, max_frames=args.max_frames)
            wall, cpu = time.perf_counter() - t, cpu_seconds() - c
            jump = sum(res.keyframe_jumps) / len(res.keyframe_jumps) if res.keyframe_jumps else None
            rows.append({"clip": clip.stem, "frames": res.frames, "keyframes": res.keyframes, "shots": res.shots,
                         "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "fps": round(res.frames / wall, 2),
                         "keyframe_jumps": [round(j, 2) for j in res.keyframe_jumps],
                         "keyframe_chroma": [round(j, 2) for j in res.keyframe_chroma],
                         "stages_s": {k: round(v, 3) for k, v in res.stage_seconds.items()}})
            frames_total += res.frames
            seconds_total += wall
            cpu_total += cpu
            jumps += res.keyframe_jumps
            chroma += res.keyframe_chroma
            for k, v in res.stage_seconds.items():
                totals[k] = totals.get(k, 0.0) + v
            print(f"{clip.stem:16s} {res.frames:4d} frames {res.keyframes:3d} keyframes {wall:7.2f} s "
                  f"{res.frames / wall:6.2f} fps  keyframe jump "
                  + (f"{jump:.2f}" if jump is not None else "-"), flush=True)
    load_after = os.getloadavg()[0]
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS") if k in os.environ)
    summary = {"machine": where, "command": " ".join([*([env] if env else []), "python", sys.argv[0], *sys.argv[1:]]),
               "load_average": [round(load_before, 2), round(load_after, 2)], "threads": n_threads,
               "options": {"mode": args.mode, "steps": args.steps, "sampler": args.sampler, "guidance": args.guidance,
                           "short_side": args.short_side, "warm_start": args.warm_start,
                           "share_noise": not args.no_share_noise, "deflicker": args.deflicker,
                           "upscale": args.upscale, "overlap": not args.no_overlap,
                           "model": args.model or "shipped default"},
               "frames": frames_total, "seconds": round(seconds_total, 2), "cpu_seconds": round(cpu_total, 2),
               "fps": round(frames_total / seconds_total, 2),
               "keyframe_jump_mean": round(sum(jumps) / len(jumps), 3) if jumps else None,
               "keyframe_jumps_n": len(jumps),
               "keyframe_chroma_mean": round(sum(chroma) / len(chroma), 3) if chroma else None,
               "peak_vram_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
               "stage_ms_per_frame": {k: round(1000 * v / frames_total, 2) for k, v in totals.items()},
               "stage_fps": {k: round(frames_total / v, 1) if v else None for k, v in totals.items()},
               "clips": rows}
    print(f"\n{where}; {n_threads} threads; load average {load_before:.1f} -> {load_after:.1f}\n"
          f"mode {args.mode}: {frames_total} frames in {seconds_total:.1f} s = {frames_total / seconds_total:.2f} fps "
          f"end to end ({cpu_total:.1f} CPU s)" + (f"; peak VRAM {summary['peak_vram_mb']:.0f} MB" if cuda else ""))
    if jumps:
        print(f"keyframe jump: {summary['keyframe_jump_mean']:.2f} mean |ab| over {len(jumps)} later keyframes "
              f"(keyframe chroma: mean |ab| {summary['keyframe_chroma_mean']:.2f})")
    print(f"  {'stage':10s} {'ms/frame':>9s} {'stage fps':>10s}")
    for k, v in summary["stage_ms_per_frame"].items():
        print(f"  {k:10s} {v:9.2f} {summary['stage_fps'][k] or 0:10.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
