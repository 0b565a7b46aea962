"""Inputs and the plan: expanding files, folders, globs and frame sequences into inputs, naming outputs, and
grouping shots into pieces."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import HueShiftError, InputError
from ..video import sequence as _sequence

log = logging.getLogger(__name__)



MANIFEST = "hueshift-job.json"
PARTS = ".hueshift-parts"
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                  ".mxf", ".wmv", ".flv", ".ogv", ".dv", ".y4m", ".h264", ".264", ".hevc", ".265")
GLOB_CHARS = set("*?[")


# ---- frame sequences (a folder of images is one input; read as hueshift_core.video.sequence reads them) -------
def _is_sequence_folder(folder: Path) -> bool:
    try:
        return bool(_sequence.sequence_files(folder))
    except HueShiftError:
        return False


def sequence_frames(folder: str, first: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, uint8 RGB) of images ``first`` to ``end`` of a frame sequence, as :func:`sequence.read_sequence`
    gives them (same order, same reader), without reading the images before ``first``."""
    size = None
    for i, f in enumerate(_sequence.sequence_files(folder)[first:end], first):
        rgb = _sequence._read(f)
        if size is not None and rgb.shape != size:
            raise InputError(f"{f} is {rgb.shape[1]}x{rgb.shape[0]}, the sequence started at {size[1]}x{size[0]}: "
                             "every frame must have the same size")
        size = rgb.shape
        yield i, rgb


# ---- inputs and plan ---------------------------------------------------------------------------------
def expand_inputs(inputs: list[str | os.PathLike]) -> list[Path]:
    """Files, folders (the videos inside, recursively, by extension) and glob patterns -> video paths,
    sorted within each argument, duplicates dropped. A folder without videos that holds images is a frame
    sequence (one input); one whose subfolders hold images, a set of them. A name that matches nothing
    raises InputError."""
    found: list[Path] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            hits = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_SUFFIXES
                          and not any(part.startswith(".") for part in q.relative_to(p).parts))
            if not hits and _is_sequence_folder(p):  # a frame sequence
                hits = [p]
            elif not hits:  # folders of frame sequences
                hits = sorted(q for q in p.iterdir() if q.is_dir() and not q.name.startswith(".")
                              and _is_sequence_folder(q))
            if not hits:
                raise InputError(f"folder {p} holds no videos ({', '.join(VIDEO_SUFFIXES[:4])}, ...) and no frame "
                                 f"sequences (folders of {', '.join(_sequence.READ_SUFFIXES[:3])}, ... images)")
        elif p.exists() or p.is_symlink():
            hits = [p]  # an explicit file is tried whatever its name: probing says if it is a video
        elif GLOB_CHARS & set(str(arg)):
            hits = sorted(Path(q) for q in glob.glob(str(arg), recursive=True) if Path(q).is_file())
            if not hits:
                raise InputError(f"no file matches {arg}")
        else:
            raise InputError(f"input not found: {p}; check the path")
        found += hits
    seen: set[Path] = set()
    out = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def output_names(paths: list[Path], out_dir: Path) -> dict[str, Path]:
    """``<stem>`` -> input; two inputs with one stem would write one output: refused up front."""
    names: dict[str, Path] = {}
    for p in paths:
        if p.stem in names:
            raise InputError(f"{names[p.stem]} and {p} would both be written as {out_dir / (p.stem + '.mp4')}; "
                             "rename one or run them as two jobs")
        names[p.stem] = p
    return names


def group_shots(starts: list[int], frames: int, group: int) -> list[tuple[int, int]]:
    """Consecutive shots (``starts``, each shot runs to the next start) -> pieces ``(first, end)`` of at
    least ``group`` frames where the shots allow (a shot is never split); a last piece shorter than half
    a group joins the one before."""
    bounds = [*starts, frames]
    pieces: list[tuple[int, int]] = []
    first = 0
    for end in bounds[1:]:
        if end - first >= group:
            pieces.append((first, end))
            first = end
    if first < frames:
        if pieces and frames - first < group / 2:
            pieces[-1] = (pieces[-1][0], frames)
        else:
            pieces.append((first, frames))
    return pieces
