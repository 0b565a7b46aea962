"""Colour quality on held-out scene photos: several models and colour settings side by side, with the two
error kinds of issue 19 (wrong hue, lost colour) beside CIEDE2000 and colourfulness.

    python benchmarks/eval_colour.py --held-out docs/model/held_out_v2.json --n 280 \
        --variants v2 default default:variety=0.3 default:temperature=0.3,chroma=1.1 \
        [--prior runs/prior/best.safetensors] --name scenes-v3 --out docs/model

Variants are ``MODEL[:key=value,...]``: MODEL is ``default`` (the shipped model), ``v1``, ``v2``, ... (the
files ``hueshift-vN`` in ``hueshift_core/weights``), ``prior`` (hueshift-v2's UNet with the colour prior of
``--prior``: a training export or state, to try a checkpoint before shipping it) or a path; keys are
:class:`~hueshift_core.model.sampling.SampleOptions` fields (variety, temperature, chroma, balance, steps,
sampler, guidance) and the model's :class:`~hueshift_core.model.prior.PriorDecoding` as ``prior_hue``
(annealed | mean), ``prior_side`` (the short side of the closer look), ``prior_flip`` (0 | 1: mirrored looks)
and ``prior_neutral`` (CIELAB chroma units taken off, faint casts made grey). Each photo (long side at most ``--max-side``) is turned grey, colorized at its own size and
compared with the original. Writes ``NAME.json`` and ``NAME.jpg`` (rows: grey | each variant | truth).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import machine  # benchmarks/common.py
from eval_photos import colorize_all, load, strip

from hueshift_core import threads
from hueshift_core.evaluation import colourfulness, grey_like, hue_errors, mean_ciede2000
from hueshift_core.model.checkpoint import get_model, load_model, load_prior, load_state
from hueshift_core.model.sampling import SampleOptions

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "scenes"
DEFAULT_SOURCES = [SHARED / "scenes-video.zip", SHARED / "scenes-photos.zip", SHARED / "imagenette.zip"]
FLOATS = {"variety", "temperature", "chroma", "guidance", "eta", "balance", "prior_neutral", "prior_video_chroma",
          "prior_video_target"}


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    kw: dict = {}
    for item in filter(None, rest.split(",")):
        k, v = item.split("=")
        kw[k] = float(v) if k in FLOATS else (int(v) if k in ("steps", "seed", "prior_side", "prior_flip") else v)
    return name, kw


# a variant's keys for the prior's decoding
PRIOR_KEYS = ("prior_hue", "prior_side", "prior_flip", "prior_neutral", "prior_video_chroma",
              "prior_video_target")


def variant_decoding(model, kw: dict) -> tuple[object, dict]:
    """The model's PriorDecoding with a variant's ``prior_*`` keys (taken out of ``kw``), and those keys."""
    over = {k: kw.pop(k) for k in PRIOR_KEYS if k in kw}
    return dataclasses.replace(model.prior_decoding, **{k[len("prior_"):]: (bool(v) if k == "prior_flip" else v)
                                                        for k, v in over.items()}), over


def model_for(name: str, prior_path: str | None, weights_from: str | None = None):
    weights = ROOT / "hueshift_core" / "weights"
    if name == "default":
        return get_model(None)
    if (weights / f"hueshift-{name}.safetensors").is_file():  # v1, v2, ...: a shipped model by its version
        return get_model(weights / f"hueshift-{name}.safetensors")
    if name == "prior":
        if not prior_path:
            raise SystemExit("variant 'prior' needs --prior PATH")
        m = load_model(weights / "hueshift-v2.safetensors")
        if load_state(prior_path)[1].get("hueshift.training_state") == "prior-1":  # a training state: its EMA
            from hueshift_core.training.prior import prior_from_state

            m.prior, prov = prior_from_state(prior_path)
            m.path = f"{Path(prior_path).parent.name}/{Path(prior_path).name}@{prov['steps']}"
            return m
        m.prior, m.prior_decoding = load_prior(prior_path)
        if weights_from:  # an export from before the prior kept its rebalancing weights
            with torch.no_grad():
                m.prior.log_weights.copy_(load_state(weights_from)[0]["weights"].float().log())
        m.path = f"v2+{Path(prior_path).parent.name}/{Path(prior_path).name}"
        return m
    return get_model(name)


def score(outs: list[np.ndarray], imgs: list[np.ndarray], de_grey: list[float], c_truth: list[float],
          names: list[str] | None = None) -> dict:
    """The measures over all photos, and (with ``names``) per source (the zip each photo came from)."""
    if names is not None:
        sources = sorted({n.split("/", 1)[0] for n in names})
        by = {src: [i for i, n in enumerate(names) if n.startswith(src + "/")] for src in sources}
        out = score(outs, imgs, de_grey, c_truth)
        if len(sources) > 1:
            out["by_source"] = {src: {"photos": len(ix), **score([outs[i] for i in ix], [imgs[i] for i in ix],
                                                                 [de_grey[i] for i in ix], [c_truth[i] for i in ix])}
                                for src, ix in by.items()}
        return out
    de = [mean_ciede2000(o, t) for o, t in zip(outs, imgs)]
    c_out = [colourfulness(o) for o in outs]
    errs = np.array([hue_errors(o, t) for o, t in zip(outs, imgs)])
    return {"ciede2000": float(np.mean(de)), "ciede2000_ratio_to_grey": float(np.mean(de) / np.mean(de_grey)),
            "colourfulness_ratio": float(np.mean(c_out) / np.mean(c_truth)),
            "wrong_hue": float(errs[:, 0].mean()), "lost_colour": float(errs[:, 1].mean()),
            "share_closer_than_grey": float(np.mean(np.array(de) < np.array(de_grey)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="*", default=[str(p) for p in DEFAULT_SOURCES])
    ap.add_argument("--held-out", default=str(ROOT / "docs" / "model" / "held_out_v2.json"),
                    help="a training run's held_out.json: only those clips/photos ('' = all)")
    ap.add_argument("--n", type=int, default=280)
    ap.add_argument("--split", choices=["report", "tune"], default="report",
                    help="report: the n photos the figures are quoted on; tune: n other held-out photos (interleaved "
                         "with them), for choosing settings without tuning on the reported set")
    ap.add_argument("--max-side", type=int, default=256)
    ap.add_argument("--crop", default=None, help="WxH: centre-crop every photo to this size")
    ap.add_argument("--variants", nargs="+", default=["v2", "default"])
    ap.add_argument("--prior", default=None, help="colour-prior export for the 'prior' variant")
    ap.add_argument("--prior-weights", default=None, metavar="STATE",
                    help="its training state, for the rebalancing weights (exports that lack them)")
    ap.add_argument("--strip", type=int, default=10, help="photos in the strip image")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--name", default="scenes-heldout")
    ap.add_argument("--out", default="docs/model")
    args = ap.parse_args()
    if args.threads:
        threads.configure(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    held = set(json.loads(Path(args.held_out).read_text())) if args.held_out else None
    crop = tuple(int(v) for v in args.crop.lower().split("x")) if args.crop else None
    names, imgs = load(args.sources, held, 2 * args.n, args.max_side, crop)
    names, imgs = names[args.split == "tune"::2], imgs[args.split == "tune"::2]
    print(f"{len(imgs)} photos from {[Path(s).name for s in args.sources]}", flush=True)
    de_grey = [mean_ciede2000(grey_like(t), t) for t in imgs]
    c_truth = [colourfulness(t) for t in imgs]
    grey_err = np.array([hue_errors(grey_like(t), t) for t in imgs])
    res = {"command": "python benchmarks/eval_colour.py " + " ".join(
               f"{k}={v}" for k, v in vars(args).items() if v not in (None, [])),
           "sources": [Path(s).name for s in args.sources], "held_out": args.held_out, "photos": len(imgs),
           "machine": machine("cpu"), "ciede2000_grey": float(np.mean(de_grey)),
           "grey_lost_colour": float(grey_err[:, 1].mean()), "colourfulness_truth": float(np.mean(c_truth)),
           "runs": []}
    pick = np.linspace(0, len(imgs) - 1, min(args.strip, len(imgs))).round().astype(int)
    rows = [strip([grey_like(imgs[i]) for i in pick])]
    for text in args.variants:
        name, kw = parse_variant(text)
        model = model_for(name, args.prior, args.prior_weights)
        saved = model.prior_decoding  # (the default model is cached: put its own back after)
        model.prior_decoding, over = variant_decoding(model, kw)
        t = time.perf_counter()
        try:
            outs = colorize_all(model, imgs, SampleOptions(batch_size=16, **kw))
        finally:
            model.prior_decoding = saved
        run = {"variant": text, "model": Path(model.path).name, **kw, **over,
               "seconds": round(time.perf_counter() - t, 1),
               **score(outs, imgs, de_grey, c_truth, names)}
        res["runs"].append(run)
        print(json.dumps(run), flush=True)
        rows.append(strip([outs[i] for i in pick]))
    rows.append(strip([imgs[i] for i in pick]))
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=2))
    cv2.imwrite(str(out / f"{args.name}.jpg"), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 88])


if __name__ == "__main__":
    main()
