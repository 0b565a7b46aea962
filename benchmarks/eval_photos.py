"""Model-card numbers: colour quality on held-out photos, several models and guidance scales side by side.

    python benchmarks/eval_photos.py [SOURCE.zip ...] [--held-out RUN/held_out.json] [--n 256]
        [--model default v1.safetensors ...] [--guidance 1 2 3 ...] [--steps 25] [--name photos] [--out docs/model]

Default source: ../shared/data/images/train-05.zip (Tiny ImageNet, never used in training).
``--held-out`` keeps only the images whose clip/photo group (``hueshift_core.training.group_of``) a
training run held out (its ``held_out.json``): scene photos and frames of clips the model never saw.
Each photo is turned grey, colorized at its own size and compared with the original: mean
CIEDE2000 (and the same for leaving it grey), colourfulness (Hasler & Süsstrunk) of output and
truth, and the share of photos that come out closer to the truth than grey. Every (model, scale)
pair runs on the same photos with the same seed in one process. Writes ``NAME.json``,
``NAME.jpg`` (rows: grey | each model/scale | original) and, with several scales, ``NAME-guidance.png``.
"""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from common import machine  # benchmarks/common.py

from hueshift_core import threads
from hueshift_core.evaluation import colourfulness, grey_like, mean_ciede2000
from hueshift_core.images import colorize_frames
from hueshift_core.model.checkpoint import get_model
from hueshift_core.model.sampling import SampleOptions, guidance_scale
from hueshift_core.training import group_of

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "train-05.zip"


def center_crop(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The largest centred crop of ``img`` with the aspect of ``size = (w, h)``, area-resized to it."""
    w, h = size
    ih, iw = img.shape[:2]
    ch = min(ih, round(iw * h / w))
    cw = min(iw, round(ch * w / h))
    y, x = (ih - ch) // 2, (iw - cw) // 2
    return cv2.resize(img[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_AREA)


def load(sources: list[str], held_out: set[str] | None, n: int, max_side: int,
         crop: tuple[int, int] | None = None) -> tuple[list[str], list[np.ndarray]]:
    names, imgs = [], []
    for src in sources:
        with zipfile.ZipFile(src) as z:
            members = sorted(m for m in z.namelist() if not m.endswith("/"))
            if held_out is not None:
                members = [m for m in members if group_of(m) in held_out]
            for m in members:
                img = cv2.imdecode(np.frombuffer(z.read(m), np.uint8), cv2.IMREAD_COLOR)
                if img is None:
                    continue
                s = max_side / max(img.shape[:2])
                if crop:
                    img = center_crop(img, crop)
                elif s < 1:
                    img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
                names.append(f"{Path(src).name}/{m}")
                imgs.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    if len(imgs) > n:  # spread over the set (classes, clips), not its first entries
        keep = np.linspace(0, len(imgs) - 1, n).round().astype(int)
        names, imgs = [names[i] for i in keep], [imgs[i] for i in keep]
    return names, imgs


def strip(images: list[np.ndarray], height: int = 96) -> np.ndarray:
    """One row of images scaled to ``height`` (aspect kept), side by side."""
    return np.concatenate([cv2.resize(i, (round(i.shape[1] * height / i.shape[0]), height),
                                      interpolation=cv2.INTER_AREA) for i in images], 1)


def colorize_all(model, imgs: list[np.ndarray], options: SampleOptions) -> list[np.ndarray]:
    """Colorize images of any sizes, batching those of one size."""
    by_shape: dict[tuple, list[int]] = defaultdict(list)
    for i, im in enumerate(imgs):
        by_shape[im.shape].append(i)
    out: list[np.ndarray | None] = [None] * len(imgs)
    for idx in by_shape.values():
        x = torch.from_numpy(np.stack([imgs[i] for i in idx])).permute(0, 3, 1, 2).float() / 255
        y = colorize_frames(model, x, options)
        for i, o in zip(idx, (y.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)):
            out[i] = o
    return out  # type: ignore[return-value]


def parse_variant(text: str) -> tuple[str, int, tuple[float, float]]:
    """``SAMPLER:STEPS[:LO-HI]`` -> (sampler, steps, guidance interval)."""
    parts = text.split(":")
    lo, hi = (float(v) for v in parts[2].split("-")) if len(parts) > 2 else (0.0, 1.0)
    return parts[0], int(parts[1]), (lo, hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="*", default=[str(DEFAULT)])
    ap.add_argument("--held-out", default=None, help="a training run's held_out.json: only those groups")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--max-side", type=int, default=256, help="area-shrink larger photos to this long side")
    ap.add_argument("--model", nargs="+", default=["default"], help="model files ('default' = the shipped one)")
    ap.add_argument("--guidance", type=float, nargs="+", default=[None],
                    help="guidance scales to sweep (default: each model's own)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--crop", default=None, help="WxH: centre-crop every photo to this size (batches; faster)")
    ap.add_argument("--short-side", type=int, default=64, help="working resolution (short side)")
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--variants", nargs="+", default=None, metavar="SAMPLER:STEPS[:LO-HI]",
                    help="sampling variants side by side, e.g. ddim:25 dpmpp_2m:12:0.2-0.8 (LO-HI: the noise levels "
                         "t/(T-1) where guidance applies; default all); replaces --sampler/--steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--name", default="photos")
    ap.add_argument("--out", default="docs/model")
    args = ap.parse_args()
    if args.threads:
        threads.configure(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    held = set(json.loads(Path(args.held_out).read_text())) if args.held_out else None
    crop = tuple(int(v) for v in args.crop.lower().split("x")) if args.crop else None
    names, imgs = load(args.sources, held, args.n, args.max_side, crop)
    print(f"{len(imgs)} photos from {[Path(s).name for s in args.sources]}", flush=True)
    de_grey = [mean_ciede2000(grey_like(t), t) for t in imgs]
    c_truth = [colourfulness(t) for t in imgs]
    res = {"sources": [Path(s).name for s in args.sources], "held_out": args.held_out, "photos": len(imgs), "crop": args.crop,
           "steps": args.steps, "sampler": args.sampler, "short_side": args.short_side, "seed": args.seed, "machine": machine("cpu"),
           "ciede2000_grey": float(np.mean(de_grey)), "colourfulness_truth": float(np.mean(c_truth)), "runs": []}
    rows = [strip([grey_like(t) for t in imgs[:8]])]
    labels = ["grey"]
    for path in args.model:
        model = get_model(None if path == "default" else path)
        label = Path(model.path).stem
        scales = args.guidance if model.info.guidance is not None else [None]  # no guidance: scale 1 only
        variants = [parse_variant(v) for v in args.variants] if args.variants else [(args.sampler, args.steps, (0.0, 1.0))]
        for g, (sampler, steps, interval) in ((g, v) for g in scales for v in variants):
            scale = guidance_scale(model, g)
            t = time.perf_counter()
            outs = colorize_all(model, imgs, SampleOptions(steps=steps, sampler=sampler, seed=args.seed, batch_size=16,
                                                           guidance=g, guidance_interval=interval,
                                                           short_side=args.short_side))
            de = [mean_ciede2000(o, t_) for o, t_ in zip(outs, imgs)]
            c_out = [colourfulness(o) for o in outs]
            run = {"model": label, "guidance": scale, "sampler": sampler, "steps": steps, "guidance_interval": interval,
                   "seconds": round(time.perf_counter() - t, 1),
                   "ciede2000": float(np.mean(de)), "ciede2000_ratio_to_grey": float(np.mean(de) / np.mean(de_grey)),
                   "colourfulness_output": float(np.mean(c_out)),
                   "colourfulness_ratio": float(np.mean(c_out) / np.mean(c_truth)),
                   "share_closer_than_grey": float(np.mean(np.array(de) < np.array(de_grey)))}
            res["runs"].append(run)
            print(json.dumps(run), flush=True)
            rows.append(strip(outs[:8]))
            labels.append(f"{label} g={scale:g} {sampler}:{steps}:{interval[0]:g}-{interval[1]:g}")
    rows.append(strip(imgs[:8]))
    labels.append("truth")
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=2))
    if rows:
        cv2.imwrite(str(out / f"{args.name}.jpg"), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
    scales = sorted({r["guidance"] for r in res["runs"]})
    if len(scales) > 1:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
        for m in dict.fromkeys(r["model"] for r in res["runs"]):
            rs = [r for r in res["runs"] if r["model"] == m]
            a1.plot([r["guidance"] for r in rs], [r["ciede2000_ratio_to_grey"] for r in rs], "o-", label=m)
            a2.plot([r["guidance"] for r in rs], [r["colourfulness_ratio"] for r in rs], "o-", label=m)
        a1.axhline(1.0, color="#888", lw=0.8)
        a2.axhline(1.0, color="#888", lw=0.8)
        a1.set(xlabel="guidance scale", title="ΔE00 / grey's (lower is closer)")
        a2.set(xlabel="guidance scale", title="colourfulness / truth's")
        a1.legend(fontsize=8)
        fig.suptitle(f"{args.name}: {len(imgs)} held-out photos", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / f"{args.name}-guidance.png", dpi=110)


if __name__ == "__main__":
    main()
