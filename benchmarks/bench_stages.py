"""The CPU stages around diffusion, each beside its plain reference, side by side on real frames.

    python benchmarks/bench_stages.py [CLIP] [--frames 20] [--rounds 3] [--json out.json]

Takes the first frames of a development clip (854x480 colour) and their grey version, with one thread
for torch and OpenCV, and reports CPU milliseconds per frame (process time: less sensitive to other jobs
than wall time) of what the pipeline runs and of the plain way to compute the same values:

* L of a colour frame: CIELAB's formula on Y (``analysis.frame_l``) against OpenCV's float conversion;
  of a grey frame: the 256-entry table;
* flow confidence (two per frame): plane-by-plane sums against the same formula over ``[h, w, 2]`` arrays;
* upscale + merge to uint8 RGB (``upscale_merge_u8``: OpenCV, planes, no full-resolution transposes) against
  ``upscale_ab`` on ``[B, 2, H, W]`` tensors then ``lab_to_rgb_u8``; the largest difference is printed;
* H.264 encoding (libx264, crf 18, one thread) at the presets veryfast, superfast (the default) and
  ultrafast, with the bytes per frame each writes.

The rounds alternate the variants, so a change in the machine's load falls on all of them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from hueshift_core.model.lab import lab_to_rgb_u8  # noqa: E402
from hueshift_core.model.upscale import upscale_ab, upscale_merge_u8  # noqa: E402
from hueshift_core.video import read_frames  # noqa: E402
from hueshift_core.video.analysis import frame_l, half, to_prop  # noqa: E402
from hueshift_core.video.propagate import compute_flow, flow_confidence, warp  # noqa: E402
from hueshift_core.video.write import X264_PRESET  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips" / "camel.mp4"
PROP = (128, 224)  # the propagation resolution of a 854x480 video


def l_opencv(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)[..., 0]


def confidence_plain(l_a, l_b, f_ab, f_ba, photo_tol: float = 10.0) -> np.ndarray:
    """flow_confidence as first written: NumPy over [h, w, 2] arrays."""
    back = warp(f_ba, f_ab)
    err = np.sum((f_ab + back) ** 2, axis=-1)
    bound = 0.01 * (np.sum(f_ab ** 2, -1) + np.sum(back ** 2, -1)) + 0.5
    conf = np.clip(1.0 - (err - bound) / (3.0 * bound), 0.0, 1.0).astype(np.float32)
    h, w = f_ab.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = gx + f_ab[..., 0], gy + f_ab[..., 1]
    l_b_at = cv2.remap(l_b.astype(np.float32), tx, ty, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    conf *= np.clip(1.0 - (np.abs(l_a.astype(np.float32) - l_b_at) - photo_tol) / (2.0 * photo_tol), 0.0, 1.0)
    inside = (tx >= -0.5) & (tx <= w - 0.5) & (ty >= -0.5) & (ty <= h - 0.5)
    return (conf * inside).astype(np.float32)


def merge_plain(l_full: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """upscale_ab on [B, 2, H, W] tensors, then lab_to_rgb_u8 (the pipeline's CPU finish before)."""
    l32 = np.ascontiguousarray(l_full, dtype=np.float32)
    up = upscale_ab(torch.from_numpy(ab).permute(0, 3, 1, 2), torch.from_numpy(l32)[:, None])
    return lab_to_rgb_u8(l32, up.permute(0, 2, 3, 1).numpy())


def encode(frames: np.ndarray, preset: str) -> int:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt, s.thread_count = frames.shape[2], frames.shape[1], "yuv420p", 1
        s.options = {"crf": "18", "preset": preset}
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return len(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", nargs="?", default=str(DEFAULT))
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rgb = np.concatenate(list(read_frames(args.clip, 16, max_frames=args.frames)))
    n = len(rgb)
    grey = np.repeat(cv2.cvtColor(rgb.reshape(-1, rgb.shape[2], 3), cv2.COLOR_RGB2GRAY).reshape(rgb.shape[:3])[..., None],
                     3, -1)
    l_full = np.stack([frame_l(f)[0] for f in rgb])
    l16 = np.stack([half(x) for x in l_full])
    l_prop = [to_prop(x, PROP) for x in l_full]
    flows = [(compute_flow(l_prop[i], l_prop[i - 1]), compute_flow(l_prop[i - 1], l_prop[i])) for i in range(1, n)]
    lab_small = [cv2.cvtColor(cv2.resize(f, PROP[::-1], interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0,
                              cv2.COLOR_RGB2Lab) for f in rgb]
    ab = np.stack([x[..., 1:] for x in lab_small])
    chunks = [slice(i, i + 4) for i in range(0, n, 4)]  # the pipeline finishes 4 frames of 854x480 at a time

    variants = {
        "L colour: formula (pipeline)": (lambda: [frame_l(f) for f in rgb], n),
        "L colour: OpenCV float conversion": (lambda: [l_opencv(f) for f in rgb], n),
        "L grey: table (pipeline)": (lambda: [frame_l(f) for f in grey], n),
        "flow confidence x2: planes (pipeline)": (lambda: [(flow_confidence(l_prop[i], l_prop[i - 1], *flows[i - 1]),
                                                          flow_confidence(l_prop[i - 1], l_prop[i], *flows[i - 1][::-1]))
                                                         for i in range(1, n)], n - 1),
        "flow confidence x2: [h, w, 2] NumPy": (lambda: [(confidence_plain(l_prop[i], l_prop[i - 1], *flows[i - 1]),
                                                         confidence_plain(l_prop[i - 1], l_prop[i], *flows[i - 1][::-1]))
                                                        for i in range(1, n)], n - 1),
        "upscale+merge: OpenCV planes (pipeline)": (lambda: [upscale_merge_u8(l16[c], ab[c]) for c in chunks], n),
        "upscale+merge: tensors then lab_to_rgb_u8": (lambda: [merge_plain(l16[c], ab[c]) for c in chunks], n),
    }
    for preset in ("veryfast", "superfast", "ultrafast"):
        variants[f"encode x264 {preset}" + (" (pipeline)" if preset == X264_PRESET else "")] = (
            lambda p=preset: encode(rgb, p), n)
    diff = max(int(np.abs(upscale_merge_u8(l16[c], ab[c]).astype(int) - merge_plain(l16[c], ab[c])).max())
               for c in chunks)
    sizes = {p: encode(rgb, p) / n for p in ("veryfast", "superfast", "ultrafast")}
    load_before = os.getloadavg()[0]
    cpu = {k: 0.0 for k in variants}
    wall = {k: 0.0 for k in variants}
    for _ in range(args.rounds):
        for k, (fn, _count) in variants.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            cpu[k] += time.process_time() - c0
            wall[k] += time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    rows = {k: {"cpu_ms_per_frame": round(1000 * cpu[k] / (args.rounds * c), 2),
                "wall_ms_per_frame": round(1000 * wall[k] / (args.rounds * c), 2)} for k, (_f, c) in variants.items()}
    for p, b in sizes.items():
        rows[next(k for k in rows if k.startswith(f"encode x264 {p}"))]["kB_per_frame"] = round(b / 1000, 1)
    where = machine("cpu")
    print(f"{where}; 1 thread; {n} frames {rgb.shape[2]}x{rgb.shape[1]} of {Path(args.clip).name}; "
          f"load average {load_before:.1f} -> {load_after:.1f}")
    print(f"  {'stage':44s} {'CPU ms/frame':>12s} {'wall ms':>8s}")
    for k, r in rows.items():
        extra = f"  {r['kB_per_frame']:.1f} kB/frame" if "kB_per_frame" in r else ""
        print(f"  {k:44s} {r['cpu_ms_per_frame']:12.2f} {r['wall_ms_per_frame']:8.2f}{extra}")
    print(f"upscale+merge: largest difference between the two {diff} level(s) of 255")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": where, "command": " ".join(["python", *sys.argv]), "clip": Path(args.clip).name, "frames": n,
            "threads": 1, "load_average": [round(load_before, 2), round(load_after, 2)], "rounds": args.rounds,
            "stages": rows, "upscale_merge_max_diff": diff}, indent=2))


if __name__ == "__main__":
    main()
