"""What the user's colours buy: CIEDE2000 against the number of hints on held-out scenes, and a reference or
hints on the first frame of each development clip against the automatic output.

    python benchmarks/eval_hints.py [--n 280] [--clips ../shared/data/clips] [--max-frames 48] [--out docs/eval/hints]

* **Held-out scenes** (the photos ``eval_colour.py`` uses): 0, 1, 2, 5, 10, 20 points drawn from the truth, as
  Zhang et al. 2017 measure — each at a random place (seeded), the truth's mean colour over a square of
  1/64 of the short side, given as a dot of that size. Mean CIEDE2000, its ratio to a grey output's, and the
  colourfulness ratio, per count. Writes ``hints-scenes.json`` and ``hints-scenes.png`` (the plot).
* **Clips** (first ``--max-frames`` frames of each): automatic; the truth's first frame as a reference
  (``--reference``); 5 points on the first frame drawn from the truth as above. CIEDE2000 (and grey's), the
  colourfulness ratio, CDC (and the truth's). Writes ``hints-clips.json`` and ``hints-clips.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from common import machine  # benchmarks/common.py
from eval_colour import DEFAULT_SOURCES, ROOT
from eval_photos import load

from hueshift_core import threads
from hueshift_core.evaluation import cdc, colourfulness, evaluate_video, grey_like, mean_ciede2000
from hueshift_core.hints import HintPoint, user_colours
from hueshift_core.images import colorize_image
from hueshift_core.model.checkpoint import get_model
from hueshift_core.video import read_frames
from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline

COUNTS = (0, 1, 2, 5, 10, 20)
CLIPS = ROOT.parent / "shared" / "data" / "clips"


def truth_points(rgb: np.ndarray, k: int, rng: np.random.Generator, frame: int | None = None) -> list[HintPoint]:
    """``k`` hints drawn from the truth: random places, the truth's mean colour over a square of 1/64 of the
    short side there, as a dot of that size."""
    h, w = rgb.shape[:2]
    s = max(1, min(h, w) // 64)
    out = []
    for _ in range(k):
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        colour = rgb[y:y + s, x:x + s].reshape(-1, 3).mean(0).round().astype(int)
        out.append(HintPoint((x + s / 2) / w, (y + s / 2) / h, tuple(int(v) for v in colour), radius=s / 2 / min(h, w),
                             frame=frame))
    return out


def scenes(model, args, out: Path) -> dict:
    held = set(json.loads(Path(args.held_out).read_text()))
    names, imgs = load([str(p) for p in DEFAULT_SOURCES], held, args.n, 256)
    de_grey = np.array([mean_ciede2000(grey_like(t), t) for t in imgs])
    c_truth = np.mean([colourfulness(t) for t in imgs])
    runs = []
    for k in COUNTS:
        rng = np.random.default_rng(k)
        t0 = time.perf_counter()
        outs = [colorize_image(t, model, hints=truth_points(t, k, rng) or None) for t in imgs]
        de = np.array([mean_ciede2000(o, t) for o, t in zip(outs, imgs)])
        run = {"hints": k, "ciede2000": float(de.mean()), "ciede2000_ratio_to_grey": float(de.mean() / de_grey.mean()),
               "colourfulness_ratio": float(np.mean([colourfulness(o) for o in outs]) / c_truth),
               "seconds": round(time.perf_counter() - t0, 1)}
        runs.append(run)
        print(json.dumps(run), flush=True)
    res = {"photos": len(imgs), "held_out": args.held_out, "ciede2000_grey": float(de_grey.mean()), "runs": runs}
    plot(res, out)
    return res


def plot(res: dict, out: Path) -> None:
    """``hints-scenes.png``: ΔE00 / grey's against the number of hints (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot", flush=True)
        return
    runs = res["runs"]
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    ax.plot([r["hints"] for r in runs], [r["ciede2000_ratio_to_grey"] for r in runs], "o-")
    ax.axhline(1.0, color="#888", lw=0.8)
    ax.set(xlabel="hints drawn from the truth", ylabel="ΔE00 / grey's", xscale="symlog",
           title=f"{res['photos']} held-out scene photos")
    ax.set_xticks(COUNTS, [str(c) for c in COUNTS])
    fig.tight_layout()
    fig.savefig(out / "hints-scenes.png", dpi=110)


def clip_run(model, grey: np.ndarray, truth: np.ndarray, user) -> tuple[dict, list[np.ndarray]]:
    """The pipeline on the grey frames (with the user's colours), measured against the truth."""
    pipe = VideoPipeline(model, PipelineOptions(overlap=False), user=user)
    outs = list(np.concatenate(list(pipe.run(iter([grey])))))
    return evaluate_video(outs, list(truth))["output"].as_dict(), outs


def clips(model, args) -> dict:
    res = []
    for path in sorted(Path(args.clips).glob("*.mp4")):
        frames = np.concatenate(list(read_frames(str(path), 16, max_frames=args.max_frames)))
        grey = np.stack([grey_like(f) for f in frames])
        h, w = frames.shape[1:3]
        row = {"clip": path.stem, "frames": len(frames),
               "ciede2000_grey": float(np.mean([mean_ciede2000(g, t) for g, t in zip(grey, frames)])),
               "cdc_truth": cdc(list(frames))}
        for name, user in (("auto", None), ("reference", user_colours(h, w, references={0: frames[0]})),
                           ("hints5", user_colours(h, w, hints=truth_points(frames[0], 5, np.random.default_rng(5),
                                                                           frame=0)))):
            m, _ = clip_run(model, grey, frames, user)
            row[name] = {k: m[k] for k in ("ciede2000", "colourfulness_ratio", "cdc", "warp_error")}
        print(json.dumps(row), flush=True)
        res.append(row)
    return {"clips": res, "max_frames": args.max_frames}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--held-out", default=str(ROOT / "docs" / "model" / "held_out_v2.json"))
    ap.add_argument("--n", type=int, default=280)
    ap.add_argument("--clips", default=str(CLIPS))
    ap.add_argument("--max-frames", type=int, default=48)
    ap.add_argument("--skip", choices=["scenes", "clips"], default=None)
    ap.add_argument("--plot-only", action="store_true", help="redraw hints-scenes.png from OUT/hints-scenes.json")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="docs/eval/hints")
    args = ap.parse_args()
    if args.threads:
        threads.configure(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        plot(json.loads((out / "hints-scenes.json").read_text()), out)
        return
    model = get_model(args.model)
    meta = {"model": Path(model.path).name, "machine": machine("cpu"),
            "command": "python benchmarks/eval_hints.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None)}
    if args.skip != "scenes":
        (out / "hints-scenes.json").write_text(json.dumps({**meta, **scenes(model, args, out)}, indent=2))
    if args.skip != "clips":
        res = clips(model, args)
        (out / "hints-clips.json").write_text(json.dumps({**meta, **res}, indent=2))
        lines = ["| clip | grey ΔE00 | auto ΔE00 | reference ΔE00 | 5 hints ΔE00 | truth CDC | auto CDC | reference CDC "
                 "| 5 hints CDC |", "|---|---|---|---|---|---|---|---|---|"]
        for r in res["clips"]:
            lines.append(f"| {r['clip']} | {r['ciede2000_grey']:.2f} | {r['auto']['ciede2000']:.2f} | "
                         f"{r['reference']['ciede2000']:.2f} | {r['hints5']['ciede2000']:.2f} | {r['cdc_truth']:.5f} | "
                         f"{r['auto']['cdc']:.5f} | {r['reference']['cdc']:.5f} | {r['hints5']['cdc']:.5f} |")
        (out / "hints-clips.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
