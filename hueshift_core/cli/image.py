"""``hueshift colorize-image IN... -o OUT``: one input -> OUT is the file; several -> OUT is a folder."""

from __future__ import annotations

import argparse
import os
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import HueShiftError, InputError
from ..hints import FrameColour, check_hints_file, load_user_colours, to_working
from ..images import (
    colorize_image,
    downsample_l,
    frames_to_lab,
    image_to_tensor,
    read_image,
    tensor_to_image,
    upscale_merge,
)
from ..model.checkpoint import get_model, resolve_device
from ..model.color import denormalize_ab, is_grey
from ..model.diffusion import Sampler
from ..model.sampling import SampleOptions, colour_ab, guidance_scale, make_noise, working_size
from ..model.upscale import Upscale
from ..outputs import atomic_write_bytes, check_output


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that samples colour."""
    p.add_argument("--model", default=None, help="HueShift .safetensors checkpoint (default: the shipped model)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same colours")
    d = SampleOptions()
    p.add_argument("--variety", type=float, default=d.variety,
                   help="0 = the colour prior's colour alone (one fast pass, the same every run); up to 1 = "
                        f"diffusion sampling re-noised from it that far (more varied colours; default {d.variety:g})")
    p.add_argument("--temperature", type=float, default=None,
                   help="colour prior temperature: lower = bolder, more decided colours (default: the model's own)")
    p.add_argument("--chroma", type=float, default=d.chroma,
                   help=f"scale the colour prior's saturation (default {d.chroma:g})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"diffusion sampling steps (default {d.steps})")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale: higher = more vivid, more decided colours "
                        "(default: the model's own; 1 = off)")
    p.add_argument("--guidance-interval", type=float, nargs=2, default=d.guidance_interval, metavar=("LO", "HI"),
                   help="guide only at the noise levels t/T in [LO, HI]; fewer network passes outside it "
                        f"(default {d.guidance_interval[0]:g} {d.guidance_interval[1]:g})")
    p.add_argument("--sampler", choices=[s.value for s in Sampler], default=Sampler(d.sampler).value,
                   help=f"default {Sampler(d.sampler).value}")
    p.add_argument("--upscale", choices=[u.value for u in Upscale], default=Upscale.GUIDED.value,
                   help="chroma upscale: guided (edge-aware, default) or bicubic (the original's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")


def add_colour_arguments(p: argparse.ArgumentParser, video: bool) -> None:
    """--hints and --reference: the user's colours (:mod:`hueshift_core.hints`)."""
    where = ("; optional \"frame\" (index from 0) or \"time\" (seconds) per hint" if video else "")
    p.add_argument("--hints", default=None, metavar="FILE",
                   help="colour hints: a JSON list of {\"x\": 0.42, \"y\": 0.31, \"color\": \"#b03020\"} (x, y: fractions "
                        f"of width and height; optional \"radius\", a fraction of the short side{where}), or a PNG "
                        "with transparency whose opaque pixels are hints")
    p.add_argument("--reference", action="append", default=None, metavar="IMAGE@FRAME" if video else "IMAGE",
                   help="a colour image (same aspect ratio) whose colour the output takes"
                        + (" at frame FRAME (default 0) and carries through the shot; repeatable" if video else ""))


def sample_options(args: argparse.Namespace, **more) -> SampleOptions:
    """The :class:`SampleOptions` the options of :func:`add_model_arguments` ask for (``more``: the rest)."""
    return SampleOptions(steps=args.steps, sampler=Sampler(args.sampler), seed=args.seed, guidance=args.guidance,
                         guidance_interval=tuple(args.guidance_interval), variety=args.variety,
                         temperature=args.temperature, chroma=args.chroma, **more)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="image files (any size; colour images are turned grey first)")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder (several)")
    add_model_arguments(p)
    add_colour_arguments(p, video=False)
    p.add_argument("--batch-size", type=int, default=8,
                   help="same-size images colorized together (default 8; several inputs only)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch and OpenCV (default: the CPUs other processes leave free)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what is written, by extension
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
    ends the run, and the exit status is 2 if any failed.

    Several inputs stream: a reader thread decodes ahead (at most ``2 x --batch-size`` images waiting),
    images of the same size are colorized together in batches of ``--batch-size``, a writer thread
    encodes and writes the results, and a progress bar counts them (on a terminal). Memory does not grow
    with the number of inputs. A batch gives each image the noise it would get alone (the seed's), so
    with the deterministic samplers (ddim, dpmpp_2m) results equal one-at-a-time runs within rounding;
    ddpm (random at every step) runs one image at a time."""
    prefix = "hueshift colorize-image"
    if not 1 <= args.batch_size <= 256:
        raise InputError(f"--batch-size must be 1 to 256, got {args.batch_size}")
    inputs = [Path(p) for p in args.inputs]
    out = Path(args.output)
    options = sample_options(args)
    device = resolve_device(args.device)
    as_folder = args.output.endswith(("/", os.sep))  # "-o results/": a folder, even for one input
    if len(inputs) == 1 and not out.is_dir() and not as_folder:
        exists = out.exists() or out.is_symlink()  # an existing name (/dev/null...) is checked as given
        dst = check_image_output(out if out.suffix or exists else out.with_suffix(".png"), inputs)
        img = read_image(inputs[0])
        user = load_user_colours(args.hints, args.reference, *img.shape[:2], video=False)  # checked before the model
        model = get_model(args.model, device)
        _colorize_one(inputs[0], img, dst, model, options, args.upscale, user.get(0))
        return 0
    if args.reference:
        raise InputError("--reference gives one photo its colour: use it with one input image")
    if args.hints:  # checked once before any work: a bad file stops the run
        check_hints_file(args.hints, video=False)
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
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(inputs), unit="image", desc="colorize-image", file=sys.stderr, dynamic_ncols=True,
                   disable=None)  # None: only on a terminal
    state = _ManyState(prefix, bar)
    try:
        _run_many(args, inputs, out, created, device, options, state)
    except _Fatal as fatal:
        raise fatal.err from None
    finally:
        if bar is not None:
            bar.close()
        if created and state.done == 0 and out.is_dir():
            try:
                out.rmdir()  # only if empty: nothing of ours is in it
            except OSError:
                pass
    failed, done = state.failed, state.done
    if failed:
        print(f"{prefix}: {done} of {len(inputs)} images colorized; {len(failed)} failed: {', '.join(failed)}",
              file=sys.stderr)
        return 2
    print(f"{prefix}: {done} of {len(inputs)} images colorized into {out}", file=sys.stderr)
    return 0


class _Fatal(Exception):
    def __init__(self, err: HueShiftError) -> None:
        self.err = err


class _ManyState:
    """What a several-inputs run has done: counts, failures, and where its messages go (above the bar)."""

    def __init__(self, prefix: str, bar) -> None:
        self.prefix, self.bar = prefix, bar
        self.failed: list[str] = []
        self.done = 0

    def note(self, text: str) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def fail(self, src: Path, err: HueShiftError) -> None:
        self.failed.append(str(src))
        self.note(f"{self.prefix}: error: {' '.join(str(err).split())}")
        self.tick()

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)


def _batchable(options: SampleOptions) -> bool:
    """Samplers whose result depends only on the starting noise (which a batch keeps per image)."""
    return options.sampler is Sampler.DPMPP_2M or (options.sampler is Sampler.DDIM and options.eta == 0)


def colorize_batch(images: list[np.ndarray], model, options: SampleOptions = SampleOptions(),
                   upscale: Upscale | str = Upscale.GUIDED, hints: FrameColour | None = None) -> list[np.ndarray]:
    """Colorize same-size uint8 images (``[H, W]`` or ``[H, W, 3]``) in one model batch -> uint8 RGB each.

    Every image starts from the noise it would get alone (``options.seed``), so with ddim (eta 0) or
    dpmpp_2m the colours equal :func:`~hueshift_core.images.colorize_image`'s within float rounding;
    other samplers colorize one image at a time. ``hints``: the user's colours, the same for every image."""
    if len(images) == 1 or not _batchable(options) or (hints is not None and hints.reference):
        return [colorize_image(im, model, options=options, upscale=upscale, hints=hints) for im in images]
    x = torch.cat([image_to_tensor(im) for im in images])
    l_full, _ = frames_to_lab(x)
    size = working_size(*x.shape[-2:], options.short_side, model.info.config.multiple, options.max_long_side)
    noise = torch.cat([make_noise((1, 2, *size), torch.Generator().manual_seed(options.seed)) for _ in images])
    hint_ab = hint_mask = None
    if hints is not None:
        hint_ab, hint_mask = (t.expand(len(images), -1, -1, -1) for t in to_working(hints, size))
    ab = colour_ab(model, downsample_l(l_full, size), options, generator=torch.Generator().manual_seed(options.seed),
                   noise=noise, hint_ab=hint_ab, hint_mask=hint_mask)
    rgb = upscale_merge(x, denormalize_ab(ab.float().cpu()), upscale)
    return [tensor_to_image(f) for f in rgb]


def _decoded(inputs: list[Path], ahead: int) -> Iterator[tuple[Path, np.ndarray | HueShiftError]]:
    """(input, image or its error), in order, decoded by one thread at most ``ahead`` images ahead."""
    with ThreadPoolExecutor(1, thread_name_prefix="hueshift-read") as pool:
        pending: deque = deque()
        it = iter(inputs)
        try:
            while True:
                while len(pending) < ahead:
                    src = next(it, None)
                    if src is None:
                        break
                    pending.append((src, pool.submit(read_image, src)))
                if not pending:
                    return
                src, fut = pending.popleft()
                try:
                    yield src, fut.result()
                except HueShiftError as err:
                    yield src, err
        finally:
            for _, fut in pending:
                fut.cancel()


def _run_many(args, inputs: list[Path], out: Path, created: bool, device, options: SampleOptions,
              state: _ManyState) -> None:
    batch_size = args.batch_size if _batchable(options) else 1
    model = None
    groups: dict[tuple, list[tuple[Path, np.ndarray, Path]]] = {}  # same-size images waiting for a batch
    held = 0
    writes: deque = deque()

    def settle(limit: int) -> None:  # wait for written files until at most `limit` are in flight
        while len(writes) > limit:
            src, dst, fut = writes.popleft()
            try:
                fut.result()
            except HueShiftError as err:
                state.fail(src, err)
                continue
            print(dst, flush=True)
            state.done += 1
            state.tick()

    def flush(key) -> None:
        nonlocal held
        group = groups.pop(key)
        held -= len(group)
        images = [img for _, img, _ in group]
        hints = None
        if args.hints:  # the same hints on every image, at each image's size
            hints = load_user_colours(args.hints, None, *images[0].shape[:2], video=False).get(0)
        rgbs = colorize_batch(images, model, options, args.upscale, hints)
        for (src, _, dst), rgb in zip(group, rgbs):
            writes.append((src, dst, writer.submit(write_image, dst, rgb)))
        settle(batch_size)

    with ThreadPoolExecutor(1, thread_name_prefix="hueshift-write") as writer:
        try:
            for src, img in _decoded(inputs, ahead=2 * batch_size):
                try:
                    if isinstance(img, HueShiftError):
                        raise img
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
                except HueShiftError as err:
                    state.fail(src, err)
                    continue
                if img.ndim == 3 and not is_grey(img):
                    state.note(f"{src}: colour image, turned grey first")
                key = img.shape[:2]
                groups.setdefault(key, []).append((src, img, dst))
                held += 1
                if len(groups[key]) >= batch_size:
                    flush(key)
                elif held >= 2 * batch_size:  # bounded: colorize the largest waiting group
                    flush(max(groups, key=lambda k: len(groups[k])))
            for key in list(groups):
                flush(key)
            settle(0)
        finally:
            groups.clear()


def _colorize_one(src: Path, img: np.ndarray, dst: Path, model, options: SampleOptions, upscale: str,
                  hints: FrameColour | None = None) -> None:
    if img.ndim == 3 and not is_grey(img):
        print(f"{src}: colour image, turned grey first", file=sys.stderr)
    write_image(dst, colorize_image(img, model, options=options, upscale=upscale, hints=hints))
    print(dst, flush=True)
