"""``hueshift colorize-image IN... -o OUT``: one input -> OUT is the file; several -> OUT is a folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from .colorize import SampleOptions, colorize_image, get_model
from .data import is_grey
from .diffusion import Sampler
from .errors import InputError
from .upscale import Upscale


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that samples colour."""
    p.add_argument("--model", default=None, help="HueShift .safetensors checkpoint (default: the shipped model)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same colours")
    p.add_argument("--steps", type=int, default=25, help="diffusion sampling steps (default 25)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale: higher = more vivid, more decided colours "
                        "(default: the model's own; 1 = off)")
    p.add_argument("--sampler", choices=[s.value for s in Sampler], default=Sampler.DDIM.value)
    p.add_argument("--upscale", choices=[u.value for u in Upscale], default=Upscale.GUIDED.value,
                   help="chroma upscale: guided (edge-aware, default) or bicubic (the original's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="image files (any size; colour images are turned grey first)")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder (several)")
    add_model_arguments(p)


def read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InputError(f"{path} is not a readable image (PNG, JPEG, BMP, WebP, TIFF)")
    if img.dtype != np.uint8:
        img = (img / (65535.0 if img.dtype == np.uint16 else max(1.0, float(img.max())))* 255).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Atomic PNG/JPEG write: a temporary file in the same folder, renamed when complete."""
    ext = path.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot encode an image as {ext}: use .png or .jpg")
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, path)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def run(args: argparse.Namespace) -> int:
    inputs = [Path(p) for p in args.inputs]
    out = Path(args.output)
    if len(inputs) == 1 and not out.is_dir():
        targets = [out if out.suffix else out.with_suffix(".png")]
        if not targets[0].parent.exists():
            raise InputError(f"output folder {targets[0].parent} does not exist")
    else:
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} is a file: with several inputs, -o must be a folder")
        out.mkdir(parents=True, exist_ok=True)
        stems = [p.stem for p in inputs]
        if len(set(stems)) != len(stems):
            raise InputError("two inputs have the same name stem: their outputs would overwrite each other")
        targets = [out / f"{p.stem}.png" for p in inputs]
    images = [read_image(p) for p in inputs]  # fail before any sampling on a bad input
    model = get_model(args.model, args.device)
    options = SampleOptions(steps=args.steps, sampler=Sampler(args.sampler), seed=args.seed,
                            guidance=args.guidance)
    for src, img, dst in zip(inputs, images, targets):
        if img.ndim == 3 and not is_grey(img):
            print(f"{src}: colour image, turned grey first", file=sys.stderr)
        write_image(dst, colorize_image(img, model, options=options, upscale=args.upscale))
        print(dst)
    return 0

