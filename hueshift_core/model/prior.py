"""The colour prior: a small convolutional network that predicts, for each 4x4 patch of the working
frame, a distribution over quantised ab colours, and decodes it to ab by the annealed mean
(Zhang, Isola & Efros 2016, "Colorful Image Colorization").

Why it exists: a direct per-patch colour loss teaches scene colours (blue sky, green fields, warm
skin) on a CPU in minutes, where the diffusion loss spends most of its signal denoising at noise
levels where L barely matters. The diffusion sampler is anchored on the prior's ab
(:mod:`hueshift_core.model.sampling`).

Shapes and ranges:

* input ``l_norm`` ``[B, 1, H, W]``: normalised L in [-1, 1] (:func:`~.lab.normalize_l`), any size of
  at least 16x16 (padded inside to multiples of 16; the working sizes are 64x112, 64x88, 64x64 ...);
* optional hints ``hint_ab`` ``[B, 2, H, W]`` (normalised ab, about [-1, 1]) and ``hint_mask``
  ``[B, 1, H, W]`` (1 where a hint is given, else 0); zeros mean "no hints" (Zhang et al. 2017,
  "Real-Time User-Guided Image Colorization with Learned Deep Priors");
* output logits ``[B, Q, ceil(H/4), ceil(W/4)]`` over the ``Q`` in-gamut bins of a 10-unit grid in
  a, b in [-110, 110]; :meth:`ColourPrior.decode` gives normalised ab ``[B, 2, H, W]``.

Image-level context: the coarsest features are pooled over the whole frame and fed back as a
per-channel bias at every decoder level, so a patch knows whether it sits in a landscape or a room.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, InputError
from .lab import AB_SCALE

BIN_SIZE = 10.0
AB_RANGE = 110.0
PRIOR_HUES = ("annealed", "mean")  # how ColourPrior.decode picks the hue (see there)
MAX_NEUTRAL = 20.0  # CIELAB chroma units: the most ColourPrior.decode's ``neutral`` may take off
MIN_VIDEO_CHROMA, MAX_VIDEO_CHROMA = 0.5, 3.0  # PriorDecoding.video_chroma's bounds (and SampleOptions.lift's)
MAX_VIDEO_TARGET = 100.0  # CIELAB chroma units: PriorDecoding.video_target's bound (SampleOptions.lift's)


@dataclass(frozen=True)
class PriorDecoding:
    """How a shipped colour prior is read: stored in the model file's metadata (``hueshift.prior_*``), used by
    :func:`hueshift_core.model.sampling.prior_ab`. A field a file lacks takes its default here, which is how
    the files from before it were read (so an older model colours exactly as it shipped).

    * ``temperature``, ``balance``, ``hue``: :meth:`ColourPrior.decode`'s (annealed-mean temperature, share of the
      class rebalancing undone, how the hue is picked);
    * ``side``: short side of the closer look at L beside the working size's (64: none; hueshift-v4 on);
    * ``flip``: each look also sees L mirrored left-right, its logits mirrored back and averaged (hueshift-v5 on);
    * ``neutral``: CIELAB chroma units taken off every decoded colour, and faint colour under it made grey
      (:meth:`ColourPrior.decode`; 0: none, as before hueshift-v6);
    * ``video_chroma``, ``video_target``: the video path's saturation (:func:`hueshift_core.model.sampling.for_video`,
      :func:`~hueshift_core.model.sampling.lift_gain`): each video frame's colour is scaled up so its mean CIELAB
      chroma nears ``video_target``, by at most ``video_chroma`` (``video_target`` 0: by ``video_chroma``
      everywhere). The prior is less sure of itself on video frames (softer, darker, smaller objects than in
      photos), so its colour there comes out greyer; a frame it already colours boldly is left as it is. Chosen
      on the development clips, as the rest is on the tuning photos (``video_chroma`` 1: none, as before
      hueshift-v8).
    """

    temperature: float = 0.38
    balance: float = 0.0
    hue: str = "annealed"
    side: int = 64
    flip: bool = False
    neutral: float = 0.0
    video_chroma: float = 1.0
    video_target: float = 0.0

    def __post_init__(self) -> None:
        if not 0.01 <= self.temperature <= 2.0:
            raise InputError(f"colour-prior temperature {self.temperature} outside [0.01, 2]")
        if not 0.0 <= self.balance <= 1.0:
            raise InputError(f"colour-prior balance {self.balance} outside [0, 1]")
        if self.hue not in PRIOR_HUES:
            raise InputError(f"colour-prior hue {str(self.hue)[:40]!r} is not one of {PRIOR_HUES}")
        if not 16 <= self.side <= 1024 or self.side % 8:
            raise InputError(f"colour-prior side {self.side} is not a multiple of 8 from 16 to 1024")
        if not 0.0 <= self.neutral <= MAX_NEUTRAL:
            raise InputError(f"colour-prior neutral {self.neutral} outside [0, {MAX_NEUTRAL:g}] (CIELAB chroma units)")
        if not MIN_VIDEO_CHROMA <= self.video_chroma <= MAX_VIDEO_CHROMA:
            raise InputError(f"colour-prior video chroma {self.video_chroma} outside "
                             f"[{MIN_VIDEO_CHROMA:g}, {MAX_VIDEO_CHROMA:g}]")
        if not 0.0 <= self.video_target <= MAX_VIDEO_TARGET:
            raise InputError(f"colour-prior video target {self.video_target} outside [0, {MAX_VIDEO_TARGET:g}] "
                             "(CIELAB chroma units)")

    def metadata(self) -> dict[str, str]:
        return {"hueshift.prior_temperature": repr(float(self.temperature)),
                "hueshift.prior_balance": repr(float(self.balance)), "hueshift.prior_hue": self.hue,
                "hueshift.prior_side": str(int(self.side)), "hueshift.prior_flip": "1" if self.flip else "0",
                "hueshift.prior_neutral": repr(float(self.neutral)),
                "hueshift.prior_video_chroma": repr(float(self.video_chroma)),
                "hueshift.prior_video_target": repr(float(self.video_target))}

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "PriorDecoding":
        """From a file's metadata (absent fields: the defaults); InputError or ValueError when malformed."""
        d = cls()
        flip = meta.get("hueshift.prior_flip", "0")
        if flip not in ("0", "1"):
            raise ValueError(f"prior_flip must be 0 or 1, got {flip[:20]!r}")
        return cls(temperature=float(meta.get("hueshift.prior_temperature", d.temperature)),
                   balance=float(meta.get("hueshift.prior_balance", d.balance)),
                   hue=meta.get("hueshift.prior_hue", d.hue), side=int(meta.get("hueshift.prior_side", d.side)),
                   flip=flip == "1", neutral=float(meta.get("hueshift.prior_neutral", d.neutral)),
                   video_chroma=float(meta.get("hueshift.prior_video_chroma", d.video_chroma)),
                   video_target=float(meta.get("hueshift.prior_video_target", d.video_target)))


@lru_cache(maxsize=None)
def gamut_bins(bin_size: float = BIN_SIZE) -> np.ndarray:
    """Centres ``[Q, 2]`` (CIELAB a, b) of the grid bins that some sRGB colour falls into."""
    import cv2

    n = int(round(2 * AB_RANGE / bin_size))
    v = np.linspace(0, 1, 33, dtype=np.float32)
    rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 1, 3)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    idx = np.clip(np.floor((lab[:, 1:] + AB_RANGE) / bin_size).astype(int), 0, n - 1)
    used = np.zeros((n, n), bool)
    used[idx[:, 0], idx[:, 1]] = True
    ia, ib = np.nonzero(used)
    return np.stack([ia, ib], 1).astype(np.float32) * bin_size - AB_RANGE + bin_size / 2


@dataclass(frozen=True)
class PriorConfig:
    """Shape of the prior network. Frozen, JSON-serialisable, stored in every checkpoint."""

    widths: tuple[int, ...] = (24, 48, 96, 192)  # channels at 1/2, 1/4, 1/8, 1/16 of the input
    blocks: tuple[int, ...] = (0, 1, 2, 2)  # residual blocks at each of those levels
    decoder_blocks: int = 1  # residual blocks after each upsampling step
    hint_channels: bool = True  # takes hint ab + mask inputs
    bin_size: float = BIN_SIZE

    def __post_init__(self) -> None:
        if len(self.widths) != 4 or len(self.blocks) != 4:
            raise InputError("PriorConfig needs four widths and four block counts (1/2 .. 1/16)")
        if any(w < 8 or w > 1024 for w in self.widths) or any(b < 0 or b > 8 for b in self.blocks):
            raise InputError(f"PriorConfig out of range: widths {self.widths}, blocks {self.blocks}")
        if not 2.0 <= self.bin_size <= 40.0:
            raise InputError(f"bin_size must be in [2, 40], got {self.bin_size}")

    @property
    def in_channels(self) -> int:
        return 4 if self.hint_channels else 1

    @property
    def num_bins(self) -> int:
        return len(gamut_bins(self.bin_size))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PriorConfig":
        try:
            raw = json.loads(text)
            fields = {f.name for f in dataclasses.fields(cls)}
            unknown = set(raw) - fields
            if unknown:
                raise CheckpointError(f"unknown prior config fields {sorted(unknown)}")
            for k in ("widths", "blocks"):
                if k in raw:
                    raw[k] = tuple(raw[k])
            return cls(**raw)
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"invalid prior config: {err}") from None


def _conv_bn(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class _Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus the input, ReLU."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.a, self.b = _conv_bn(ch, ch), _conv_bn(ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(F.relu(self.a(x))))


class ColourPrior(nn.Module):
    """L (and optional hints) -> per-patch colour distribution. See the module docstring."""

    def __init__(self, config: PriorConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or PriorConfig()
        w = c.widths
        cin = c.in_channels
        self.levels = nn.ModuleList()
        for i, (ch, nb) in enumerate(zip(w, c.blocks)):
            self.levels.append(nn.Sequential(_conv_bn(cin, ch, stride=2), nn.ReLU(inplace=True),
                                             *[_Block(ch) for _ in range(nb)]))
            cin = ch
        # global context: pooled coarsest features -> a bias for each decoder level
        self.context = nn.Sequential(nn.Linear(w[3], w[3]), nn.ReLU(inplace=True))
        self.ctx8 = nn.Linear(w[3], w[2])
        self.ctx4 = nn.Linear(w[3], w[1])
        self.up8 = _conv_bn(w[3], w[2], k=1)
        self.dec8 = nn.Sequential(*[_Block(w[2]) for _ in range(c.decoder_blocks)])
        self.up4 = _conv_bn(w[2], w[1], k=1)
        self.dec4 = nn.Sequential(*[_Block(w[1]) for _ in range(c.decoder_blocks)])
        self.head = nn.Conv2d(w[1], c.num_bins, 1)
        self.register_buffer("bins", torch.from_numpy(gamut_bins(c.bin_size)) / AB_SCALE, persistent=False)
        # log of the class-rebalancing weights the network was trained with (0 = none): the trained softmax is
        # q(c) ∝ w(c) p(c), so subtracting balance * log w moves it back towards the calibrated p(c) (decode)
        self.register_buffer("log_weights", torch.zeros(c.num_bins))

    def forward(self, l_norm: torch.Tensor, hint_ab: torch.Tensor | None = None,
                hint_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, Q, H/4, W/4]``."""
        if l_norm.dim() != 4 or l_norm.shape[1] != 1:
            raise InputError(f"the colour prior needs L as [B, 1, H, W], got {tuple(l_norm.shape)}")
        h, w = l_norm.shape[-2:]
        if h < 16 or w < 16:
            raise InputError(f"the colour prior needs sides of at least 16 pixels, got {h}x{w}")
        x = l_norm
        if self.config.hint_channels:
            if hint_ab is None:
                hint_ab = l_norm.new_zeros(l_norm.shape[0], 2, h, w)
                hint_mask = l_norm.new_zeros(l_norm.shape[0], 1, h, w)
            x = torch.cat([l_norm, hint_ab * hint_mask, hint_mask], 1)
        ph, pw = -h % 16, -w % 16
        if ph or pw:  # the four stride-2 levels need multiples of 16: pad by replication, crop the logits
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        ctx = self.context(x.mean((2, 3)))
        y = F.interpolate(self.up8(x), scale_factor=2, mode="nearest") + feats[2] + self.ctx8(ctx)[:, :, None, None]
        y = self.dec8(F.relu(y))
        y = F.interpolate(self.up4(y), scale_factor=2, mode="nearest") + feats[1] + self.ctx4(ctx)[:, :, None, None]
        y = self.dec4(F.relu(y))
        return self.head(y)[:, :, :(h + 3) // 4, :(w + 3) // 4]

    def decode(self, logits: torch.Tensor, temperature: float = 0.38, size: tuple[int, int] | None = None,
               balance: float = 0.0, hue: str = "annealed", neutral: float = 0.0) -> torch.Tensor:
        """Annealed mean of logits ``[B, Q, h, w]`` -> normalised ab ``[B, 2, h, w]`` (or at ``size``,
        bilinear). ``temperature`` 1 is the mean, towards 0 the mode (more saturated). ``balance`` in [0, 1]
        undoes that share of the training's class rebalancing (1: the calibrated distribution, fewer bold
        mistakes; 0: as trained, favouring rare, vivid colours). ``hue``: "annealed" takes the annealed mean as
        it is; "mean" keeps its chroma but turns it to the hue of the calibrated mean (temperature 1,
        balance 1: the least-squares colour), which is less often the wrong hue where the network is torn
        between two (docs/model-card.md measures both). ``neutral`` (CIELAB chroma units): a soft threshold on
        the chroma, ``ab · max(0, 1 − neutral / |ab|)``: every colour loses ``neutral`` units of chroma and keeps
        its hue, and the faint casts under it (a warm tint on asphalt, a wall, a grey sky) become grey, where a
        wrong faint tint costs more than it gains (measured: docs/model-card.md)."""
        if not 0.01 <= temperature <= 2.0:
            raise InputError(f"prior temperature must be in [0.01, 2], got {temperature}")
        if not 0.0 <= balance <= 1.0:
            raise InputError(f"prior balance must be in [0, 1], got {balance}")
        if hue not in PRIOR_HUES:
            raise InputError(f"prior hue must be one of {PRIOR_HUES}, got {hue!r}")
        if not 0.0 <= neutral <= MAX_NEUTRAL:
            raise InputError(f"prior neutral must be in [0, {MAX_NEUTRAL:g}] CIELAB units, got {neutral}")
        logits = logits.float()
        ab = self._annealed(logits, temperature, balance)
        if hue == "mean":
            mean = self._annealed(logits, 1.0, 1.0)
            norm = mean.norm(dim=1, keepdim=True)
            # the mean's direction with the annealed chroma; a near-grey mean (under 2 CIELAB units) fades it out
            ab = mean / norm.clamp_min(2.0 / AB_SCALE) * ab.norm(dim=1, keepdim=True)
        if neutral > 0:
            chroma = ab.norm(dim=1, keepdim=True)
            ab = ab * (1.0 - (neutral / AB_SCALE) / chroma.clamp_min(1e-6)).clamp_min(0.0)
        if size is not None and tuple(ab.shape[-2:]) != tuple(size):
            ab = F.interpolate(ab, size=size, mode="bilinear", align_corners=False)
        return ab

    def _annealed(self, logits: torch.Tensor, temperature: float, balance: float) -> torch.Tensor:
        if balance:
            logits = logits - balance * self.log_weights.float()[None, :, None, None]
        p = torch.softmax(logits / temperature, dim=1)
        return torch.einsum("bqhw,qc->bchw", p, self.bins.float())

    @torch.no_grad()
    def predict(self, l_norm: torch.Tensor, hint_ab: torch.Tensor | None = None,
                hint_mask: torch.Tensor | None = None, temperature: float = 0.38, balance: float = 0.0,
                hue: str = "annealed", size: tuple[int, int] | None = None, neutral: float = 0.0) -> torch.Tensor:
        """Normalised L ``[B, 1, H, W]`` -> normalised ab ``[B, 2, H, W]`` (or at ``size``; one pass, no sampling)."""
        logits = self(l_norm, hint_ab, hint_mask)
        return self.decode(logits, temperature, size=size or tuple(l_norm.shape[-2:]), balance=balance,
                           hue=hue, neutral=neutral).to(l_norm.dtype)


def soft_targets(ab_norm: torch.Tensor, bins: torch.Tensor, sigma: float = 5.0, k: int = 5) -> torch.Tensor:
    """Soft-encoded target ``[B, Q, h, w]`` of normalised ab ``[B, 2, h, w]``: a Gaussian (``sigma`` in
    CIELAB units) over the ``k`` nearest bins, summing to 1 (Zhang et al. 2016's soft encoding)."""
    b, _, h, w = ab_norm.shape
    x = ab_norm.permute(0, 2, 3, 1).reshape(-1, 2) * AB_SCALE
    d2 = torch.cdist(x, bins * AB_SCALE).square()
    val, idx = d2.topk(k, dim=1, largest=False)
    wts = torch.softmax(-val / (2 * sigma * sigma), dim=1)
    out = torch.zeros(x.shape[0], bins.shape[0], dtype=x.dtype, device=x.device)
    out.scatter_(1, idx, wts)
    return out.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def rebalance_weights(counts: torch.Tensor, bins: torch.Tensor, lam: float = 0.5, sigma: float = 5.0
                      ) -> torch.Tensor:
    """Per-bin loss weights ``[Q]`` against the common greys: ``w ∝ ((1 - lam) p̃ + lam / Q)^-1`` with
    ``p̃`` the bin frequencies smoothed by a Gaussian of ``sigma`` CIELAB units, scaled so ``E_p[w] = 1``."""
    p = counts.double() / counts.sum().clamp_min(1)
    c = bins.double() * AB_SCALE
    k = torch.exp(-torch.cdist(c, c).square() / (2 * sigma * sigma))
    ps = k @ p
    ps = ps / ps.sum()
    wts = 1.0 / ((1 - lam) * ps + lam / len(p))
    wts = wts / (p * wts).sum()
    return wts.float()


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
