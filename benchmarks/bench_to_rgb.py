"""LAB -> RGB on the CPU: the old frame-by-frame path against ``color.lab_to_rgb_u8``, side by side;
and L of a grey frame: OpenCV's float conversion against the pipeline's 256-entry table.

    python benchmarks/bench_to_rgb.py [CLIP] [--frames 5] [--rounds 20]

Takes the first frames of a development clip (854x480), their true CIELAB (so the colours are real),
and converts L + ab back to uint8 RGB both ways, alternating, with one OpenCV thread. Reports CPU
milliseconds per frame (process time: less sensitive than wall time to other jobs on a shared machine)
and wall milliseconds, the largest and mean difference between the two, and the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from hueshift_core.model.lab import lab_to_rgb_u8
from hueshift_core.video import read_frames

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips" / "blackswan.mp4"


def old(l: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """The pipeline's LAB -> RGB before: one frame at a time, NumPy clip and cast."""
    out = np.empty((*l.shape, 3), np.uint8)
    for j in range(len(l)):
        lab = np.concatenate([l[j][..., None], ab[j]], axis=-1)
        rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
        out[j] = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", nargs="?", default=str(DEFAULT))
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    rgb = next(read_frames(args.clip, args.frames, max_frames=args.frames))
    lab = np.stack([cv2.cvtColor(f.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab) for f in rgb])
    l, ab = np.ascontiguousarray(lab[..., 0]), np.ascontiguousarray(lab[..., 1:])
    a, b = old(l, ab), lab_to_rgb_u8(l, ab)
    diff = np.abs(a.astype(int) - b)
    load = os.getloadavg()[0]
    cpu = {"old": 0.0, "new": 0.0}
    wall = {"old": 0.0, "new": 0.0}
    for _ in range(args.rounds):
        for name, fn in (("old", old), ("new", lab_to_rgb_u8)):
            t, c = time.perf_counter(), time.process_time()
            fn(l, ab)
            wall[name] += time.perf_counter() - t
            cpu[name] += time.process_time() - c
    n = args.rounds * len(l)
    print(f"{Path(args.clip).name}: {len(l)} frames {l.shape[2]}x{l.shape[1]}, {args.rounds} rounds, 1 OpenCV thread; "
          f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    for name, label in (("old", "frame by frame + NumPy clip/cast"), ("new", "lab_to_rgb_u8 (one call, saturating)")):
        print(f"  {label:40s} CPU {1000 * cpu[name] / n:6.2f} ms/frame   wall {1000 * wall[name] / n:6.2f} ms/frame")
    print(f"  difference: max {diff.max()} level(s), {100 * (diff > 0).mean():.4f} % of values differ")
    # L of grey frames: the old conversion against VideoPipeline._lab's table (pipeline._GREY_L)
    from hueshift_core.video.analysis import _GREY_L

    grey = [np.repeat(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for f in rgb]
    cpu = {"old": 0.0, "new": 0.0}
    same = True
    for _ in range(args.rounds):
        for g in grey:
            c = time.process_time()
            ref = cv2.cvtColor(g.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)[..., 0]
            cpu["old"] += time.process_time() - c
            c = time.process_time()
            r = g[..., 0]
            ok = np.array_equal(r, g[..., 1]) and np.array_equal(r, g[..., 2])
            l = cv2.LUT(np.ascontiguousarray(r), _GREY_L)
            cpu["new"] += time.process_time() - c
            same = same and ok and np.array_equal(l, ref)
    print(f"  L of a grey frame: float conversion CPU {1000 * cpu['old'] / n:6.2f} ms/frame, table (with the "
          f"grey check) {1000 * cpu['new'] / n:6.2f} ms/frame; identical: {same}")


if __name__ == "__main__":
    main()
