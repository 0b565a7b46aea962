"""Regenerate the clip evaluation (docs/evaluation.md): table, image strips and plot, from the development clips.

    python benchmarks/eval_clips.py [CLIPS_DIR] [--out docs/eval] [--max-frames 48]

Runs `hueshift_core.evaluation.evaluate` three times on every clip — per-frame diffusion (the
original's method), keyframes + propagation without deflicker, and the default (+ deflicker) —
and writes ``report-<config>.json``, ``results.md`` (the README table), ``strip-<clip>.jpg``
(grey | HueShift | original, middle frame) and ``metrics.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
from common import machine  # benchmarks/common.py

from hueshift_core import threads
from hueshift_core.evaluation import evaluate, grey_like
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import guidance_scale
from hueshift_core.video import read_frames
from hueshift_core.video.pipeline import PipelineOptions

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"
CONFIGS = {
    "per-frame": PipelineOptions(mode="per-frame", deflicker=0.0),
    "keyframes": PipelineOptions(deflicker=0.0),
    "keyframes+deflicker": PipelineOptions(),
}
COLUMNS = [("ciede2000", "ΔE00 ↓", "{:.2f}"), ("psnr", "PSNR ↑", "{:.2f}"),
           ("colourfulness_output", "colourfulness", "{:.1f}"), ("colourfulness_ratio", "ratio to truth", "{:.2f}"),
           ("cdc", "CDC ↓", "{:.5f}"), ("warp_error", "warp error ↓", "{:.5f}")]




def middle_frame(path: Path, index: int) -> np.ndarray:
    for batch in read_frames(path, 1, start=index, max_frames=1, max_side=427):
        return batch[0]
    raise RuntimeError(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="?", default=str(DEFAULT))
    ap.add_argument("--out", default="docs/eval")
    ap.add_argument("--max-frames", type=int, default=48)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--model", default=None, help="model file (default: the shipped one)")
    ap.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's own)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the library's)")
    ap.add_argument("--sampler", default=None, help="ddim, ddpm or dpmpp_2m (default: the library's)")
    ap.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="noise levels t/T where guidance applies (default: the library's)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--from-reports", action="store_true", help="only rebuild table, strips and plot from OUT/report-*.json")
    args = ap.parse_args()
    clips = sorted(Path(args.clips).glob("*.mp4"))
    out = Path(args.out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    reports = {}
    if args.from_reports:
        reports = {name: json.loads((out / f"report-{name}.json").read_text()) for name in args.configs}
    if args.threads:
        threads.configure(args.threads)
    model = None if args.from_reports else get_model(args.model)
    for name in [] if args.from_reports else args.configs:
        t = time.perf_counter()
        save = out / "videos" / name if name == "keyframes+deflicker" else None
        if save:
            save.mkdir(exist_ok=True)
        sample = dataclasses.replace(CONFIGS[name].sample, guidance=args.guidance)
        if args.steps:
            sample = dataclasses.replace(sample, steps=args.steps)
        if args.sampler:
            sample = dataclasses.replace(sample, sampler=args.sampler)
        if args.guidance_interval:
            sample = dataclasses.replace(sample, guidance_interval=tuple(args.guidance_interval))
        options = dataclasses.replace(CONFIGS[name], sample=sample)
        reports[name] = evaluate(clips, model, options, save_dir=save, max_frames=args.max_frames,
                                 log=lambda s: print(f"[{name}] {s}", flush=True))
        reports[name]["settings"] = {"config": name, "max_frames": args.max_frames, "model": Path(model.path).name,
                                     "guidance": guidance_scale(model, args.guidance),
                                     "steps": options.sample.steps, "sampler": options.sample.sampler.value,
                                     "guidance_interval": list(options.sample.guidance_interval)}
        reports[name]["machine"] = machine("cpu")
        (out / f"report-{name}.json").write_text(json.dumps(reports[name], indent=2))
        print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)

    first = reports[args.configs[0]]["average"]
    rows = [("grey (a = b = 0)", first["grey"], None), ("ground truth", first["ground_truth"], None)]
    rows += [(f"HueShift {name}", r["average"]["hueshift"], r["average"]["fps"]) for name, r in reports.items()]
    lines = ["| output | " + " | ".join(c[1] for c in COLUMNS) + " | fps |", "|---" * (len(COLUMNS) + 2) + "|"]
    for label, vals, fps in rows:
        cells = [fmt.format(vals[k]) if vals.get(k) is not None else "–" for k, _, fmt in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {fps:.2f} |" if fps else f"| {label} | " + " | ".join(cells) + " | – |")
    where = reports[args.configs[0]]["machine"]
    table = "\n".join(lines)
    (out / "results.md").write_text(f"{table}\n\nMachine: {where}. First {args.max_frames} frames of each of "
                                    f"{len(clips)} clips; means over clips.\n")
    print(table)

    if "keyframes+deflicker" in reports:
        for clip in clips:
            n = reports["keyframes+deflicker"]["clips"][clip.stem]["frames"]
            i = n // 2
            truth = middle_frame(clip, i)
            ours = middle_frame(out / "videos" / "keyframes+deflicker" / f"{clip.stem}.mp4", i)
            strip = np.concatenate([grey_like(truth), ours, truth], axis=1)
            cv2.imwrite(str(out / f"strip-{clip.stem}.jpg"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 85])

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    labels = [r[0].replace("HueShift ", "") for r in rows]
    for ax, (key, title) in zip(axes, [("ciede2000", "ΔE00 (lower is closer)"),
                                       ("colourfulness_ratio", "colourfulness / truth's"),
                                       ("cdc", "CDC (lower is steadier)"), ("warp_error", "warp error (lower is steadier)")]):
        ax.bar(range(len(rows)), [r[1][key] or 0 for r in rows], color=["#999", "#4a4", "#c84", "#48c", "#2a6"][:len(rows)])
        ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=110)
    print(f"wrote {out / 'metrics.png'}")


if __name__ == "__main__":
    main()
