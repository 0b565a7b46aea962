"""Chroma upscale quality on real frames: the true chroma is shrunk to the working resolution and
upscaled back; the error against the truth is measured for bicubic and guided.

    python benchmarks/bench_upscale.py [CLIPS_DIR] [--frames-per-clip 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hueshift_core.model.lab import rgb_to_lab
from hueshift_core.model.sampling import working_size
from hueshift_core.model.upscale import upscale_ab
from hueshift_core.video import read_frames

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="?", default=str(DEFAULT))
    ap.add_argument("--frames-per-clip", type=int, default=2)
    args = ap.parse_args()
    results: dict[str, list[float]] = {"bicubic": [], "guided": []}
    print(f"{'clip':16s} {'bicubic':>9s} {'guided':>9s}   (mean |ab| error, CIELAB units)")
    for clip in sorted(Path(args.clips).glob("*.mp4")):
        frames = next(read_frames(clip, batch_size=30, max_frames=30))[:: max(1, 30 // args.frames_per_clip)]
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        lab = rgb_to_lab(x)
        l, ab = lab[:, :1], lab[:, 1:]
        small = F.interpolate(ab, size=working_size(*ab.shape[-2:]), mode="area")
        row = []
        for method in results:
            err = float((upscale_ab(small, l, method) - ab).abs().mean())
            results[method].append(err)
            row.append(err)
        print(f"{clip.stem:16s} {row[0]:9.3f} {row[1]:9.3f}")
    b, g = np.array(results["bicubic"]), np.array(results["guided"])
    print(f"{'mean':16s} {b.mean():9.3f} {g.mean():9.3f}   guided better on {(g < b).sum()} of {len(b)} clips")


if __name__ == "__main__":
    main()
