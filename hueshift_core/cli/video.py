"""``hueshift colorize IN -o OUT``: colorize a video file, streaming, with a progress bar."""

from __future__ import annotations

import argparse
import sys

from .. import threads
from ..errors import InputError
from ..hints import load_user_colours
from ..model.checkpoint import get_model, resolve_device
from ..model.sampling import guidance_scale
from ..video.files import check_video_io, colorize_video
from ..video.pipeline import PipelineOptions
from .image import add_colour_arguments, add_model_arguments
from .options import add_video_arguments, pipeline_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = PipelineOptions()
    p.add_argument("input", help="a video file PyAV can decode (grey or colour: colour is turned grey first), or a "
                             "frame sequence: a folder of images or a pattern such as scans/%%06d.png")
    p.add_argument("-o", "--output", required=True,
                   help="output .mp4/.mov/.mkv (H.264; written only when complete) or an image sequence such as "
                        "out/%%06d.png (numbered from 1; moved into place when complete)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of a frame-sequence input (default 24); a video file keeps its own")
    add_model_arguments(p)
    add_colour_arguments(p, video=True)
    add_video_arguments(p)
    p.add_argument("--batch-size", type=int, default=defaults.sample.batch_size,
                   help="frames per diffusion batch (per-frame mode)")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch, OpenCV and the codecs (default: the CPUs other processes leave free)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    # Everything checkable is checked before the model loads and the work starts: options, the input,
    # the output (name, extension, folder, not the input), the device.
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise InputError(f"--threads must be 1 to 1024, got {args.threads}")
    options = pipeline_options(args, batch_size=args.batch_size)
    device = resolve_device(args.device)
    info = check_video_io(args.input, args.output, args.fps)  # fail fast, before loading the model
    total = min(info.frame_count, args.max_frames) if args.max_frames else info.frame_count
    user = load_user_colours(args.hints, args.reference, info.height, info.width, fps=float(info.fps),
                             num_frames=total or None) if args.hints or args.reference else None
    threads.configure(args.threads)
    model = get_model(args.model, device)
    guidance_scale(model, args.guidance)  # a model not trained for guidance: refused before the work
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="colorize", file=sys.stderr, dynamic_ncols=True)
    try:
        result = colorize_video(args.input, args.output, model, options, device=str(device),
                                progress=bar.update if bar is not None else None, max_frames=args.max_frames,
                                fps=args.fps, info=info, hints=user)
    finally:
        if bar is not None:
            bar.close()
    if result.colour_input:
        print(f"{args.input}: a colour video, turned grey first (only its lightness was used)", file=sys.stderr)
    print(f"{result.path}: {result.frames} frames, {result.width}x{result.height}, {float(result.fps):.3f} fps, "
          f"{result.keyframes} keyframes in {result.shots} shot(s); colorized at {result.fps_processed:.1f} "
          f"frames/s ({result.encoder})", file=sys.stderr)
    print(result.path)
    return 0
