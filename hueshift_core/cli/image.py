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

from ..errors import HueShiftError, InputError
from ..hints import FrameColour, check_hints_file, load_user_colours
from ..images import batchable, colorize_batch, colorize_image, read_image
from ..model.checkpoint import get_model, resolve_device
from ..model.lab import is_grey
from ..model.sampling import SampleOptions, guidance_scale
from ..outputs import atomic_write_bytes, check_output
from .options import add_colour_arguments, add_model_arguments, sample_options


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
    batch_size = args.batch_size if batchable(options) else 1
    model = None
    groups: dict[tuple, list[tuple[Path, np.ndarray, Path]]] = {}  # same-size images waiting for a batch
    held = 0
    writes: deque = deque()
    hints_by_size: dict[tuple, object] = {}  # the hints file is read and drawn once per image size

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
            size = images[0].shape[:2]
            if size not in hints_by_size:
                hints_by_size[size] = load_user_colours(args.hints, None, *size, video=False).get(0)
            hints = hints_by_size[size]
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
