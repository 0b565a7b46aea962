"""Colour-prior training speed: crops per second of one training step (forward, loss, backward, AdamW) with the
convolutions in NCHW and in NHWC (channels-last, what ``PriorTrainer`` uses on a CPU), side by side, alternating.

    python benchmarks/bench_prior_train.py [--threads 1] [--steps 15] [--rounds 2] [--json OUT.json]

A batch of 32 crops of 64x112 (the 16:9 bucket) with random L and ab: the network's speed does not depend on
the content, and the data pipeline (decode, crop, LAB, hints) takes about 25 ms of a step's 400.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from common import machine  # benchmarks/common.py

from hueshift_core.model.prior import ColourPrior, soft_targets
from hueshift_core.training.prior import PATCH


def bench(layout: str, steps: int, batch: int = 32, size: tuple[int, int] = (64, 112)) -> float:
    torch.manual_seed(0)
    net = ColourPrior()
    if layout == "nhwc":
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    l = torch.rand(batch, 1, *size) * 2 - 1
    if layout == "nhwc":
        l = l.contiguous(memory_format=torch.channels_last)
    target = soft_targets(F.avg_pool2d(torch.randn(batch, 2, *size) * 0.2, PATCH), net.bins)
    hint, mask = torch.zeros(batch, 2, *size), torch.zeros(batch, 1, *size)

    def step() -> None:
        loss = -(target * F.log_softmax(net(l, hint, mask), 1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs: dict[str, list[float]] = {"nchw": [], "nhwc": []}
    for _ in range(args.rounds):
        for layout in runs:
            runs[layout].append(bench(layout, args.steps))
            print(f"{layout}: {runs[layout][-1]:.1f} crops/s", flush=True)
    best = {k: max(v) for k, v in runs.items()}
    print(f"NHWC / NCHW: {best['nhwc'] / best['nchw']:.2f}x (best of {args.rounds})")
    if args.json:
        out = {"command": "python benchmarks/bench_prior_train.py", "threads": args.threads, "steps": args.steps,
               "crops_per_s": runs, "best": best, "speedup": best["nhwc"] / best["nchw"],
               "load_average": os.getloadavg(), "machine": machine("cpu")}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
