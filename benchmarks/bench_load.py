"""The video pipeline alone and beside busy processes, for several thread settings, side by side in one run.

    python benchmarks/bench_load.py [CLIP] [--frames 48] [--busy 2] [--variants default passive policy]
        [--loads alone loops torch] [--repeat 1] [--json out.json]

Each (variant, load) cell runs ``colorize_video`` on the first ``--frames`` frames of CLIP (default: the
first development clip, 854x480) in a fresh Python process, after the model is loaded, and reports frames/s.
Variants (set before torch loads, in the worker's environment):

* ``default``: what HueShift did before the thread policy: OpenMP's own wait policy (spinning), one thread per CPU;
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE``, one thread per CPU;
* ``policy``: what the ``hueshift`` command does now: PASSIVE and ``hueshift_core.threads.configure()``;
* ``comfyui``: what the nodes do inside ComfyUI, which loads torch before the pack: OpenMP's own (spinning)
  wait policy, then ``configure()`` (a spinning pool is sized to the CPUs the other processes leave free);
* ``one``: OpenMP's own wait policy, one thread (what ``--threads 1`` did before).

Loads: ``alone``; ``loops``: ``--busy`` N plain busy loops (``while True: pass``); ``torch``: N other
PyTorch jobs (matrix products with torch's default threads and wait policy). The ratio is each variant's
fps under that load over its fps alone. The load average (1 min) and the runnable-task count are recorded
before every cell: other users of the machine slow every number, so read the ratios beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CLIPS = HERE.parents[0].parent / "shared" / "data" / "clips"

LOOP = "while True: pass"
TORCH_JOB = ("import torch\n"
             "a = torch.randn(512, 512)\n"
             "while True:\n"
             "    for _ in range(8):\n"
             "        b = a @ a\n"
             "    torch.nn.functional.conv2d(torch.randn(1, 16, 64, 64), torch.randn(16, 16, 3, 3))\n")


def loadavg() -> tuple[float, int]:
    with open("/proc/loadavg") as f:
        parts = f.read().split()
    return float(parts[0]), int(parts[3].split("/")[0])


def worker(args: argparse.Namespace) -> None:
    """One cell, in its own process: environment already set by the parent."""
    import torch

    n = torch.get_num_threads()
    if args.variant in ("policy", "comfyui"):
        from hueshift_core import threads

        n = threads.configure()
    elif args.variant == "one":
        torch.set_num_threads(1)
        n = 1

    from hueshift_core.model.checkpoint import get_model
    from hueshift_core.video.files import colorize_video

    model = get_model(None, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        res = colorize_video(args.clip, Path(tmp) / "out.mp4", model, max_frames=args.frames)
        wall = time.perf_counter() - t
    print(json.dumps({"fps": res.frames / wall, "frames": res.frames, "seconds": wall,
                      "threads": n}))


def run_cell(args: argparse.Namespace, variant: str, load: str) -> dict:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("OMP_WAIT_POLICY", None)
    if variant in ("passive", "policy"):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    busy_env = dict(os.environ)
    busy_env.pop("OMP_NUM_THREADS", None)
    busy_env.pop("OMP_WAIT_POLICY", None)
    procs = []
    if load != "alone":
        code = LOOP if load == "loops" else TORCH_JOB
        procs = [subprocess.Popen([sys.executable, "-c", code], env=busy_env) for _ in range(args.busy)]
        time.sleep(2.0 if load == "torch" else 0.5)  # torch import before it is busy
    try:
        before = loadavg()
        out = subprocess.run([sys.executable, __file__, "--worker", "--variant", variant, "--frames", str(args.frames),
                              args.clip], env=env, capture_output=True, text=True, check=False)
        after = loadavg()
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    if out.returncode != 0:
        raise SystemExit(f"worker failed ({variant}, {load}):\n{out.stderr[-2000:]}")
    cell = json.loads(out.stdout.strip().splitlines()[-1])
    cell.update({"variant": variant, "load": load, "load1_before": before[0], "runnable_before": before[1],
                 "load1_after": after[0]})
    return cell


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", nargs="?", default=None)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--busy", type=int, default=2, help="busy processes beside the pipeline (default 2)")
    ap.add_argument("--variants", nargs="+", default=["default", "policy", "comfyui"],
                    choices=["default", "passive", "policy", "comfyui", "one"])
    ap.add_argument("--loads", nargs="+", default=["alone", "loops", "torch"], choices=["alone", "loops", "torch"])
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all cells (interleaved); best fps kept")
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="policy", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.clip is None:
        args.clip = str(sorted(DEFAULT_CLIPS.glob("*.mp4"))[0])
    if args.worker:
        worker(args)
        return
    sys.path.insert(0, str(HERE))
    from common import cpu_name

    where = f"{cpu_name()}, {os.cpu_count()} CPUs (affinity {len(os.sched_getaffinity(0))})"
    print(f"{where}; {Path(args.clip).name}, {args.frames} frames; busy processes per load: {args.busy}", flush=True)
    cells: dict[tuple[str, str], dict] = {}
    for r in range(args.repeat):
        for load in args.loads:  # interleaved: each load's variants run back to back, under the same other load
            for variant in args.variants:
                c = run_cell(args, variant, load)
                print(f"  round {r + 1} {variant:8s} {load:6s} {c['fps']:6.2f} fps  threads {c['threads']}  "
                      f"load1 {c['load1_before']:.2f} runnable {c['runnable_before']}", flush=True)
                key = (variant, load)
                if key not in cells or c["fps"] > cells[key]["fps"]:
                    cells[key] = c
    print(f"\n{'variant':8s} " + " ".join(f"{ld:>16s}" for ld in args.loads))
    rows = []
    for variant in args.variants:
        alone = cells.get((variant, "alone"), {}).get("fps")
        parts = []
        for load in args.loads:
            c = cells[(variant, load)]
            ratio = c["fps"] / alone if alone else None
            c["ratio"] = round(ratio, 3) if ratio is not None else None
            parts.append(f"{c['fps']:6.2f}" + (f" ({ratio:4.2f}x)" if ratio is not None and load != "alone" else "        "))
            rows.append(c)
        print(f"{variant:8s} " + " ".join(f"{p:>16s}" for p in parts))
    print("(fps; in brackets: the ratio to the same variant alone; load1 before each cell is in the rows above)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": where, "command": " ".join(["python", *sys.argv]),
                                               "clip": args.clip, "frames": args.frames, "busy": args.busy,
                                               "cells": rows}, indent=2))


if __name__ == "__main__":
    main()
