"""Training images: 64x64 RGB crops from zip shards, image folders or video files.

Everything is decoded once into one ``uint8`` tensor ``[N, S, S, 3]`` (RGB, S = crop
size; 60,000 64x64 photos take 737 MB); augmentation (random crop offsets are fixed at
load, flips at batch time) and the LAB conversion run per batch on the training device
(:func:`batch_to_model_space`).

Bad data never stops a long job silently: a missing or corrupt shard is an error naming
the file; an unreadable or grey image inside a good source is skipped and counted in
:attr:`ImageSet.skipped`.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import InputError
from ..model.lab import (  # is_grey at GREY_THRESHOLD: how the shipped data set was filtered
    is_grey,
    normalize_ab,
    normalize_l,
    rgb_to_lab,
)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


@dataclass
class ImageSet:
    """Decoded training images: ``images`` uint8 ``[N, S, S, 3]`` RGB, and what was skipped."""

    images: torch.Tensor
    names: list[str]
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def split(self, holdout: int) -> tuple["ImageSet", "ImageSet"]:
        """(train, held-out): the last ``holdout`` images are held out."""
        if holdout < 0 or holdout >= len(self):
            raise InputError(f"cannot hold out {holdout} of {len(self)} images")
        n = len(self) - holdout
        return (ImageSet(self.images[:n], self.names[:n], self.skipped),
                ImageSet(self.images[n:], self.names[n:], Counter()))


def _fit_crop(rgb: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Resize so the short side is ``size`` (area filter when shrinking), then a random ``size`` crop."""
    h, w = rgb.shape[:2]
    if min(h, w) != size:
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (nw, nh), interpolation=interp)
        h, w = nh, nw
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    return rgb[y:y + size, x:x + size]


def _decode(data: bytes) -> np.ndarray | None:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        return None
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def _iter_zip(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(f"{path} is not a valid zip shard (corrupt or truncated): re-copy it or leave it out") from None
    with zf:
        names = [n for n in zf.namelist() if Path(n).suffix.lower() in IMAGE_EXTS]
        if not names:
            raise InputError(f"zip shard {path} holds no images ({IMAGE_EXTS})")
        for n in names:
            try:
                yield f"{path.name}/{n}", zf.read(n)
            except (zipfile.BadZipFile, OSError, EOFError):
                yield f"{path.name}/{n}", b""


def _iter_video(path: Path, every: int) -> Iterator[tuple[str, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"cannot open video {path}: is it a video file?")
    i = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                yield f"{path.name}#{i}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise InputError(f"video {path} has no readable frames")


def _expand(sources: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        if not p.exists():
            raise InputError(f"training data not found: {p}")
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS | {".zip"})
            if not found:
                raise InputError(f"folder {p} holds no images, videos or zip shards")
            files.extend(found)
        else:
            files.append(p)
    return files


def load_images(sources: Sequence[str | Path], size: int = 64, *, max_images: int | None = None,
                video_every: int = 10, seed: int = 0, skip_grey: bool = True) -> ImageSet:
    """Decode every image of ``sources`` (zip shards, image files, folders, videos) to ``size`` crops.

    Video files contribute every ``video_every``-th frame. Grey images (no colour to learn)
    and unreadable ones are skipped and counted. Raises :class:`InputError` when a source is
    missing or corrupt, or when nothing usable is left.
    """
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    names: list[str] = []
    skipped: Counter = Counter()

    def add(name: str, rgb: np.ndarray | None) -> None:
        if rgb is None or rgb.ndim != 3 or min(rgb.shape[:2]) < 8:
            skipped["unreadable"] += 1
            return
        if skip_grey and is_grey(rgb):
            skipped["grey"] += 1
            return
        out.append(_fit_crop(rgb, size, rng))
        names.append(name)

    for path in _expand(sources):
        suffix = path.suffix.lower()
        if suffix == ".zip":
            for name, data in _iter_zip(path):
                add(name, _decode(data) if data else None)
                if max_images and len(out) >= max_images:
                    break
        elif suffix in VIDEO_EXTS:
            for name, rgb in _iter_video(path, video_every):
                add(name, rgb)
                if max_images and len(out) >= max_images:
                    break
        elif suffix in IMAGE_EXTS:
            add(path.name, _decode(path.read_bytes()))
        else:
            raise InputError(f"unsupported training file {path}: use zip shards, images or videos")
        if max_images and len(out) >= max_images:
            break
    if not out:
        raise InputError(f"no usable colour images in {list(map(str, sources))} (skipped: {dict(skipped)})")
    return ImageSet(torch.from_numpy(np.stack(out)), names, skipped)


def batch_to_model_space(rgb_uint8: torch.Tensor, *, flip: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 RGB ``[B, H, W, 3]`` -> (normalised L ``[B, 1, H, W]`` in [-1, 1],
    normalised ab ``[B, 2, H, W]`` in about [-1, 1]), on the input's device.

    ``flip`` (bool ``[B]``) mirrors the chosen images left-right.
    """
    x = rgb_uint8.permute(0, 3, 1, 2).float() / 255.0
    if flip is not None:
        x = torch.where(flip.reshape(-1, 1, 1, 1), x.flip(-1), x)
    lab = rgb_to_lab(x)
    return normalize_l(lab[:, :1]), normalize_ab(lab[:, 1:])


def decode_bytes(data: bytes) -> np.ndarray:
    """Decode an encoded image to RGB uint8 ``[H, W, 3]``; :class:`InputError` if it is not an image."""
    img = _decode(data)
    if img is None:
        raise InputError("not a readable image")
    return img
