"""Peak memory against video length: streaming means it must stay flat.

    python benchmarks/bench_memory.py [--minutes 1 5 10] [--size 1280x720] [--model PATH]
                                      [--no-overlap] [--cache DIR] [--json out.json]

For each length a synthetic video (textured backgrounds panning, a bright disc moving over
them, a cut every 20 s) is written once, streaming, to ``--cache`` (default: a folder in the
system's temporary directory; reused by later runs), then colorized with the default settings
in a fresh subprocess, which reports its peak RSS (``ru_maxrss``), its RSS once the model is
loaded (before the first frame) and the most frames the pipeline held. ``--minutes 0.17 0.5``
is a quick check (10 s and 30 s); the 10-minute case takes about an hour on a 2-core CPU.
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

import cv2
import numpy as np
from common import machine  # benchmarks/common.py

from hueshift_core.video import VideoWriter, probe


def make_video(path: Path, seconds: float, w: int, h: int, fps: int = 24) -> None:
    """Write the synthetic video frame by frame (never more than one frame in memory)."""
    rng = np.random.default_rng(0)
    textures = [cv2.resize(cv2.GaussianBlur(rng.integers(0, 255, (h // 4, w // 4 + 64)).astype(np.uint8), (0, 0), 1.5),
                           (w + 256, h), interpolation=cv2.INTER_LINEAR) for _ in range(4)]
    with VideoWriter(path, w, h, fps, crf=28) as wr:
        for i in range(int(round(seconds * fps))):
            shot = (i // (20 * fps)) % len(textures)
            x = (i * 3) % 256
            frame = np.repeat(textures[shot][:, x:x + w, None], 3, axis=2)
            cx = int((w - 100) * (0.5 + 0.4 * np.sin(i / 30)))
            cv2.circle(frame, (cx + 50, h // 2), min(60, h // 4), (230, 230, 230), -1)
            wr.write(frame)


def cached_video(cache: Path, seconds: float, w: int, h: int) -> tuple[Path, float]:
    """(path, seconds spent making it): made once per length and size, then reused."""
    path = cache / f"synthetic_{seconds:g}s_{w}x{h}.mp4"
    if path.exists():
        try:
            if probe(path).frame_count == int(round(seconds * 24)):
                return path, 0.0
        except Exception:  # a broken cache file: make it again
            pass
    t = time.perf_counter()
    make_video(path, seconds, w, h)
    return path, time.perf_counter() - t


CHILD = """
import json, resource, sys, time
from hueshift_core.model.checkpoint import get_model
from hueshift_core.video.files import colorize_video
from hueshift_core.video.pipeline import PipelineOptions
model = get_model(sys.argv[4] if len(sys.argv) > 4 else None)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
r = colorize_video(sys.argv[1], sys.argv[2], model, PipelineOptions(overlap=sys.argv[3] == "overlap"))
print(json.dumps({"frames": r.frames, "seconds": time.perf_counter() - t, "keyframes": r.keyframes,
                  "max_buffered": r.max_buffered, "base_rss_kb": base,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "hueshift-bench-memory"))
    ap.add_argument("--no-overlap", action="store_true", help="every stage on one thread (PipelineOptions.overlap=False)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS") if k in os.environ)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            src, made = cached_video(cache, minutes * 60, w, h)
            cmd = [sys.executable, "-c", CHILD, str(src), str(Path(tmp) / "out.mp4"),
                   "one-thread" if args.no_overlap else "overlap"] + ([args.model] if args.model else [])
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stderr)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            row = {"minutes": minutes, "size": args.size, "overlap": not args.no_overlap, "frames": r["frames"], "keyframes": r["keyframes"],
                   "seconds": round(r["seconds"], 1), "fps": round(r["frames"] / r["seconds"], 2),
                   "max_frames_held": r["max_buffered"], "rss_after_model_mb": round(r["base_rss_kb"] / 1024, 1),
                   "peak_rss_mb": round(r["peak_rss_kb"] / 1024, 1), "load_average": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(f"{minutes:5.2f} min {args.size}: {row['frames']} frames, {row['fps']} fps, peak RSS "
                  f"{row['peak_rss_mb']} MB ({row['rss_after_model_mb']} MB once the model was loaded), at most "
                  f"{row['max_frames_held']} frames held" + (f" (video made in {made:.0f} s)" if made else ""),
                  flush=True)
    summary = {"machine": machine("cpu"), "command": " ".join([*([env] if env else []), "python", *sys.argv]),
               "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
