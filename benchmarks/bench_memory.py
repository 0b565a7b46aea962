"""Peak memory against video length: streaming means it must stay flat.

    python benchmarks/bench_memory.py [--minutes 1 5 10] [--size 1280x720] [--json out.json]

For each length, a synthetic video (moving textured shapes, a cut every 20 s) is written once
to a temporary folder (streaming), then colorized in a fresh subprocess whose peak RSS
(``ru_maxrss``) is read back.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from hueshift_core.video import VideoWriter


def make_video(path: Path, seconds: float, w: int, h: int, fps: int = 24) -> None:
    rng = np.random.default_rng(0)
    textures = [cv2.resize(cv2.GaussianBlur(rng.integers(0, 255, (h // 4, w // 4 + 64)).astype(np.uint8), (0, 0), 1.5),
                           (w + 256, h), interpolation=cv2.INTER_LINEAR) for _ in range(4)]
    with VideoWriter(path, w, h, fps, crf=28) as wr:
        for i in range(int(seconds * fps)):
            shot = (i // (20 * fps)) % len(textures)
            x = (i * 3) % 256
            g = textures[shot][:, x:x + w]
            frame = np.repeat(g[..., None], 3, axis=2)
            cx = int((w - 100) * (0.5 + 0.4 * np.sin(i / 30)))
            cv2.circle(frame, (cx + 50, h // 2), 60, (230, 230, 230), -1)
            wr.write(frame)


CHILD = """
import resource, sys, time
from hueshift_core.pipeline import colorize_video
t = time.perf_counter()
r = colorize_video(sys.argv[1], sys.argv[2])
print(r.frames, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            src, dst = Path(tmp) / f"long_{minutes}.mp4", Path(tmp) / "out.mp4"
            t = time.perf_counter()
            make_video(src, minutes * 60, w, h)
            made = time.perf_counter() - t
            out = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst)], capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stderr)
            frames, secs, rss_kb = out.stdout.split()[-3:]
            row = {"minutes": minutes, "size": args.size, "frames": int(frames), "seconds": round(float(secs), 1),
                   "fps": round(int(frames) / float(secs), 2), "peak_rss_mb": round(int(rss_kb) / 1024, 1)}
            rows.append(row)
            print(f"{minutes:5.2f} min {args.size}: {row['frames']} frames, {row['fps']} fps, "
                  f"peak RSS {row['peak_rss_mb']} MB (video made in {made:.0f} s)", flush=True)
            src.unlink()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
