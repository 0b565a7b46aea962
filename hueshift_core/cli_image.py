"""``hueshift colorize-image IN... -o OUT``: one input -> OUT is the file; several -> OUT is a folder."""

from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

import cv2
import numpy as np

from .colorize import SampleOptions, colorize_image, get_model, guidance_scale, resolve_device
from .data import is_grey
from .diffusion import Sampler
from .errors import HueShiftError, InputError
from .outputs import atomic_write_bytes, check_input_file, check_output
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what is written, by extension
MAX_PIXELS = 8192 * 8192  # larger images (or headers that claim to be: decompression bombs) are refused


def _header_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP or GIF header, without decoding; None if not found."""
    b = data[:65536].tobytes()
    if b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) >= 24:
        return struct.unpack(">II", b[16:24])
    if b[:2] == b"BM" and len(b) >= 26:
        w, h = struct.unpack("<ii", b[18:26])
        return abs(w), abs(h)
    if b[:4] == b"GIF8" and len(b) >= 10:
        return struct.unpack("<HH", b[6:10])
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(b):
            if b[i] != 0xFF:
                i += 1
                continue
            marker = b[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", b[i + 2:i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", b[i + 5:i + 9])
                return w, h
            i += 2 + length
    return None


def read_image(path: Path) -> np.ndarray:
    """An image file -> uint8 RGB ``[H, W, 3]`` or grey ``[H, W]``, upright (EXIF orientation applied)."""
    path = check_input_file(path, "image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise InputError(f"cannot read image {path}: {err.strerror or err}") from None
    size = _header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise InputError(f"{path} claims to be {size[0]}x{size[1]} pixels: images above {MAX_PIXELS // 10**6} "
                         "megapixels are refused (a damaged or hostile file?); downscale it first")
    try:
        # ANYCOLOR|ANYDEPTH (not UNCHANGED): EXIF orientation is applied, as viewers show the photo
        img = cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    except cv2.error:
        img = None
    if img is None:
        raise InputError(f"{path} is not a readable image (PNG, JPEG, BMP, WebP, TIFF): it is damaged, cut "
                         "short or another kind of file")
    if img.size == 0 or img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise InputError(f"{path} is {img.shape[1]}x{img.shape[0]} pixels: give 1 to {MAX_PIXELS // 10**6} "
                         "megapixels")
    if img.dtype != np.uint8:
        img = img.astype(np.float64)
        if not np.isfinite(img).all():
            raise InputError(f"{path} holds NaN or infinite pixel values: it cannot be shown as an image")
        top = 65535.0 if data.dtype == np.uint16 or img.max() > 255 else max(1.0, float(img.max()))
        img = (np.clip(img, 0, None) / top * 255).clip(0, 255).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def check_image_output(path: Path, inputs: list[Path]) -> Path:
    """Everything about an output image checkable before sampling: extension, name, folder, not an input."""
    check_output(path, inputs=inputs, suffixes=[s for s in IMAGE_SUFFIXES if cv2.haveImageWriter("x" + s)],
                 what="output image", temp_name=f".{path.name}.partial")
    return path


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Atomic PNG/JPEG/... write: a temporary file in the same folder, renamed when complete."""
    ext = path.suffix.lower() or ".png"
    try:
        ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(f"cannot encode an image as {ext}: use .png or .jpg")
    atomic_write_bytes(path, buf.tobytes(), "output image")


def run(args: argparse.Namespace) -> int:
    """One input: errors stop the command. Several: a bad one is reported, the rest are done, a summary
    ends the run, and the exit status is 2 if any failed."""
    prefix = "hueshift colorize-image"
    inputs = [Path(p) for p in args.inputs]
    out = Path(args.output)
    options = SampleOptions(steps=args.steps, sampler=Sampler(args.sampler), seed=args.seed,
                            guidance=args.guidance)
    device = resolve_device(args.device)
    as_folder = args.output.endswith(("/", os.sep))  # "-o results/": a folder, even for one input
    if len(inputs) == 1 and not out.is_dir() and not as_folder:
        exists = out.exists() or out.is_symlink()  # an existing name (/dev/null...) is checked as given
        dst = check_image_output(out if out.suffix or exists else out.with_suffix(".png"), inputs)
        img = read_image(inputs[0])
        model = get_model(args.model, device)
        _colorize_one(inputs[0], img, dst, model, options, args.upscale)
        return 0
    # several inputs (or a folder given): -o is a folder, one <stem>.png per input
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file: with several inputs, -o must be a folder")
    stems = [p.stem for p in inputs]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise InputError(f"several inputs are named {dup[0]}.*: their outputs ({dup[0]}.png) would overwrite each "
                         "other; rename them or run them separately")
    created = not out.exists()
    if created:
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise InputError(f"output folder {parent} does not exist; create it first")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputError(f"cannot create the output folder {out}: {parent} is not writable")
    model = None
    failed: list[str] = []
    done = 0
    try:
        for src in inputs:
            try:
                img = read_image(src)
                if created and not out.exists():
                    try:
                        out.mkdir(parents=False)
                    except OSError as err:
                        raise InputError(f"cannot create the output folder {out}: {err.strerror or err}") from None
                dst = check_image_output(out / f"{src.stem}.png", inputs)
                if model is None:  # once the first input is good; a bad model or guidance stops the whole run
                    try:
                        model = get_model(args.model, device)
                        guidance_scale(model, options.guidance)
                    except HueShiftError as err:
                        raise _Fatal(err) from None
                _colorize_one(src, img, dst, model, options, args.upscale)
                done += 1
            except HueShiftError as err:
                failed.append(str(src))
                print(f"{prefix}: error: {' '.join(str(err).split())}", file=sys.stderr, flush=True)
    except _Fatal as fatal:
        raise fatal.err from None
    finally:
        if created and done == 0 and out.is_dir():
            try:
                out.rmdir()  # only if empty: nothing of ours is in it
            except OSError:
                pass
    if failed:
        print(f"{prefix}: {done} of {len(inputs)} images colorized; {len(failed)} failed: {', '.join(failed)}",
              file=sys.stderr)
        return 2
    print(f"{prefix}: {done} of {len(inputs)} images colorized into {out}", file=sys.stderr)
    return 0


class _Fatal(Exception):
    def __init__(self, err: HueShiftError) -> None:
        self.err = err


def _colorize_one(src: Path, img: np.ndarray, dst: Path, model, options: SampleOptions, upscale: str) -> None:
    if img.ndim == 3 and not is_grey(img):
        print(f"{src}: colour image, turned grey first", file=sys.stderr)
    write_image(dst, colorize_image(img, model, options=options, upscale=upscale))
    print(dst, flush=True)
