"""Colour settings side by side on the development clips: CIEDE2000 against grey's and colourfulness against
the truth's, per clip and averaged (the clip targets of issue 19), for a sweep of decodings or a training state.

    python benchmarks/sweep_clips.py --variants default default:balance=0.2 default:balance=0,chroma=1.3 \
        [--prior runs/prior/last.safetensors] [--max-frames 48] --name frontier-clips-v7 --out docs/model

Variants are those of ``benchmarks/eval_colour.py`` (``MODEL[:key=value,...]``: SampleOptions fields such as
balance, temperature, chroma, variety, and the prior's ``prior_hue``, ``prior_side``, ``prior_flip``,
``prior_neutral``; ``prior`` is hueshift-v2's UNet with the colour prior of ``--prior``). Each clip's first
``--max-frames`` frames go through the default video pipeline (keyframes, shot consensus, propagation,
deflicker), as ``benchmarks/eval_clips.py`` runs them, but nothing is written besides ``NAME.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

from common import machine  # benchmarks/common.py
from eval_clips import DEFAULT as CLIPS
from eval_colour import model_for, parse_variant, variant_decoding

from hueshift_core import threads
from hueshift_core.evaluation.clips import evaluate
from hueshift_core.video.pipeline import PipelineOptions

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="?", default=str(CLIPS))
    ap.add_argument("--variants", nargs="+", default=["default"])
    ap.add_argument("--prior", default=None, help="a colour prior (export or training state) for variant 'prior'")
    ap.add_argument("--max-frames", type=int, default=48)
    ap.add_argument("--name", default="sweep-clips")
    ap.add_argument("--out", default="docs/model")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        threads.configure(args.threads)
    clips = sorted(Path(args.clips).glob("*.mp4"))
    if not clips:
        raise SystemExit(f"no .mp4 clips in {args.clips}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = {"command": "python benchmarks/sweep_clips.py " + shlex.join(sys.argv[1:]),
           "clips": [c.stem for c in clips], "max_frames": args.max_frames, "machine": machine("cpu"), "runs": []}
    base = PipelineOptions()
    for text in args.variants:
        name, kw = parse_variant(text)
        model = model_for(name, args.prior)
        saved = model.prior_decoding  # (the default model is cached: put its own back after)
        model.prior_decoding, _ = variant_decoding(model, kw)
        options = dataclasses.replace(base, sample=dataclasses.replace(base.sample, **kw))
        t = time.perf_counter()
        try:
            r = evaluate(clips, model, options, save_dir=None, max_frames=args.max_frames, log=lambda s: None)
        finally:
            model.prior_decoding = saved
        a = r["average"]
        run = {"variant": text, "model": Path(model.path).name, "seconds": round(time.perf_counter() - t, 1),
               "ciede2000": a["hueshift"]["ciede2000"], "ciede2000_grey": a["grey"]["ciede2000"],
               "de_ratio": a["hueshift"]["ciede2000"] / a["grey"]["ciede2000"],
               "colourfulness_ratio": a["hueshift"]["colourfulness_ratio"], "cdc": a["hueshift"]["cdc"],
               "cdc_truth": a["ground_truth"]["cdc"], "warp_error": a["hueshift"]["warp_error"],
               "clips": {k: {"ciede2000": v["hueshift"]["ciede2000"], "ciede2000_grey": v["grey"]["ciede2000"],
                             "colourfulness_ratio": v["hueshift"]["colourfulness_ratio"]}
                         for k, v in r["clips"].items()}}
        res["runs"].append(run)
        print(f"{text}: ΔE00 {run['ciede2000']:.2f} ({run['de_ratio']:.3f}x grey's), colourfulness "
              f"{run['colourfulness_ratio']:.2f}x, {run['seconds']:.0f} s", flush=True)
        (out / f"{args.name}.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
