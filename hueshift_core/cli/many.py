"""``hueshift colorize-many INPUTS... -o OUT_DIR``: its arguments and :func:`run`."""

from __future__ import annotations

import argparse
import logging
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import torch

from ..cluster.inputs import MANIFEST
from ..cluster.job import colorize_many
from ..errors import InputError
from ..hints import reference_folder
from .options import add_model_arguments, add_video_arguments, pipeline_options

log = logging.getLogger(__name__)



def read_job_hints(path: str) -> list | dict:
    """``--hints FILE`` of colorize-many: a JSON list of hint points (every input) or ``{stem: list}``; every
    list checked here, before any work (:func:`hueshift_core.hints.points_from_json`)."""
    import json

    from ..hints import points_from_json, read_hints_json

    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"hints file not found: {p}") from None
    except (OSError, UnicodeDecodeError, ValueError):
        read_hints_json(p)  # its one-line message (empty, not JSON, unreadable)
        raise
    if isinstance(data, dict) and "hints" not in data:
        if not data:
            raise InputError(f"hints file {p.name} is an empty object: map input stems to lists of hints")
        for stem, points in data.items():
            points_from_json(points, where=f"hints file {p.name}, input {stem!r}")
        return data
    points_from_json(data, where=f"hints file {p.name}")
    return data["hints"] if isinstance(data, dict) else data


# ---- the command line ----------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="video files, folders (the videos inside, or a frame sequence: a folder "
                   "of images) and glob patterns")
    p.add_argument("-o", "--output", required=True, help="output folder: OUT/<input stem>.mp4 and the job's "
                   f"manifest OUT/{MANIFEST}")
    add_model_arguments(p)
    p.set_defaults(device="auto")  # a GPU when there is one; on Ray, one worker per GPU of the cluster
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                   help="run on Ray: 'auto' starts a local Ray on this machine; an address (head:6379, "
                        "ray://head:10001) joins an existing cluster. Without it: in this process")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray workers (default: one per GPU, else one per --threads CPUs)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per worker (default: 1 with --ray, else PyTorch's default)")
    p.add_argument("--group-seconds", type=float, default=60.0,
                   help="a long video is split into groups of whole shots of about this length (default 60)")
    p.add_argument("--retries", type=int, default=2, help="extra attempts of a task whose worker failed (default 2)")
    p.add_argument("--force", action="store_true", help="redo everything, even what the manifest lists as done")
    add_video_arguments(p)  # as for `hueshift colorize`
    p.add_argument("--hints", default=None, metavar="FILE",
                   help="colour hints (JSON, as for `hueshift colorize`): a list for every input, or an object "
                        "{\"<input stem>\": [...]} per input; frames and times count in each video")
    p.add_argument("--reference", default=None, metavar="FOLDER",
                   help="reference frames: a folder of colour images named after the videos they colour, "
                        "<stem>.png for frame 0 or <stem>@<frame>.png for another frame (any image type); each "
                        "gives that frame its colour and carries it through the shot, as `hueshift colorize "
                        "--reference` does")
    p.add_argument("--fps", type=Fraction, default=Fraction(24),
                   help="frame rate of frame sequences (folders of images), e.g. 24 or 24000/1001 (default 24)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    threads = args.threads or (1 if args.ray else None)
    if threads and not args.ray:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    options = pipeline_options(args)
    hints = read_job_hints(args.hints) if args.hints else None
    references = reference_folder(args.reference) if args.reference else None
    res = colorize_many(args.inputs, args.output, args.model, options, ray=args.ray, workers=args.workers,
                        threads=threads, device=args.device, group_seconds=args.group_seconds, retries=args.retries,
                        force=args.force, fps=args.fps, progress=not args.no_progress, hints=hints,
                        references=references)
    entries = res.manifest["inputs"]
    for stem, e in entries.items():
        if e["state"] == "failed":
            print(f"{e['input']}: failed: {e['error']}", file=sys.stderr)
    n_done = sum(e["state"] == "done" for e in entries.values())
    print(f"{args.output}: {n_done} of {len(entries)} videos done ({len(res.done)} in this run, "
          f"{len(res.skipped)} already done), {len(res.failed)} failed, in {res.seconds:.1f} s; "
          f"manifest {Path(args.output) / MANIFEST}", file=sys.stderr)
    return 0 if res.ok else 2  # as colorize-image and eval: some input was not done
