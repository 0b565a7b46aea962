"""Model-card numbers: colour quality on held-out photos the model never saw.

    python benchmarks/eval_photos.py [SHARD.zip] [--n 256] [--steps 25] [--sampler ddim] [--out docs/model]

Default shard: ../shared/data/images/train-05.zip (not used in training). Each photo is turned
grey, colorized at its native 64x64, and compared with the original: mean CIEDE2000 (and the
same for leaving it grey), colourfulness (Hasler & Süsstrunk) of output and truth. Writes
``photos.json`` and ``photos.jpg`` (rows: grey | HueShift | original).
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch

from hueshift_core.colorize import SampleOptions, colorize_frames, get_model
from hueshift_core.metrics import colourfulness, grey_like, mean_ciede2000

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "train-05.zip"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shard", nargs="?", default=str(DEFAULT))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--sampler", default="ddim")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/model")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(args.shard) as z:
        names = sorted(z.namelist())
        names = names[:: max(1, len(names) // args.n)][: args.n]  # spread over the shard's 200 classes
        imgs = [cv2.cvtColor(cv2.imdecode(np.frombuffer(z.read(n), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                for n in names]
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255
    model = get_model(None)
    y = colorize_frames(model, x, SampleOptions(steps=args.steps, sampler=args.sampler, seed=args.seed, batch_size=16))
    outs = (y.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    de = [mean_ciede2000(o, t) for o, t in zip(outs, imgs)]
    de_grey = [mean_ciede2000(grey_like(t), t) for t in imgs]
    c_out = [colourfulness(o) for o in outs]
    c_truth = [colourfulness(t) for t in imgs]
    res = {"shard": Path(args.shard).name, "photos": len(imgs), "steps": args.steps, "sampler": args.sampler,
           "ciede2000": float(np.mean(de)), "ciede2000_grey": float(np.mean(de_grey)),
           "colourfulness_output": float(np.mean(c_out)), "colourfulness_truth": float(np.mean(c_truth)),
           "colourfulness_ratio": float(np.mean(c_out) / np.mean(c_truth)),
           "share_closer_than_grey": float(np.mean(np.array(de) < np.array(de_grey)))}
    (out / f"photos-{args.sampler}{args.steps}.json").write_text(json.dumps(res, indent=2))
    k = 12
    grid = np.concatenate([np.concatenate([grey_like(t) for t in imgs[:k]], 1), np.concatenate(list(outs[:k]), 1),
                           np.concatenate(imgs[:k], 1)], 0)
    cv2.imwrite(str(out / f"photos-{args.sampler}{args.steps}.jpg"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
