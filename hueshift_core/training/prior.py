"""Training the colour prior (:mod:`hueshift_core.model.prior`): per-patch colour classification with
class rebalancing and random user hints, built to run for hours on one CPU thread and to resume across
sessions.

    python -m hueshift_core.training.prior DATA... --weights W... -o runs/prior [--resume] [--minutes M]

* **Data**: the scene mix (:class:`~.scenes.SceneMix`, whole-scene crops at video's aspect ratios) with
  whole clips / photo groups held out (the same split by clip as the UNet's runs).
* **Target**: the ab of each 4x4 patch (its mean), soft-encoded over the ``Q`` in-gamut bins; the
  cross-entropy of each patch is weighted by its bin's rebalancing weight (Zhang et al. 2016).
* **Hints**: on ``hint_share`` of the samples, a geometric number of points (p = 1/8, at most 32), each
  a square of 1-5 working pixels given the mean true colour of that square (Zhang et al. 2017).
* **Resume**: ``last.safetensors`` holds the network, the EMA, Adam's moments, the step, the rebalancing
  weights and the cumulative crops seen and seconds spent; batches are a pure function of (seed, step).
  ``best.safetensors`` is the EMA at the best validation CIEDE2000 so far, in the shipped form.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from .. import threads
from ..errors import CheckpointError, HueShiftError, InputError
from ..model.checkpoint import load_state
from ..model.lab import denormalize_ab, denormalize_l
from ..model.prior import ColourPrior, PriorConfig, PriorDecoding, count_parameters, rebalance_weights, soft_targets
from ..outputs import atomic_output
from .data import ImageSet, batch_to_model_space
from .scenes import DEFAULT_BUCKETS, SceneMix, load_scene_mix, parse_buckets

PATCH = 4  # the prior predicts one distribution per PATCH x PATCH working pixels


def random_hints(ab_norm: torch.Tensor, gen: torch.Generator, share: float = 0.5, p: float = 1 / 8,
                 max_points: int = 32, max_size: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Hints drawn from the truth ``ab_norm`` ``[B, 2, H, W]`` -> (hint ab ``[B, 2, H, W]``, mask
    ``[B, 1, H, W]``). On ``share`` of the samples a geometric number of squares (1..``max_size`` px),
    each filled with the mean true ab of that square; the rest get none."""
    b, _, h, w = ab_norm.shape
    hint = torch.zeros_like(ab_norm)
    mask = torch.zeros(b, 1, h, w, dtype=ab_norm.dtype, device=ab_norm.device)
    u = torch.rand(b, generator=gen)
    for i in range(b):
        if u[i] >= share:
            continue
        n = _geometric(gen, p, max_points)
        for _ in range(n):
            s = int(torch.randint(1, max_size + 1, (1,), generator=gen))
            y = int(torch.randint(0, h - s + 1, (1,), generator=gen))
            x = int(torch.randint(0, w - s + 1, (1,), generator=gen))
            hint[i, :, y:y + s, x:x + s] = ab_norm[i, :, y:y + s, x:x + s].mean((1, 2), keepdim=True)
            mask[i, :, y:y + s, x:x + s] = 1.0
    return hint, mask


def jitter_lightness(l_norm: torch.Tensor, gen: torch.Generator, share: float = 0.5, strength: float = 1.0
                     ) -> torch.Tensor:
    """A random tone curve on the lightness ``l_norm`` ``[B, 1, H, W]`` (in [-1, 1]) of ``share`` of the samples:
    gamma ``exp(U(-0.3, 0.3) s)``, contrast about the image mean ``1 + U(-0.2, 0.2) s`` and a shift of
    ``U(-0.05, 0.05) s`` of the range (``s`` = ``strength``), clipped to the range. Old film and scans differ
    from the photos' tone; the colour target stays the photo's, so the network learns colour from texture and
    context rather than from exact grey levels. The rest of the batch is returned unchanged."""
    b = l_norm.shape[0]
    u = torch.rand(b, 4, generator=gen).to(l_norm.device)
    x = (l_norm + 1) / 2
    gamma = torch.exp((u[:, 1] * 0.6 - 0.3) * strength).view(b, 1, 1, 1)
    contrast = (1 + (u[:, 2] * 0.4 - 0.2) * strength).view(b, 1, 1, 1)
    shift = ((u[:, 3] * 0.1 - 0.05) * strength).view(b, 1, 1, 1)
    y = x.clamp(0, 1) ** gamma
    m = y.mean((1, 2, 3), keepdim=True)
    y = ((y - m) * contrast + m + shift).clamp(0, 1)
    chosen = (u[:, 0] < share).view(b, 1, 1, 1)
    return torch.where(chosen, y * 2 - 1, l_norm)


def _geometric(gen: torch.Generator, p: float, cap: int) -> int:
    """A draw of Geometric(p) on 1, 2, ..., capped at ``cap``."""
    u = float(torch.rand(1, generator=gen))
    return int(min(cap, 1 + math.floor(math.log(max(u, 1e-12)) / math.log(1 - p))))


class PriorTrainer:
    """One resumable training run of a :class:`ColourPrior` on a :class:`SceneMix`."""

    def __init__(self, net: ColourPrior, data: SceneMix, val: ImageSet, out_dir: Path, *, batch: int = 32,
                 lr: float = 1e-3, warmup: int = 200, ema: float = 0.999, weight_decay: float = 1e-4,
                 hint_share: float = 0.5, temperature: float = 0.38, balance: float = 0.5, seed: int = 0,
                 val_images: int = 384, l_jitter: float = 0.0,
                 device: torch.device | str = "cpu", provenance: dict | None = None) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device)
        if self.device.type == "cpu":  # NHWC convolutions train about 10 % faster on one CPU thread (round 12)
            self.net = net.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(net).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.data, self.out_dir = data, Path(out_dir)
        self.batch, self.lr, self.warmup, self.ema_decay = batch, lr, warmup, ema
        self.hint_share, self.temperature, self.seed = hint_share, temperature, seed
        self.l_jitter = l_jitter  # share of the samples given a random tone curve (jitter_lightness)
        self.balance = balance  # how validation (and so best.safetensors) decodes: see ColourPrior.decode
        self.opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
        self.val = ImageSet(val.images[:val_images], val.names[:val_images])
        self.provenance = dict(provenance or {})
        self.step, self.crops_seen, self.seconds = 0, 0, 0.0
        self.best_de: float | None = None
        self.warm_from = 0  # the step the learning-rate warm-up counts from
        self.lr_scale = 1.0  # the end-of-session anneal (fit's anneal_minutes)
        self.weights = torch.ones(net.config.num_bins)
        self.log: list[dict] = []

    # ---- data ------------------------------------------------------------------------------------
    def estimate_weights(self, batches: int = 200) -> None:
        """Rebalancing weights from the bin frequencies of ``batches`` training batches (fixed seed)."""
        counts = torch.zeros(self.net.config.num_bins, dtype=torch.float64)
        for k in range(batches):
            _, ab = batch_to_model_space(self.data.batch(10_000_000 + k, self.batch, rank=1))
            t = soft_targets(F.avg_pool2d(ab, PATCH), self.net.bins.cpu())
            counts += t.sum((0, 2, 3)).double()
        self.weights = rebalance_weights(counts, self.net.bins.cpu())
        self._keep_weights()

    def _keep_weights(self) -> None:
        """The networks carry log w, so an export can undo the rebalancing when decoding (``balance``)."""
        with torch.no_grad():
            for net in (self.net, self.ema):
                net.log_weights.copy_(self.weights.log().to(net.log_weights.device))

    def _lr(self) -> float:
        return self.lr * self.lr_scale * min(1.0, (self.step - self.warm_from + 1) / max(1, self.warmup))

    def loss(self, net: ColourPrior, l: torch.Tensor, ab: torch.Tensor, hint: torch.Tensor, mask: torch.Tensor
             ) -> torch.Tensor:
        target = soft_targets(F.avg_pool2d(ab, PATCH), net.bins)
        w = self.weights.to(target.device)[target.argmax(1)]
        logp = F.log_softmax(net(l, hint, mask).float(), dim=1)
        return (-(target * logp).sum(1) * w).mean()

    def train_step(self) -> float:
        rgb = self.data.batch(self.step, self.batch)
        l, ab = batch_to_model_space(rgb.to(self.device))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
        hint, mask = random_hints(ab.cpu(), gen, self.hint_share)
        if self.l_jitter:
            l = jitter_lightness(l, gen, self.l_jitter)
        if self.device.type == "cpu":
            l = l.contiguous(memory_format=torch.channels_last)
        self.net.train()
        for g in self.opt.param_groups:
            g["lr"] = self._lr()
        loss = self.loss(self.net, l, ab, hint.to(self.device), mask.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.opt.step()
        with torch.no_grad():
            d = min(self.ema_decay, (1 + self.step) / (10 + self.step))
            for pe, p in zip(self.ema.parameters(), self.net.parameters()):
                pe.lerp_(p, 1 - d)
            for be, b in zip(self.ema.buffers(), self.net.buffers()):
                be.copy_(b)
        self.step += 1
        self.crops_seen += rgb.shape[0]
        return float(loss.detach())

    # ---- validation ------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, net: ColourPrior | None = None, temperature: float | None = None,
                 balance: float | None = None) -> dict:
        """Held-out crops: CIEDE2000 of the prior's colours and of grey against the truth, colourfulness of
        both, and the wrong-hue / lost-colour shares (no hints), decoded at ``temperature`` and ``balance``
        (None: the trainer's)."""
        from ..evaluation import colourfulness, hue_errors, mean_ciede2000

        net = net or self.ema
        net.eval()
        t = self.temperature if temperature is None else temperature
        de = de_grey = cf = cf_t = wrong = lost = 0.0
        n = len(self.val)
        for s in range(0, n, 64):
            rgb = self.val.images[s:s + 64]
            l, ab = batch_to_model_space(rgb.to(self.device))
            pred = net.predict(l, temperature=t, balance=self.balance if balance is None else balance)
            out = self._to_u8(l, pred)
            grey = self._to_u8(l, torch.zeros_like(pred))
            truth = rgb.numpy()
            for o, g, tr in zip(out, grey, truth):
                de += mean_ciede2000(o, tr)
                de_grey += mean_ciede2000(g, tr)
                cf += colourfulness(o)
                cf_t += colourfulness(tr)
                wh, lc = hue_errors(o, tr)
                wrong += wh
                lost += lc
        return {"ciede2000": de / n, "ciede2000_grey": de_grey / n, "de_ratio": de / de_grey,
                "colourfulness_ratio": cf / max(cf_t, 1e-9), "wrong_hue": wrong / n, "lost_colour": lost / n}

    @staticmethod
    def _to_u8(l: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
        from ..model.lab import lab_to_rgb

        lab = torch.cat([denormalize_l(l), denormalize_ab(ab)], 1).float().cpu()
        return (lab_to_rgb(lab).permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)

    # ---- files -----------------------------------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        return {"hueshift.training_state": "prior-1", "step": str(self.step), "crops_seen": str(self.crops_seen),
                "seconds": f"{self.seconds:.1f}", "best_de": json.dumps(self.best_de),
                "prior_config": self.net.config.to_json(), "optim.param_groups": json.dumps(self.opt.state_dict()["param_groups"]),
                "provenance": json.dumps(self.provenance)}

    def save_state(self, path: Path, optimizer: bool = True) -> None:
        """Everything to resume. ``optimizer=False`` leaves out Adam's moments (half the file): the compact
        state committed between sessions; a resume from it re-warms the learning rate."""
        tensors = {f"model.{k}": v for k, v in self.net.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        for pid, st in (self.opt.state_dict()["state"].items() if optimizer else ()):
            for k, v in st.items():
                tensors[f"optim.{pid}.{k}"] = torch.as_tensor(v)
        tensors["weights"] = self.weights
        with atomic_output(path, "prior training state", CheckpointError, temp_name=f".{path.name}.tmp") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=self._meta())

    def load_state(self, path: Path) -> None:
        try:
            tensors, meta = load_state(path)
        except CheckpointError as err:
            raise CheckpointError(f"cannot resume from {path}: {err}") from None
        if meta.get("hueshift.training_state") != "prior-1":
            raise CheckpointError(f"cannot resume from {path}: it is not a colour-prior training state")
        if PriorConfig.from_json(meta["prior_config"]) != self.net.config:
            raise CheckpointError(f"cannot resume from {path}: another prior config ({meta['prior_config']})")
        for net, prefix in ((self.net, "model."), (self.ema, "ema.")):
            sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            sd.setdefault("log_weights", torch.zeros_like(net.log_weights))  # states from before it was kept
            net.load_state_dict(sd)
        state: dict = {"state": {}, "param_groups": json.loads(meta["optim.param_groups"])}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, name = k.split(".", 2)
                state["state"].setdefault(int(pid), {})[name] = v.to(self.device) if name != "step" else v
        for g in state["param_groups"]:
            g["lr"] = self.lr  # this session's --lr
        self.opt.load_state_dict(state)
        self.weights = tensors["weights"].float()
        self._keep_weights()
        self.step, self.crops_seen = int(meta["step"]), int(meta["crops_seen"])
        self.warm_from = self.step if not state["state"] else 0  # no Adam moments: warm up again from here
        self.seconds = float(meta["seconds"])
        self.best_de = json.loads(meta.get("best_de", "null"))
        prev = json.loads(meta.get("provenance", "{}"))
        self.provenance = {**prev, **self.provenance, "resumes": prev.get("resumes", 0) + 1}

    def export(self, path: Path, extra: dict | None = None, dtype: torch.dtype | None = None) -> None:
        """The EMA weights in the shipped form (see :func:`hueshift_core.model.checkpoint.save_prior`)."""
        from ..model.checkpoint import save_prior

        prov = dict(self.provenance, steps=self.step, crops_seen=self.crops_seen,
                    train_hours=round(self.seconds / 3600, 3), **(extra or {}))
        save_prior(path, self.ema, decoding=PriorDecoding(temperature=self.temperature, balance=self.balance),
                   provenance=prov, dtype=dtype)

    # ---- the loop --------------------------------------------------------------------------------
    def fit(self, minutes: float, *, ckpt_minutes: float = 5.0, val_every: int = 1000, log_every: int = 50,
            anneal_minutes: float = 0.0) -> None:
        """Train for ``minutes``; over the last ``anneal_minutes`` the learning rate falls (cosine) to 5 % of
        ``lr``, so the session ends on a settled model (the next session warms back up)."""
        log_path = self.out_dir / "log.jsonl"
        t_end = time.monotonic() + minutes * 60
        last_ckpt = time.monotonic()
        t_prev, losses = time.perf_counter(), []
        while time.monotonic() < t_end:
            left = (t_end - time.monotonic()) / 60
            if anneal_minutes > 0 and left < anneal_minutes:
                self.lr_scale = 0.05 + 0.95 * 0.5 * (1 - math.cos(math.pi * left / anneal_minutes))
            else:
                self.lr_scale = 1.0
            t0 = time.perf_counter()
            losses.append(self.train_step())
            self.seconds += time.perf_counter() - t0
            if self.step % log_every == 0:
                now = time.perf_counter()
                rec = {"step": self.step, "loss": round(float(np.mean(losses)), 5), "lr": self._lr(),
                       "crops_seen": self.crops_seen, "hours": round(self.seconds / 3600, 4),
                       "crops_per_s": round(len(losses) * self.batch / (now - t_prev), 1)}
                t_prev, losses = now, []
                if self.step % val_every == 0:
                    rec["val"] = {k: round(v, 4) for k, v in self.validate().items()}
                    if self.best_de is None or rec["val"]["ciede2000"] < self.best_de:
                        self.best_de = rec["val"]["ciede2000"]
                        self.export(self.out_dir / "best.safetensors", extra={"val": rec["val"]})
                    t_prev = time.perf_counter()
                with log_path.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(json.dumps(rec), file=sys.stderr, flush=True)
            if time.monotonic() - last_ckpt > ckpt_minutes * 60:
                self.checkpoint()
                last_ckpt = time.monotonic()
        self.checkpoint()
        self.export(self.out_dir / "ema.safetensors")

    def checkpoint(self) -> None:
        """``last.safetensors`` (everything) and ``last-compact.safetensors`` (no Adam moments: what is committed
        to the repository between sessions, ``training/colour-prior/``)."""
        self.save_state(self.out_dir / "last.safetensors")
        self.save_state(self.out_dir / "last-compact.safetensors", optimizer=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hueshift_core.training.prior",
                                description="Train (or resume) the colour prior on the scene mix.")
    p.add_argument("data", nargs="+", help="zip shards or folders")
    p.add_argument("--weights", type=float, nargs="+", required=True, help="one mixing weight per source")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument("--resume-from", default=None, metavar="STATE",
                   help="start a new OUT from this training state (e.g. training/colour-prior/last.safetensors, "
                        "committed by the last session)")
    p.add_argument("--minutes", type=float, default=60.0, help="training time of this session")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hint-share", type=float, default=0.5)
    p.add_argument("--l-jitter", type=float, default=0.0,
                   help="share of the samples whose lightness gets a random tone curve (gamma, contrast, shift); "
                        "0 = off")
    p.add_argument("--buckets", default=None,
                   help="crop sizes and their shares, e.g. 64x112:0.45,64x88:0.25,64x64:0.3 (the default: the working "
                        "sizes, short side 64)")
    p.add_argument("--min-scale", type=float, default=0.55,
                   help="smallest training crop as a share of the largest crop of its aspect (random scale in "
                        "[MIN_SCALE, 1]); lower = stronger scale augmentation")
    p.add_argument("--config", default=None, help="PriorConfig as JSON (default: the shipped shape)")
    p.add_argument("--val-every", type=int, default=1000)
    p.add_argument("--anneal-minutes", type=float, default=0.0,
                   help="over the last M minutes the learning rate falls to 5 %% (cosine): a settled model to ship")
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        threads.configure(args.threads)
        buckets = parse_buckets(args.buckets) if args.buckets else DEFAULT_BUCKETS
        out = Path(args.out)
        last = out / "last.safetensors"
        if args.resume and not last.exists():
            raise InputError(f"--resume given but {last} does not exist")
        if not args.resume and last.exists():
            raise InputError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
        if args.resume_from and (args.resume or not Path(args.resume_from).is_file()):
            raise InputError(f"--resume-from {args.resume_from}: give an existing state, and not with --resume")
        if not 0.0 <= args.l_jitter <= 1.0:
            raise InputError(f"--l-jitter must be in [0, 1], got {args.l_jitter}")
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        mix, val, held = load_scene_mix(args.data, args.weights, buckets=buckets, seed=args.seed,
                                        min_scale=args.min_scale)
        (out / "held_out.json").write_text(json.dumps(held, indent=0))
        config = PriorConfig.from_json(args.config) if args.config else PriorConfig()
        net = ColourPrior(config)
        prov = {"data": [Path(d).name for d in args.data], "weights": args.weights, "batch": args.batch,
                "lr": args.lr, "hint_share": args.hint_share, "l_jitter": args.l_jitter,
                "parameters": count_parameters(net),
                "hardware": f"{args.device} x{args.threads} threads ({os.cpu_count()} CPUs)", **mix.describe()}
        trainer = PriorTrainer(net, mix, val, out, batch=args.batch, lr=args.lr, hint_share=args.hint_share,
                               l_jitter=args.l_jitter, seed=args.seed, device=args.device, provenance=prov)
        print(f"data: {len(mix)} training images, {len(val)} validation crops ({time.perf_counter() - t:.0f}s); "
              f"{count_parameters(net) / 1e6:.2f}M parameters", file=sys.stderr, flush=True)
        if args.resume or args.resume_from:
            trainer.load_state(last if args.resume else Path(args.resume_from))
            print(f"resumed at step {trainer.step} ({trainer.crops_seen} crops, {trainer.seconds / 3600:.2f} h)",
                  file=sys.stderr, flush=True)
        else:
            trainer.estimate_weights()
        trainer.fit(args.minutes, ckpt_minutes=args.ckpt_minutes, val_every=args.val_every,
                    anneal_minutes=args.anneal_minutes)
        return 0
    except HueShiftError as err:
        print(f"hueshift train-prior: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())


def prior_from_state(path: str | Path) -> tuple[ColourPrior, dict]:
    """A training state's EMA network, with its rebalancing weights, in eval mode, and the state's counters
    (``steps``, ``crops_seen``, ``train_hours``) merged into its provenance: what ``scripts/ship_model.py`` ships and
    ``benchmarks/eval_colour.py`` evaluates before shipping."""
    tensors, meta = load_state(path)
    if meta.get("hueshift.training_state") != "prior-1":
        raise CheckpointError(f"{path} is not a colour-prior training state")
    net = ColourPrior(PriorConfig.from_json(meta["prior_config"])).eval()
    sd = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    sd["log_weights"] = tensors["weights"].float().log()
    net.load_state_dict(sd)
    prov = {**json.loads(meta.get("provenance", "{}")), "steps": int(meta["step"]),
            "crops_seen": int(meta["crops_seen"]), "train_hours": round(float(meta["seconds"]) / 3600, 3)}
    return net, prov
