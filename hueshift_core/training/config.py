"""The training hyper-parameters (:class:`TrainConfig`) and the learning-rate schedule (:func:`lr_at`)."""

from __future__ import annotations

import math
from dataclasses import dataclass





@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int = 100_000
    min_lr_ratio: float = 0.1
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    log_every: int = 50
    ckpt_every: int = 1000
    sample_every: int = 1000
    val_every: int = 500
    seed: int = 0
    bf16: bool = True  # autocast on CUDA only
    max_minutes: float = 0.0  # 0 = no time limit
    cond_drop: float = 0.0  # share of samples trained without L (classifier-free guidance)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio * lr`` at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))

