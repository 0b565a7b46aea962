"""The colour UNet: predicts the noise (or v) of the a/b chroma, conditioned on L.

Input ``x`` is the noisy normalised ab ``[B, 2, H, W]`` (about [-1, 1] at t=0, unit
Gaussian at t=T), ``t`` the timestep ``[B]`` (float, 0..T-1), and ``cond`` the
condition ``[B, 1 + extra_cond_channels, H, W]`` whose first channel is normalised L
in [-1, 1] (see :mod:`hueshift_core.model.lab`). They are concatenated on channels
(the condition-by-concatenation of SR3 / guided-diffusion's ``SuperResModel``).

Sides of ``H`` and ``W`` must be multiples of ``2 ** (len(channel_mults) - 1)``
(8 for the default), so a 64x64 crop and a 64x112 16:9 frame both work.
Architecture: DDPM/ADM-style residual blocks with GroupNorm and a sinusoidal timestep
embedding (Ho et al. 2020; Nichol & Dhariwal 2021), self-attention only at the low
resolutions through :func:`torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import CheckpointError, InputError


@dataclass(frozen=True)
class UNetConfig:
    """Shape of the network. Frozen, JSON-serialisable, stored in every checkpoint."""

    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 3, 5)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (2, 3)  # 0 = full resolution; the middle always has attention
    head_channels: int = 32
    groups: int = 8
    dropout: float = 0.0
    extra_cond_channels: int = 0
    out_channels: int = 2

    def __post_init__(self) -> None:
        if self.base_channels < 8 or self.base_channels % self.groups:
            raise InputError(f"base_channels={self.base_channels} must be >=8 and divisible by groups={self.groups}")
        if not self.channel_mults or any(m < 1 for m in self.channel_mults):
            raise InputError(f"channel_mults must be positive, got {self.channel_mults}")
        if any(l < 0 or l >= len(self.channel_mults) for l in self.attention_levels):
            raise InputError(f"attention_levels {self.attention_levels} outside 0..{len(self.channel_mults) - 1}")
        for level, m in enumerate(self.channel_mults):
            attn = level in self.attention_levels or level == len(self.channel_mults) - 1
            if (self.base_channels * m) % self.groups or (attn and (self.base_channels * m) % self.head_channels):
                raise InputError(
                    f"channels {self.base_channels * m} must be divisible by groups={self.groups} "
                    f"and head_channels={self.head_channels}"
                )

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** (len(self.channel_mults) - 1)

    @property
    def cond_channels(self) -> int:
        return 1 + self.extra_cond_channels

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "UNetConfig":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise CheckpointError(f"model config is not valid JSON ({err})") from None
        if not isinstance(raw, dict):
            raise CheckpointError("model config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise CheckpointError(f"unknown model config field(s) {unknown}: the file was made by another version")
        for key in ("channel_mults", "attention_levels"):
            if key in raw:
                raw[key] = tuple(raw[key])
        try:
            return cls(**raw)
        except (TypeError, InputError) as err:
            raise CheckpointError(f"invalid model config: {err}") from None


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (Vaswani et al. 2017) of ``t`` ``[B]`` -> ``[B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, plus a scale/shift from the time embedding, twice, with a skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, with a residual."""

    def __init__(self, channels: int, head_channels: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        qkv = rearrange(self.qkv(self.norm(x)), "b (three n c) h w -> three b n (h w) c", three=3, n=self.heads)
        if qkv.stride(-1) != 1:  # NCHW: channels strided; the fused CPU kernel needs them contiguous (else: math path)
            qkv = qkv.contiguous()
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(rearrange(out, "b n (h w) c -> b (n c) h w", h=h, w=w))


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, cfg: UNetConfig, attention: bool) -> None:
        super().__init__()
        self.res = ResBlock(cin, cout, emb_dim, cfg.groups, cfg.dropout)
        self.attn = Attention(cout, cfg.head_channels, cfg.groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class ColorUNet(nn.Module):
    """``forward(x [B,2,H,W], t [B], cond [B,1+extra,H,W]) -> [B,2,H,W]`` (eps or v, per checkpoint)."""

    def __init__(self, config: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.config = cfg = config
        ch = [cfg.base_channels * m for m in cfg.channel_mults]
        emb_dim = 4 * cfg.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(cfg.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(cfg.out_channels + cfg.cond_channels, ch[0], 3, padding=1)

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = []
        c = ch[0]
        for level, cl in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(Block(c, cl, emb_dim, cfg, level in cfg.attention_levels))
                c = cl
                skips.append(c)
            self.down.append(blocks)
            last = level == len(ch) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))

        self.mid1 = ResBlock(c, c, emb_dim, cfg.groups, cfg.dropout)
        self.mid_attn = Attention(c, cfg.head_channels, cfg.groups)
        self.mid2 = ResBlock(c, c, emb_dim, cfg.groups, cfg.dropout)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(ch))):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(Block(c + skips.pop(), ch[level], emb_dim, cfg, level in cfg.attention_levels))
                c = ch[level]
            self.up.append(blocks)
            self.upsample.append(nn.Conv2d(c, c, 3, padding=1) if level > 0 else nn.Identity())

        self.out_norm = nn.GroupNorm(cfg.groups, c)
        self.out = nn.Conv2d(c, cfg.out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.out_channels:
            raise InputError(f"x must be [B, {cfg.out_channels}, H, W], got {tuple(x.shape)}")
        if cond.dim() != 4 or cond.shape[1] != cfg.cond_channels or cond.shape[-2:] != x.shape[-2:]:
            raise InputError(f"cond must be [B, {cfg.cond_channels}, {x.shape[-2]}, {x.shape[-1]}], got {tuple(cond.shape)}")
        if x.shape[-2] % cfg.multiple or x.shape[-1] % cfg.multiple:
            raise InputError(f"height and width must be multiples of {cfg.multiple}, got {tuple(x.shape[-2:])}")
        t = t.reshape(-1).to(x.device)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t, cfg.base_channels).to(x.dtype))
        h = self.stem(torch.cat([x, cond.to(x.dtype)], dim=1))
        hs = []
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, emb)
                hs.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
