"""Write a trained checkpoint as a shipped model: fp16 EMA weights, the chosen guidance scale, a name.

    python scripts/ship_model.py RUN/ema.safetensors hueshift_core/weights/hueshift-v2.safetensors \
        --guidance 2.0 --note "chosen by benchmarks/eval_photos.py sweep on held-out scenes"

The guidance scale goes into the metadata (``hueshift.guidance``): it is what ``--guidance``
defaults to for this model. Refused for a model not trained with L dropped (no unconditional mode).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from hueshift_core.model.checkpoint import load_model, save_checkpoint


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--guidance", type=float, required=True)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    model = load_model(args.src)
    trained_for_guidance = model.info.guidance is not None or model.info.provenance.get("cond_drop", 0) > 0
    if not trained_for_guidance and args.guidance != 1.0:
        print(f"{args.src} was not trained for guidance (no cond_drop): only --guidance 1", file=sys.stderr)
        return 2
    prov = dict(model.info.provenance, shipped_from=args.src.rsplit("/", 1)[-1], **({"note": args.note} if args.note else {}))
    info = dataclasses.replace(model.info, guidance=args.guidance, provenance=prov)
    save_checkpoint(args.dst, model.net.state_dict(), info, dtype=torch.float16)
    print(f"wrote {args.dst}: guidance {args.guidance}, {prov.get('steps')} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
