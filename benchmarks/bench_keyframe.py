"""Keyframe diffusion time per frame (64x112, a 16:9 keyframe) for several models side by side.

    python benchmarks/bench_keyframe.py --model hueshift_core/weights/hueshift-v1.safetensors default [--steps 25]

Each model samples at its own default guidance scale (a scale other than 1 runs the conditional
and the unconditional pass as one batch of two). Best of ``--repeat`` runs, one process, so the
models meet the same machine load (printed with the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from common import machine  # benchmarks/common.py

from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import guidance_scale, sample_ab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", nargs="+", default=["default"])
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--batch", type=int, default=1, help="keyframes sampled together")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    l = torch.rand(args.batch, 1, 64, 112) * 2 - 1
    res = {"machine": machine("cpu"), "load_average_before": os.getloadavg()[:2], "torch_threads": torch.get_num_threads(),
           "steps": args.steps, "batch": args.batch, "runs": []}
    for path in args.model:
        model = get_model(None if path == "default" else path)
        g = guidance_scale(model)
        run = lambda: sample_ab(model, l, steps=args.steps, generator=torch.Generator().manual_seed(0))
        run()
        best = min((lambda t: (run(), time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(args.repeat))
        r = {"model": Path(model.path).stem, "guidance": g, "seconds_per_keyframe": round(best / args.batch, 3)}
        res["runs"].append(r)
        print(json.dumps(r), flush=True)
    res["load_average_after"] = os.getloadavg()[:2]
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
