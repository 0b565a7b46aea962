"""Scene-level training data: mixed sources (photos, video frames) in aspect-ratio buckets at a random
scale, with whole clips / photo groups held out for validation (:class:`SceneMix`, :func:`load_scene_mix`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import InputError
from ..model.lab import is_grey
from .data import ImageSet, _decode, _expand, _iter_zip

# ---- scene-level training: mixed sources, aspect-ratio buckets, random scale -------------------

#: The working sizes video and photos meet at inference (short side 64): 16:9, 4:3 and 1:1.
DEFAULT_BUCKETS: tuple[tuple[int, int, float], ...] = ((64, 112, 0.45), (64, 88, 0.25), (64, 64, 0.30))
MAX_UPSCALE = 1.25  # a crop may be enlarged by at most this much (small sources sit out larger buckets)


def parse_buckets(text: str) -> tuple[tuple[int, int, float], ...]:
    """``"64x112:0.45,64x64:0.55"`` -> ``((64, 112, 0.45), (64, 64, 0.55))``: crop sizes and their shares (the
    ``--buckets`` option of both trainers)."""
    try:
        out = []
        for item in text.split(","):
            size, share = item.split(":")
            h, w = size.lower().split("x")
            out.append((int(h), int(w), float(share)))
    except ValueError:
        raise InputError(f"--buckets must look like 64x112:0.45,64x64:0.55, got {text!r}") from None
    if any(h < 16 or w < 16 or p <= 0 for h, w, p in out):
        raise InputError(f"--buckets: sizes must be >= 16 and shares > 0, got {text!r}")
    return tuple(out)


def group_of(name: str) -> str:
    """The clip a training image belongs to, for a validation split by clip.

    ``davis_bear_00012.jpg`` -> ``davis_bear``; a name with fewer than three ``_`` fields is
    its own group (a photo). Frames of one clip are near-duplicates, so they must fall on one
    side of the split together.
    """
    stem = Path(name.rsplit("/", 1)[-1]).stem
    parts = stem.split("_")
    return "_".join(parts[:2]) if len(parts) >= 3 else stem


def _held_out(group: str, share: float) -> bool:
    import zlib

    return (zlib.crc32(group.encode()) % 10_000) < share * 10_000


@dataclass
class Source:
    """One training source: decoded RGB uint8 images at their stored size, and a mixing weight."""

    name: str
    images: list[np.ndarray]
    names: list[str]
    weight: float


class SceneMix:
    """Training batches that match use: whole-scene crops at video's aspect ratios.

    Each batch picks one bucket ``(h, w)`` (16:9 -> 64x112, 4:3 -> 64x88, 1:1 -> 64x64,
    by weight), then for each image a source by weight (renormalised over the sources whose
    images are large enough for that bucket, so 64x64 close-ups only fill square batches), an
    image, a random crop of that aspect covering 55-100 % of the largest such crop, area-resized
    to ``(h, w)``. Batches are a pure function of ``(seed, step, rank)``: resume is exact.
    """

    def __init__(self, sources: list[Source], buckets=DEFAULT_BUCKETS, seed: int = 0,
                 min_scale: float = 0.55) -> None:
        if not sources or not any(s.images for s in sources):
            raise InputError("scene mix has no images")
        self.sources = [s for s in sources if s.images]
        self.buckets = [(int(h), int(w), float(p)) for h, w, p in buckets]
        self.seed, self.min_scale = seed, min_scale
        self._eligible: dict[tuple[int, int], list[tuple[Source, np.ndarray, float]]] = {}
        for h, w, _ in self.buckets:
            pools = []
            for s in self.sources:
                ok = np.array([self._max_crop(img.shape[:2], h, w)[0] * MAX_UPSCALE >= h for img in s.images])
                if ok.any():
                    pools.append((s, np.flatnonzero(ok), s.weight))
            if not pools:
                raise InputError(f"no training image is large enough for {h}x{w} crops")
            self._eligible[(h, w)] = pools

    def __len__(self) -> int:
        return sum(len(s.images) for s in self.sources)

    @staticmethod
    def _max_crop(shape: tuple[int, int], h: int, w: int) -> tuple[float, float]:
        ih, iw = shape
        ch = min(float(ih), iw * h / w)
        return ch, ch * w / h

    def _crop(self, img: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        ch, cw = self._max_crop(img.shape[:2], h, w)
        lo = max(self.min_scale, min(1.0, h / MAX_UPSCALE / ch))
        s = rng.uniform(lo, 1.0) if lo < 1.0 else 1.0
        ch, cw = max(1, int(round(ch * s))), max(1, int(round(cw * s)))
        ch, cw = min(ch, img.shape[0]), min(cw, img.shape[1])
        y = int(rng.integers(0, img.shape[0] - ch + 1))
        x = int(rng.integers(0, img.shape[1] - cw + 1))
        crop = img[y:y + ch, x:x + cw]
        interp = cv2.INTER_AREA if ch >= h else cv2.INTER_CUBIC
        out = cv2.resize(crop, (w, h), interpolation=interp)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return out

    def batch(self, step: int, size: int, rank: int = 0) -> torch.Tensor:
        """uint8 RGB ``[size, h, w, 3]`` for training step ``step``."""
        rng = np.random.default_rng([self.seed, step, rank])
        p = np.array([b[2] for b in self.buckets])
        h, w, _ = self.buckets[int(rng.choice(len(self.buckets), p=p / p.sum()))]
        pools = self._eligible[(h, w)]
        pw = np.array([q[2] for q in pools])
        picks = rng.choice(len(pools), size=size, p=pw / pw.sum())
        out = np.empty((size, h, w, 3), np.uint8)
        for i, k in enumerate(picks):
            src, idx, _ = pools[int(k)]
            out[i] = self._crop(src.images[int(idx[rng.integers(len(idx))])], h, w, rng)
        return torch.from_numpy(out)

    def describe(self) -> dict:
        return {"sources": {s.name: {"images": len(s.images), "weight": s.weight} for s in self.sources},
                "buckets": [f"{h}x{w}:{p}" for h, w, p in self.buckets], "min_scale": self.min_scale}


def load_scene_mix(sources: Sequence[str | Path], weights: Sequence[float], *, holdout_share: float = 0.06,
                   buckets=DEFAULT_BUCKETS, seed: int = 0, max_side: int = 160,
                   val_size: tuple[int, int] = (64, 112), max_per_source: int | None = None,
                   min_scale: float = 0.55) -> tuple[SceneMix, ImageSet, list[str]]:
    """Decode zip shards (or folders) once at their stored size (long side capped at ``max_side``
    x 16/9), split by clip: (training mix, validation crops at ``val_size`` (centre, full
    scene), held-out group names). Grey images are skipped. ``min_scale`` in (0, 1]: the smallest training crop
    as a share of the largest of its aspect (:class:`SceneMix`); checked before anything is decoded."""
    if len(weights) != len(sources):
        raise InputError(f"{len(sources)} sources but {len(weights)} weights")
    if not 0.0 < min_scale <= 1.0:
        raise InputError(f"min_scale must be in (0, 1], got {min_scale}")
    vh, vw = val_size
    mix_sources: list[Source] = []
    val_imgs: list[np.ndarray] = []
    val_names: list[str] = []
    held: set[str] = set()
    for src, wt in zip(sources, weights):
        imgs: list[np.ndarray] = []
        names: list[str] = []
        for path in _expand([src]):
            items = _iter_zip(path) if path.suffix.lower() == ".zip" else [(path.name, path.read_bytes())]
            for name, data in items:
                rgb = _decode(data) if data else None
                if rgb is None or min(rgb.shape[:2]) < 32 or is_grey(rgb):
                    continue
                sh = min(rgb.shape[:2])
                if sh > max_side:  # never needed larger: crops are >= 55 % of the short side, area-down to 64
                    f = max_side / sh
                    rgb = cv2.resize(rgb, (round(rgb.shape[1] * f), round(rgb.shape[0] * f)),
                                     interpolation=cv2.INTER_AREA)
                g = group_of(name)
                if holdout_share and _held_out(g, holdout_share):
                    held.add(g)
                    ch, cw = SceneMix._max_crop(rgb.shape[:2], vh, vw)
                    if ch * MAX_UPSCALE >= vh:
                        y, x = int((rgb.shape[0] - ch) // 2), int((rgb.shape[1] - cw) // 2)
                        crop = rgb[y:y + int(ch), x:x + int(cw)]
                        val_imgs.append(cv2.resize(crop, (vw, vh), interpolation=cv2.INTER_AREA))
                        val_names.append(name)
                    continue
                imgs.append(rgb)
                names.append(name)
                if max_per_source and len(imgs) >= max_per_source:
                    break
        mix_sources.append(Source(Path(src).name, imgs, names, float(wt)))
    mix = SceneMix(mix_sources, buckets, seed=seed, min_scale=min_scale)
    if not val_imgs:
        raise InputError("the validation split is empty: raise holdout_share or add 16:9-sized sources")
    # Interleave sources in the validation set so its first images are not all one clip.
    order = np.random.default_rng(seed).permutation(len(val_imgs))
    val = ImageSet(torch.from_numpy(np.stack([val_imgs[i] for i in order])), [val_names[i] for i in order])
    return mix, val, sorted(held)
