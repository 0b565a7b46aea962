"""``hueshift train`` / ``python -m hueshift_core.training``: build the data, network and optimiser from the
command line and run a :class:`~hueshift_core.training.trainer.Trainer` (DDP under ``torchrun``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from .. import threads
from ..errors import HueShiftError, InputError
from ..model.diffusion import Prediction, Schedule
from ..model.unet import ColorUNet, UNetConfig, count_parameters
from .config import TrainConfig
from .data import load_images
from .scenes import DEFAULT_BUCKETS, load_scene_mix, parse_buckets
from .trainer import Trainer, _rank, _world, prepare_out_dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hueshift train", description="Train a HueShift colour model. "
                                "Under torchrun --nproc_per_node N it trains with DistributedDataParallel.")
    p.add_argument("data", nargs="+", help="zip shards, image folders or video files")
    p.add_argument("-o", "--out", required=True, help="run folder: checkpoints, logs, sample grids")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--batch", type=int, default=64, help="global batch size (split over processes)")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--holdout", type=int, default=500, help="images held out for the validation loss")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop (and save) after this much training time")
    p.add_argument("--config", default=None, help="UNetConfig as JSON (default: the shipped architecture)")
    p.add_argument("--schedule", choices=[s.value for s in Schedule], default=Schedule.COSINE.value)
    p.add_argument("--prediction", choices=[s.value for s in Prediction], default=Prediction.V.value)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument("--init", default=None, help="start from the weights of this HueShift model (fine-tuning)")
    p.add_argument("--ckpt-every", type=int, default=1000)
    p.add_argument("--sample-every", type=int, default=1000)
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", type=float, nargs="+", default=None,
                   help="scene-level training: one mixing weight per data source; batches are whole-scene crops "
                        "at video's aspect ratios (see --buckets) and validation is split by clip")
    p.add_argument("--buckets", default=None,
                   help="with --weights: crop sizes and their shares, e.g. 64x112:0.45,64x88:0.25,64x64:0.3")
    p.add_argument("--holdout-share", type=float, default=0.06,
                   help="with --weights: share of clips/photos held out for validation (by clip)")
    p.add_argument("--cond-drop", type=float, default=0.0,
                   help="share of samples trained without L, for classifier-free guidance at sampling (e.g. 0.1)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's own)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if args.device:
        from ..model.checkpoint import resolve_device

        try:
            device = resolve_device(args.device)
        except HueShiftError as err:
            print(f"hueshift train: error: {err}", file=sys.stderr)
            return 2
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out_existed = Path(args.out).exists()
    if distributed:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        run_training(args, device)
        return 0
    except HueShiftError as err:
        print(f"hueshift train: error: {err}", file=sys.stderr)
        if not out_existed and _rank() == 0:
            _remove_unused_run_dir(Path(args.out))
        return 2
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _remove_unused_run_dir(out: Path) -> None:
    """After a refusal, remove the run folder this run created if nothing but its start-up notes is in it."""
    try:
        if out.is_dir() and all(p.name in ("held_out.json", ".write-test") for p in out.iterdir()):
            for p in out.iterdir():
                p.unlink()
            out.rmdir()
    except OSError:
        pass


def run_training(args: argparse.Namespace, device: torch.device) -> Trainer:
    """Build data, model and optimiser from parsed ``args``, train, export; returns the trainer."""
    torch.manual_seed(args.seed)
    main_rank = _rank() == 0
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    resume_path = out / "last.safetensors"
    if args.resume and not resume_path.exists():
        raise InputError(f"--resume given but {resume_path} does not exist")
    if not args.resume and resume_path.exists():
        raise InputError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if main_rank:
        prepare_out_dir(out)
    if args.threads:
        threads.configure(args.threads)
    if not 0.0 <= args.cond_drop < 1.0:
        raise InputError(f"--cond-drop must be in [0, 1), got {args.cond_drop}")
    t = time.perf_counter()
    data_info: dict = {}
    if args.weights:
        buckets = parse_buckets(args.buckets) if args.buckets else DEFAULT_BUCKETS
        train, val, held = load_scene_mix(args.data, args.weights, holdout_share=args.holdout_share,
                                          buckets=buckets, seed=args.seed, max_per_source=args.max_images)
        data_info = dict(train.describe(), held_out_groups=len(held))
        if main_rank:
            print(f"data: scene mix {json.dumps(train.describe())}; {len(val)} validation crops from "
                  f"{len(held)} held-out clips/photos ({time.perf_counter() - t:.1f}s)", file=sys.stderr)
            (out / "held_out.json").write_text(json.dumps(held, indent=0))
    else:
        images = load_images(args.data, 64, max_images=args.max_images, seed=args.seed)
        train, val = images.split(args.holdout) if args.holdout else (images, None)
        if main_rank:
            print(f"data: {len(train)} training, {len(val) if val else 0} held out, skipped {dict(images.skipped)} "
                  f"({time.perf_counter() - t:.1f}s)", file=sys.stderr)
    config = UNetConfig.from_json(args.config) if args.config else UNetConfig()
    net = ColorUNet(config)
    if args.init:
        from ..model.checkpoint import load_model

        init = load_model(args.init)
        if init.info.config != config:
            raise InputError(f"--init model {args.init} has another config than this run")
        net.load_state_dict(init.net.state_dict())
    cfg = TrainConfig(batch_size=args.batch, lr=args.lr, warmup_steps=args.warmup, max_steps=args.steps,
                      ema_decay=args.ema, ckpt_every=args.ckpt_every, sample_every=args.sample_every,
                      val_every=args.val_every, log_every=args.log_every, seed=args.seed,
                      max_minutes=args.max_minutes, cond_drop=args.cond_drop)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{os.cpu_count()}"
    provenance = {"data": [Path(d).name for d in args.data], "init": Path(args.init).name if args.init else None, "train_images": len(train),
                  "batch": args.batch, "hardware": f"{hardware} x{_world()}", "lr": args.lr,
                  "parameters": count_parameters(net), "cond_drop": args.cond_drop, **data_info}
    trainer = Trainer(net, train, opt, cfg, out_dir=out, schedule=Schedule(args.schedule),
                      prediction=Prediction(args.prediction), val=val, device=device, provenance=provenance)
    if args.resume:
        trainer.load_training_state(resume_path)
        if main_rank:
            print(f"resumed at step {trainer.step}", file=sys.stderr)
    result = trainer.fit(progress=not args.no_progress)
    if main_rank:
        # The shipped form: EMA weights in half precision, with the final losses in the metadata.
        final = {"final_val_loss": round(result["val_loss"], 5),
                 "final_train_loss": trainer.log[-1]["loss"] if trainer.log else None}
        trainer.export(out / "model-fp16.safetensors", extra=final, dtype=torch.float16)
        print(json.dumps(result), file=sys.stderr)
    return trainer


if __name__ == "__main__":
    raise SystemExit(main())
