"""Write a trained checkpoint as a shipped model: fp16 EMA weights, the chosen guidance scale, a name,
and (hueshift-v3 on) the colour prior the sampling is anchored on.

    python scripts/ship_model.py RUN/ema.safetensors hueshift_core/weights/hueshift-v2.safetensors \
        --guidance 2.0 --note "chosen by benchmarks/eval_photos.py sweep on held-out scenes"
    python scripts/ship_model.py hueshift_core/weights/hueshift-v2.safetensors \
        hueshift_core/weights/hueshift-v3.safetensors --prior runs/prior/best.safetensors --temperature 0.38
    python scripts/ship_model.py hueshift_core/weights/hueshift-v2.safetensors \
        hueshift_core/weights/hueshift-v4.safetensors --prior runs/prior/last.safetensors --balance 0.54 \
        --hue mean --prior-side 96
    python scripts/ship_model.py hueshift_core/weights/hueshift-v2.safetensors \
        hueshift_core/weights/hueshift-v8.safetensors --prior training/colour-prior/last.safetensors \
        --balance 0.15 --neutral 3 --hue mean --prior-side 128 --flip 1 --video-chroma 2 --video-target 15

The guidance scale goes into the metadata (``hueshift.guidance``): it is what ``--guidance``
defaults to for this model. Refused for a model not trained with L dropped (no unconditional mode).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import torch

from hueshift_core.model.checkpoint import load_model, load_prior, load_state, read_metadata, save_checkpoint
from hueshift_core.model.prior import PRIOR_HUES, PriorDecoding


def _decoding(own: PriorDecoding, args) -> PriorDecoding:
    """The source's own decoding with the settings given on the command line."""
    given = {"temperature": args.temperature, "balance": args.balance, "hue": args.hue, "side": args.prior_side,
             "flip": None if args.flip is None else bool(args.flip), "neutral": args.neutral,
             "video_chroma": args.video_chroma, "video_target": args.video_target}
    return dataclasses.replace(own, **{k: v for k, v in given.items() if v is not None})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--guidance", type=float, default=None, help="default: the source's own")
    ap.add_argument("--prior", default=None,
                    help="a colour prior to ship beside: a training export (best.safetensors) or a training state "
                         "(last.safetensors: its EMA weights)")
    ap.add_argument("--temperature", type=float, default=None, help="the prior's temperature (default: its own)")
    ap.add_argument("--balance", type=float, default=None,
                    help="share of the prior's class rebalancing undone at decoding, 0-1 (default: the export's own)")
    ap.add_argument("--hue", choices=PRIOR_HUES, default=None,
                    help="how the prior's decoding picks the hue (default: the source's own, 'annealed' before v4)")
    ap.add_argument("--prior-side", type=int, default=None,
                    help="short side of the prior's closer look at L, beside the working size's (default: the source's own; "
                         "64 = none, as before v4)")
    ap.add_argument("--flip", type=int, choices=(0, 1), default=None,
                    help="1: each look of the prior also sees L mirrored, logits averaged (default: the source's own; "
                         "0 before v5)")
    ap.add_argument("--neutral", type=float, default=None,
                    help="CIELAB chroma units the prior's decoding takes off every colour, faint casts made grey "
                         "(default: the source's own; 0 before v6)")
    ap.add_argument("--video-chroma", type=float, default=None,
                    help="the most saturation gain the video path applies to a frame (sampling.for_video), chosen "
                         "on the development clips (default: the source's own; 1 before v8)")
    ap.add_argument("--video-target", type=float, default=None,
                    help="the mean CIELAB chroma the video path lifts a frame's colour towards, by at most "
                         "--video-chroma (0: by --video-chroma everywhere; default: the source's own)")
    ap.add_argument("--weights-from", default=None, metavar="STATE",
                    help="the prior's training state (last.safetensors), for its rebalancing weights when the "
                         "export lacks them")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    model = load_model(args.src)
    if args.guidance is None:
        args.guidance = model.info.guidance if model.info.guidance is not None else 1.0
    trained_for_guidance = model.info.guidance is not None or model.info.provenance.get("cond_drop", 0) > 0
    if not trained_for_guidance and args.guidance != 1.0:
        print(f"{args.src} was not trained for guidance (no cond_drop): only --guidance 1", file=sys.stderr)
        return 2
    prov = dict(model.info.provenance, shipped_from=args.src.rsplit("/", 1)[-1], **({"note": args.note} if args.note else {}))
    info = dataclasses.replace(model.info, guidance=args.guidance, provenance=prov)
    prior_kw = {}
    if args.prior:
        tensors, meta = load_state(args.prior)
        if meta.get("hueshift.training_state") == "prior-1":  # a training state: ship its EMA with its weights
            from hueshift_core.training.prior import prior_from_state

            prior, state_prov = prior_from_state(args.prior)
            decoding = PriorDecoding()
            meta = {"hueshift.prior_provenance": json.dumps(state_prov)}
        else:
            prior, decoding = load_prior(args.prior)
        if args.weights_from:
            with torch.no_grad():
                prior.log_weights.copy_(load_state(args.weights_from)[0]["weights"].float().log())
        prior_prov = dict(json.loads(meta.get("hueshift.prior_provenance", "{}")), shipped_from=args.prior)
        prior_kw = dict(prior=prior, prior_provenance=prior_prov, prior_decoding=_decoding(decoding, args))
    elif model.prior is not None:  # the source's own prior, read another way: its provenance goes with it
        prior_prov = json.loads(read_metadata(args.src).get("hueshift.prior_provenance", "{}"))
        prior_kw = dict(prior=model.prior, prior_provenance=prior_prov,
                        prior_decoding=_decoding(model.prior_decoding, args))
    save_checkpoint(args.dst, model.net.state_dict(), info, dtype=torch.float16, **prior_kw)
    print(f"wrote {args.dst}: guidance {args.guidance}, {prov.get('steps')} steps"
          + (f"; colour prior from {args.prior}" if args.prior else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
