"""Frame sequences as video: a folder (or a ``%06d`` pattern) of images in, a ``%06d`` pattern out.

Film scans and VFX work come as numbered image files (PNG, TIFF, JPEG, ...). These readers and
writers have the shapes of :mod:`hueshift_core.video`'s, so the streaming pipeline runs on them
unchanged:

* :func:`is_sequence` -- a folder, or a path whose name holds a printf number (``scans/f_%04d.tif``);
* :func:`sequence_files` -- its images in order (numbers compared as numbers: ``f2`` before ``f10``);
* :func:`probe_sequence` -> :class:`~hueshift_core.video.VideoInfo` (frame rate given: images have none);
* :func:`read_sequence` -- uint8 RGB batches ``[B, H, W, 3]``, decoded one image at a time (EXIF
  orientation applied, 16-bit scaled to 8, alpha dropped); every image must have the first one's size;
* :class:`SequenceWriter` -- ``with SequenceWriter("out/%06d.png", w, h) as wr: wr.write(batch)``: images
  numbered from 1 (as FFmpeg's image2 does) go to a hidden folder beside them and are moved into place
  only when the block ends without an error (Ctrl-C included), so a failed run leaves no partial sequence.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError, VideoError
from .probing import VideoInfo
from .write import exact_fps

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp", ".exr", ".dpx")
READ_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp")
WRITE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
_PATTERN = re.compile(r"%(0?\d*)d")


def is_pattern(path: str | os.PathLike) -> bool:
    """True when the file name holds one printf number (``%d``, ``%06d``)."""
    return len(_PATTERN.findall(Path(path).name)) == 1


def is_sequence(path: str | os.PathLike) -> bool:
    """A folder or a numbered-name pattern: read (or written) as a frame sequence."""
    return is_pattern(path) or Path(path).is_dir()


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def sequence_files(path: str | os.PathLike) -> list[Path]:
    """The images of a sequence, in order. A folder: every image file in it (hidden files skipped),
    numbers in names compared as numbers. A pattern: the files it matches, by their number."""
    p = Path(path)
    if is_pattern(p):
        folder = p.parent if str(p.parent) else Path(".")
        if not folder.is_dir():
            raise InputError(f"frame sequence {p}: folder {folder} not found")
        m = _PATTERN.search(p.name)
        rx = re.compile(re.escape(p.name[:m.start()]) + r"(\d+)" + re.escape(p.name[m.end():]) + r"\Z")
        hits = sorted(((int(mm.group(1)), f) for f in folder.iterdir() if (mm := rx.match(f.name))),
                      key=lambda t: t[0])
        files = [f for _, f in hits]
    elif p.is_dir():
        files = sorted((f for f in p.iterdir() if not f.name.startswith(".") and f.suffix.lower() in READ_SUFFIXES
                        and f.is_file()), key=lambda f: _natural(f.name))
    else:
        raise InputError(f"{p} is not a folder or a numbered-name pattern such as scans/%06d.png")
    if not files:
        raise InputError(f"frame sequence {p} holds no images ({', '.join(READ_SUFFIXES)}); check the path")
    return files


def _read(path: Path) -> np.ndarray:
    from ..images import read_image  # the photo reader: EXIF, 16-bit, bombs refused

    img = read_image(path)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def probe_sequence(path: str | os.PathLike, fps: Fraction | float | None = None):
    """A :class:`~hueshift_core.video.VideoInfo` for a frame sequence: size from its first image, the
    given frame rate (default 24), no audio."""
    fps = _check_fps(fps)
    files = sequence_files(path)
    first = _read(files[0])
    h, w = first.shape[:2]
    return VideoInfo(str(path), w, h, fps, len(files), True, len(files) / float(fps), False,
                     files[0].suffix.lower().lstrip("."), "rgb24", "rgb", "pc", True)


def _check_fps(fps) -> Fraction:
    if fps is None:
        return Fraction(24)
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction, np.number)) or \
            not np.isfinite(float(fps)) or not 0 < float(fps) <= 1000:
        raise InputError(f"frame rate must be a number above 0 and at most 1000, got {fps!r}")
    return exact_fps(fps)


def read_sequence(path: str | os.PathLike, batch_size: int = 16, *, max_frames: int | None = None,
                  times: list | None = None, fps: Fraction | float | None = None) -> Iterator[np.ndarray]:
    """uint8 RGB batches ``[B, H, W, 3]`` of a frame sequence, one image decoded at a time. A bad
    image raises :class:`~hueshift_core.errors.InputError` naming it; so does one of another size."""
    files = sequence_files(path)
    if max_frames is not None:
        files = files[:max_frames]
    step = 1 / _check_fps(fps)
    batch: list[np.ndarray] = []
    size = None
    for i, f in enumerate(files):
        img = _read(f)
        if size is None:
            size = img.shape[:2]
        elif img.shape[:2] != size:
            raise InputError(f"{f} is {img.shape[1]}x{img.shape[0]}, the sequence started at {size[1]}x{size[0]}: "
                             "every frame must have the same size")
        batch.append(img)
        if times is not None:
            times.append(i * step)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def check_sequence_output(pattern: str | os.PathLike, inputs=()) -> Path:
    """Everything checkable about an output pattern before the work: one ``%0Nd`` in the file name, an
    image extension OpenCV writes, a folder that exists (or whose parent does: it is created) and takes
    new files, and no output name that is one of ``inputs``."""
    import cv2

    p = Path(pattern)
    if not is_pattern(p):
        raise InputError(f"output sequence {p} needs one number in its name, such as out/%06d.png")
    if p.suffix.lower() not in WRITE_SUFFIXES or not cv2.haveImageWriter("x" + p.suffix.lower()):
        raise InputError(f"output sequence {p}: give a name ending in {', '.join(WRITE_SUFFIXES)}")
    folder = p.parent if str(p.parent) else Path(".")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"output sequence {p}: {folder} is a file, not a folder")
    parent = folder if folder.exists() else folder.parent
    if not parent.is_dir():
        raise InputError(f"output folder {folder.parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write into {parent}: permission denied")
    if folder.exists():
        inputs_real = set()
        for i in inputs:
            for f in (sequence_files(i) if is_sequence(i) else [Path(i)]):
                try:
                    inputs_real.add(os.path.realpath(f))
                except OSError:
                    pass
        rx = _PATTERN.search(p.name)
        probe = re.compile(re.escape(p.name[:rx.start()]) + r"\d+" + re.escape(p.name[rx.end():]) + r"\Z")
        for f in folder.iterdir():
            if probe.match(f.name) and os.path.realpath(f) in inputs_real:
                raise InputError(f"output sequence {p} would overwrite the input frame {f}: write somewhere else")
    return p


class SequenceWriter:
    """Write uint8 RGB frames as numbered images (``out/%06d.png``, from 1), atomically as a whole:
    the images go to a hidden folder beside them and are moved into place when the ``with`` block
    ends without an exception. The same ``write(frames, times=None)`` as
    :class:`~hueshift_core.video.VideoWriter` (``times`` is ignored: images carry no time)."""

    encoder = "image sequence"

    def __init__(self, pattern: str | os.PathLike, width: int, height: int, *, inputs=(), start_number: int = 1):
        self.pattern = check_sequence_output(pattern, inputs)
        self.width, self.height = int(width), int(height)
        self.start = int(start_number)
        self.folder = self.pattern.parent if str(self.pattern.parent) else Path(".")
        self.frames = 0
        self._tmp: Path | None = None
        self._created = False
        self._names: list[str] = []

    @property
    def path(self) -> Path:
        return self.pattern

    def __enter__(self) -> SequenceWriter:  # noqa: PYI034
        if not self.folder.exists():
            try:
                self.folder.mkdir()
            except OSError as err:
                raise VideoError(f"cannot create the output folder {self.folder}: {err.strerror or err}") from None
            self._created = True
        self._tmp = Path(tempfile.mkdtemp(prefix=".hueshift-partial-", dir=self.folder))
        return self

    def write(self, frames: np.ndarray, times: list | None = None) -> None:  # noqa: ARG002
        import cv2

        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise VideoError(f"frames must be uint8 RGB [B, {self.height}, {self.width}, 3], got "
                             f"{frames.dtype} {frames.shape}")
        for rgb in frames:
            name = self.pattern.name % (self.start + self.frames)
            ok, buf = cv2.imencode(self.pattern.suffix.lower(), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            if not ok:
                raise VideoError(f"cannot encode frame {self.frames} as {self.pattern.suffix}")
            (self._tmp / name).write_bytes(buf.tobytes())
            self._names.append(name)
            self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                for name in self._names:
                    os.replace(self._tmp / name, self.folder / name)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if exc_type is not None and self._created:
                try:
                    self.folder.rmdir()
                except OSError:
                    pass
