"""The training loop: a loop over injected parts (model, data, optimiser), EMA, exact resume, DDP.

:class:`Trainer` takes a built network, an :class:`~hueshift_core.training.data.ImageSet` and an
optimiser; :func:`~hueshift_core.training.command.main` (``hueshift train`` / ``python -m hueshift_core.training``) builds
them from the command line. Under ``torchrun --nproc_per_node N`` the same command uses
DistributedDataParallel (gloo on CPU, nccl on GPU) with a distributed sampler; only rank 0
writes files.

Training checkpoints are safetensors too (model, EMA, optimiser moments, RNG states as
tensors; step and optimiser hyper-parameters as JSON metadata), written atomically, so an
interrupted run resumes exactly where its last checkpoint was.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.utils.data import DistributedSampler

from ..errors import CheckpointError, InputError
from ..model.checkpoint import ModelInfo, load_state, save_checkpoint
from ..model.diffusion import NULL_COND, Prediction, Schedule, make_schedule, training_loss
from ..model.unet import ColorUNet, UNetConfig
from ..outputs import atomic_output
from .config import TrainConfig, lr_at
from .data import ImageSet, batch_to_model_space
from .scenes import SceneMix


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class Trainer:
    """Denoising-diffusion training of a :class:`ColorUNet` on (L, ab) pairs.

    ``net`` is the bare network (wrapped in DDP here when a process group exists);
    ``optimizer`` must optimise ``net.parameters()``.
    """

    def __init__(self, net: ColorUNet, data: ImageSet | SceneMix, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                 *, out_dir: str | Path, schedule: Schedule = Schedule.COSINE,
                 prediction: Prediction = Prediction.V, val: ImageSet | None = None,
                 device: torch.device | str = "cpu", provenance: dict | None = None) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device)
        self.ema = copy.deepcopy(net).eval().requires_grad_(False)
        self.data, self.val, self.opt, self.cfg = data, val, optimizer, cfg
        self.out_dir = Path(out_dir)
        self.schedule, self.prediction = Schedule(schedule), Prediction(prediction)
        self.alphas_cumprod = make_schedule(self.schedule).to(self.device)
        self.provenance = dict(provenance or {})
        self.step = 0
        self.wall = 0.0  # seconds of training, summed over resumes
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1000 + _rank())
        self.model = net
        if _world() > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.per_rank_batch = cfg.batch_size // _world()
        if self.per_rank_batch < 1:
            raise InputError(f"batch size {cfg.batch_size} is smaller than the {_world()} processes")
        if not isinstance(data, SceneMix):
            self.sampler = DistributedSampler(range(len(data)), num_replicas=_world(), rank=_rank(),
                                              shuffle=True, seed=cfg.seed, drop_last=True)
            if len(self.sampler) < self.per_rank_batch:
                raise InputError(f"{len(data)} training images is fewer than one batch of {cfg.batch_size}")
        self.log: list[dict] = []
        self._order_epoch = -1
        self._order = torch.empty(0, dtype=torch.long)
        if self.device.type == "cuda" and isinstance(data, ImageSet):  # a few hundred MB of uint8: keep it next to the model
            self.data = ImageSet(data.images.to(self.device), data.names, data.skipped)

    # ---- batches -------------------------------------------------------------------------------
    def _batch_indices(self, step: int) -> torch.Tensor:
        """Indices of this rank's batch at ``step``: a pure function of (seed, step), so resume is exact."""
        per_epoch = len(self.sampler) // self.per_rank_batch
        epoch, pos = divmod(step, per_epoch)
        if self._order_epoch != epoch:
            self.sampler.set_epoch(epoch)
            self._order = torch.tensor(list(iter(self.sampler)))
            self._order_epoch = epoch
        return self._order[pos * self.per_rank_batch:(pos + 1) * self.per_rank_batch]

    def _to_model(self, images: torch.Tensor, augment: bool) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        flip = None
        if augment:
            flip = torch.rand(images.shape[0], generator=self.gen, device=self.device) < 0.5
        return batch_to_model_space(images, flip=flip)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cfg.bf16 and self.device.type == "cuda")

    # ---- one step ------------------------------------------------------------------------------
    def train_step(self) -> float:
        cfg = self.cfg
        if isinstance(self.data, SceneMix):  # crops are flipped by the mix itself
            l, ab = self._to_model(self.data.batch(self.step, self.per_rank_batch, _rank()), augment=False)
        else:
            l, ab = self._to_model(self.data.images[self._batch_indices(self.step)], augment=True)
        if cfg.cond_drop > 0:  # classifier-free guidance: learn p(ab) without L too
            drop = torch.rand(l.shape[0], generator=self.gen, device=self.device) < cfg.cond_drop
            l = torch.where(drop.reshape(-1, 1, 1, 1), torch.full_like(l, NULL_COND), l)
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.step, cfg)
        with self._autocast():
            loss = training_loss(self.model, self.alphas_cumprod, self.prediction, ab, l, generator=self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
        self.opt.step()
        self._update_ema()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        for pe, p in zip(self.ema.parameters(), self.net.parameters()):
            pe.lerp_(p.detach(), 1 - d)
        for be, b in zip(self.ema.buffers(), self.net.buffers()):
            be.copy_(b)

    @torch.no_grad()
    def validation_loss(self, max_images: int = 1024) -> float:
        """EMA loss on held-out images with fixed timesteps and noise (comparable across steps)."""
        if self.val is None or len(self.val) == 0:
            return float("nan")
        g = torch.Generator(device=self.device).manual_seed(1234)
        images = self.val.images[:max_images]
        total, n = 0.0, 0
        for i in range(0, len(images), 256):
            l, ab = self._to_model(images[i:i + 256], augment=False)
            with self._autocast():
                loss = training_loss(self.ema, self.alphas_cumprod, self.prediction, ab, l, generator=g)
            total += float(loss) * l.shape[0]
            n += l.shape[0]
        return total / n

    # ---- files ---------------------------------------------------------------------------------
    def model_info(self, extra: dict | None = None) -> ModelInfo:
        prov = dict(self.provenance, steps=self.step, train_seconds=round(self.wall, 1), **(extra or {}))
        guidance = 1.0 if self.cfg.cond_drop > 0 else None  # trained for guidance; the shipped scale is set later
        return ModelInfo(self.net.config, self.schedule, len(self.alphas_cumprod), self.prediction, prov, guidance)

    def save_training_state(self, path: Path) -> None:
        """Everything needed for an exact resume, as safetensors."""
        tensors = {f"model.{k}": v for k, v in self.net.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        opt = self.opt.state_dict()
        for pid, st in opt["state"].items():
            for k, v in st.items():
                tensors[f"optim.{pid}.{k}"] = torch.as_tensor(v)
        tensors["rng.gen"] = self.gen.get_state()
        tensors["rng.torch_cpu"] = torch.get_rng_state()
        meta = {
            "hueshift.training_state": "1",
            "step": str(self.step),
            "wall": str(self.wall),
            "optim.param_groups": json.dumps(opt["param_groups"]),
            "info.unet_config": self.net.config.to_json(),
            "info.schedule": self.schedule.value,
            "info.prediction": self.prediction.value,
            "train_config": json.dumps(asdict(self.cfg)),
        }
        with atomic_output(path, "training state", CheckpointError, temp_name=f".{Path(path).name}.tmp") as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)

    def load_training_state(self, path: Path) -> None:
        """Resume from :meth:`save_training_state`; a checkpoint of another config is refused."""
        try:
            tensors, meta = load_state(path)  # the checkpoint reader: refuses pickles before any parser sees them
        except CheckpointError as err:
            raise CheckpointError(f"cannot resume from {path}: {err}") from None
        if meta.get("hueshift.training_state") != "1":
            raise CheckpointError(f"cannot resume from {path}: it is not a HueShift training state")
        if UNetConfig.from_json(meta["info.unet_config"]) != self.net.config:
            raise CheckpointError(
                f"cannot resume from {path}: it was trained with another model config "
                f"({meta['info.unet_config']}); use the same --config or start a new --out folder")
        if meta.get("info.schedule") != self.schedule.value or meta.get("info.prediction") != self.prediction.value:
            raise CheckpointError(f"cannot resume from {path}: schedule/prediction differ from this run")
        self.net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        opt_state: dict = {"state": {}, "param_groups": json.loads(meta["optim.param_groups"])}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, name = k.split(".", 2)
                opt_state["state"].setdefault(int(pid), {})[name] = v.to(self.device) if name != "step" else v
        self.opt.load_state_dict(opt_state)
        self.gen.set_state(tensors["rng.gen"])
        torch.set_rng_state(tensors["rng.torch_cpu"])
        self.step = int(meta["step"])
        self.wall = float(meta.get("wall", 0.0))

    @torch.no_grad()
    def sample_grid(self, path: Path, n: int = 8, steps: int = 25) -> None:
        """PNG rows of grey | model (EMA, DDIM) | truth for the first ``n`` held-out images."""
        import cv2

        from ..model.lab import denormalize_ab, denormalize_l, lab_to_rgb
        from ..model.diffusion import Denoiser, sample_ddim, space_timesteps

        source = self.val if self.val is not None and len(self.val) else self.data
        l, ab = self._to_model(source.images[:n], augment=False)
        den = Denoiser(self.ema, self.alphas_cumprod.cpu(), self.prediction)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(ab.shape, generator=g).to(self.device)
        pred = sample_ddim(den, x, space_timesteps(len(self.alphas_cumprod), steps), cond=l, generator=g)

        def rgb(ab_n: torch.Tensor) -> np.ndarray:
            lab = torch.cat([denormalize_l(l), denormalize_ab(ab_n)], 1).float()
            img = lab_to_rgb(lab).permute(0, 2, 3, 1).cpu().numpy()
            return np.concatenate(list(img), axis=1)

        grid = np.concatenate([rgb(torch.zeros_like(ab)), rgb(pred), rgb(ab)], axis=0)
        cv2.imwrite(str(path), cv2.cvtColor((grid * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR))

    def export(self, path: Path, extra: dict | None = None, dtype: torch.dtype | None = None) -> None:
        save_checkpoint(path, self.ema.state_dict(), self.model_info(extra), dtype=dtype)

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, progress: bool = True) -> dict:
        cfg = self.cfg
        main = _rank() == 0
        if main:
            prepare_out_dir(self.out_dir)
        bar = None
        if progress and main:
            from tqdm import tqdm
            bar = tqdm(total=cfg.max_steps, initial=self.step, dynamic_ncols=True, file=sys.stderr)
        t0 = time.perf_counter()
        wall0 = self.wall
        seen = 0
        last_t, last_seen = t0, 0
        stop_reason = "max_steps"
        val = float("nan")
        start_step = self.step
        try:
            while self.step < cfg.max_steps:
                loss = self.train_step()
                seen += cfg.batch_size
                self.wall = wall0 + time.perf_counter() - t0
                if main and self.step % cfg.log_every == 0:
                    now = time.perf_counter()
                    ips = (seen - last_seen) / max(now - last_t, 1e-9)
                    last_t, last_seen = now, seen
                    rec = {"step": self.step, "loss": round(loss, 5), "lr": lr_at(self.step, cfg),
                           "images_per_s": round(ips, 1), "wall_s": round(self.wall, 1)}
                    if cfg.val_every and self.step % cfg.val_every == 0:
                        val = self.validation_loss()
                        rec["val_loss"] = round(val, 5)
                    self.log.append(rec)
                    with (self.out_dir / "log.jsonl").open("a") as f:
                        f.write(json.dumps(rec) + "\n")
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss:.4f}", val=f"{val:.4f}", img_s=f"{ips:.0f}")
                if bar is not None:
                    bar.update(1)
                if main and cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                    self.checkpoint()
                if main and cfg.sample_every and self.step % cfg.sample_every == 0:
                    self.sample_grid(self.out_dir / f"samples-{self.step:07d}.png")
                if cfg.max_minutes and self.step - start_step == 100:
                    calib = (self.step, self.wall)  # after warm-up (cudnn autotuning, allocator)
                if cfg.max_minutes and self.step - start_step == 300:
                    cfg = self._fit_steps_to_time(wall0, *calib)
                    if bar is not None:
                        bar.total = cfg.max_steps
                if cfg.max_minutes and self.step % cfg.log_every == 0 and self._time_up(wall0):
                    stop_reason = "max_minutes"
                    break
        except KeyboardInterrupt:
            stop_reason = "interrupted"
            if main:
                print(f"\ninterrupted at step {self.step}: saving a checkpoint", file=sys.stderr)
        finally:
            if bar is not None:
                bar.close()
        if main:
            self.checkpoint()
        val = self.validation_loss() if main else float("nan")
        return {"step": self.step, "stop": stop_reason, "val_loss": val, "wall_s": self.wall}

    def _fit_steps_to_time(self, wall0: float, calib_step: int, calib_wall: float) -> TrainConfig:
        """With a time limit, shorten ``max_steps`` to what fits, so the cosine decay completes."""
        rate = (self.step - calib_step) / max(self.wall - calib_wall, 1e-6)
        fit = self.step + int(rate * (self.cfg.max_minutes * 60 - (self.wall - wall0)) * 0.97)
        steps = torch.tensor([float(min(self.cfg.max_steps, fit))], device=self.device)
        if _world() > 1:
            dist.broadcast(steps, src=0)
        self.cfg = dataclasses.replace(self.cfg, max_steps=int(steps.item()))
        if _rank() == 0:
            print(f"\n{rate:.1f} steps/s: max_steps set to {self.cfg.max_steps} to fit "
                  f"{self.cfg.max_minutes} min", file=sys.stderr)
        return self.cfg

    def _time_up(self, wall0: float) -> bool:
        """Rank 0's clock decides, so every DDP rank stops after the same step."""
        up = torch.tensor([float(self.wall - wall0 > self.cfg.max_minutes * 60)], device=self.device)
        if _world() > 1:
            dist.broadcast(up, src=0)
        return bool(up.item())

    def checkpoint(self) -> None:
        self.save_training_state(self.out_dir / "last.safetensors")
        self.export(self.out_dir / "ema.safetensors")


def prepare_out_dir(out: Path) -> None:
    """Create ``out`` and prove it is writable, before any expensive work."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise InputError(f"cannot write to output folder {out}: {err.strerror or err}") from None
