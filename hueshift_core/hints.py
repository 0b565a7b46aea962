"""The user's colours: sparse colour hints and whole reference frames, one meaning everywhere.

A :class:`FrameColour` is what a user says about one frame (or photo): chroma ``ab`` float32 ``[H, W, 2]``
(CIELAB) and a ``mask`` float32 ``[H, W]`` in [0, 1] (1 where the colour is given) at the frame's own size,
and ``reference=True`` when it is a whole colour frame (every pixel given). Where they come from:

* points (:func:`points_from_json`, :class:`HintPoint`): ``{"x": 0.42, "y": 0.31, "color": "#b03020"}``
  with ``x``, ``y`` fractions of the width and height (0-1), optional ``"radius"`` (fraction of the short
  side, default 0.02), and for video ``"frame"`` (index from 0) or ``"time"`` (seconds);
* a PNG with alpha the size (or aspect) of the frame: its opaque pixels are hints (:func:`hints_from_png`);
* a reference frame: a colour image of the frame's aspect from any tool (:func:`reference_from_image`).

The colour model takes hints at its working size (:func:`to_working`, for the colour prior's hint
channels); a reference is the frame's colour as it stands. The video pipeline makes a hinted or
referenced frame a keyframe and carries its colour through the shot.

Every mistake is an :class:`~hueshift_core.errors.InputError` with one line that says what to fix.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .model.lab import is_grey, normalize_ab

MAX_POINTS = 1000  # hints in one file: more is almost certainly a mistake (use a PNG or a reference)
DEFAULT_RADIUS = 0.02  # of the short side: a dot about 10 px wide on 480p video
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


@dataclass(frozen=True)
class HintPoint:
    """One colour dot: ``x``, ``y`` in [0, 1] (fractions of width and height), ``rgb`` uint8 triple,
    ``radius`` a fraction of the short side, ``frame`` (index) or ``time`` (seconds) for video."""

    x: float
    y: float
    rgb: tuple[int, int, int]
    radius: float = DEFAULT_RADIUS
    frame: int | None = None
    time: float | None = None


@dataclass
class FrameColour:
    """The user's colour for one frame: ``ab`` float32 ``[H, W, 2]`` (CIELAB), ``mask`` float32 ``[H, W]``
    in [0, 1]; ``reference`` when every pixel is given (a whole colour frame)."""

    ab: np.ndarray
    mask: np.ndarray
    reference: bool = False

    def resized(self, height: int, width: int) -> "FrameColour":
        """The same colour at ``height`` x ``width`` (area filter; mask-weighted so colours do not fade)."""
        if self.ab.shape[:2] == (height, width):
            return self
        interp = cv2.INTER_AREA if height <= self.ab.shape[0] else cv2.INTER_LINEAR
        m = cv2.resize(self.mask, (width, height), interpolation=interp)
        ab = cv2.resize(self.ab * self.mask[..., None], (width, height), interpolation=interp)
        ab = np.where(m[..., None] > 1e-6, ab / np.maximum(m, 1e-6)[..., None], 0.0).astype(np.float32)
        return FrameColour(ab, m.astype(np.float32), self.reference)


def parse_colour(text: object) -> tuple[int, int, int]:
    """``"#b03020"`` / ``"b03020"`` / ``"#b32"`` / ``[176, 48, 32]`` -> (r, g, b) uint8 values."""
    if isinstance(text, (list, tuple)) and len(text) == 3 and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in text):
        return tuple(int(v) for v in text)  # type: ignore[return-value]
    m = _HEX.match(text) if isinstance(text, str) else None
    if not m:
        raise InputError(f"colour {text!r} is not a colour: write it as \"#rrggbb\" (e.g. \"#b03020\") or [r, g, b]")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _rgb_to_ab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[..., 3]`` -> CIELAB ab float32 ``[..., 2]``."""
    flat = rgb.reshape(-1, 1, 3).astype(np.float32) / 255.0
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab)[:, 0, 1:].reshape(*rgb.shape[:-1], 2)


def _number(item: Mapping, key: str, lo: float, hi: float, where: str, default=None) -> float | None:
    if key not in item:
        return default
    v = item[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise InputError(f"{where}: \"{key}\" must be a number from {lo:g} to {hi:g}, got {v!r}")
    return float(v)


def points_from_json(data: object, where: str = "hints") -> list[HintPoint]:
    """A parsed hints JSON (a list of objects, or ``{"hints": [...]}``) -> points, each checked."""
    if isinstance(data, dict) and "hints" in data:
        data = data["hints"]
    if not isinstance(data, list):
        raise InputError(f"{where} must be a JSON list of hints like "
                         "[{\"x\": 0.42, \"y\": 0.31, \"color\": \"#b03020\"}]")
    if not data:
        raise InputError(f"{where} holds no hints: add at least one {{\"x\": ..., \"y\": ..., \"color\": ...}}")
    if len(data) > MAX_POINTS:
        raise InputError(f"{where} holds {len(data)} hints, more than {MAX_POINTS}: for large areas paint a PNG "
                         "hint image or give a --reference frame")
    out = []
    for i, item in enumerate(data):
        w = f"{where}: hint {i + 1}"
        if not isinstance(item, dict):
            raise InputError(f"{w} must be an object like {{\"x\": 0.42, \"y\": 0.31, \"color\": \"#b03020\"}}")
        unknown = set(item) - {"x", "y", "color", "colour", "radius", "frame", "time"}
        if unknown:
            raise InputError(f"{w} has unknown field(s) {sorted(unknown)}: use x, y, color, radius, frame or time")
        for k in ("x", "y"):
            if k not in item:
                raise InputError(f"{w} has no \"{k}\" (a fraction of the {'width' if k == 'x' else 'height'}, 0-1)")
            v = item[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
                raise InputError(f"{w}: \"{k}\" = {v!r} is outside the frame: x and y are fractions of the width "
                                 "and height, from 0 to 1")
        colour = item.get("color", item.get("colour"))
        if colour is None:
            raise InputError(f"{w} has no \"color\" (e.g. \"#b03020\")")
        frame = item.get("frame")
        if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
            raise InputError(f"{w}: \"frame\" must be a frame index from 0, got {frame!r}")
        if frame is not None and "time" in item:
            raise InputError(f"{w} gives both \"frame\" and \"time\": give one")
        out.append(HintPoint(float(item["x"]), float(item["y"]), parse_colour(colour),
                             _number(item, "radius", 1e-4, 0.5, w, DEFAULT_RADIUS),
                             frame, _number(item, "time", 0.0, 1e7, w)))
    return out


def read_hints_json(path: str | Path) -> list[HintPoint]:
    """Points from a hints JSON file (see :func:`points_from_json`)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise InputError(f"hints file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read hints file {p}: {getattr(err, 'strerror', None) or err}") from None
    if not text.strip():
        raise InputError(f"hints file {p} is empty: write a JSON list of hints")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"hints file {p} is not valid JSON (line {err.lineno}: {err.msg})") from None
    return points_from_json(data, where=f"hints file {p.name}")


def rasterise(points: Iterable[HintPoint], height: int, width: int) -> FrameColour:
    """Points -> a :class:`FrameColour` at ``height`` x ``width``: each a filled disc (at least one pixel);
    a later point paints over an earlier one."""
    ab = np.zeros((height, width, 2), np.float32)
    mask = np.zeros((height, width), np.float32)
    short = min(height, width)
    for p in points:
        cx, cy = min(width - 1, int(p.x * width)), min(height - 1, int(p.y * height))
        r = max(0, int(round(p.radius * short)))
        disc = np.zeros((height, width), np.uint8)
        cv2.circle(disc, (cx, cy), r, 1, thickness=-1)
        sel = disc.astype(bool)
        ab[sel] = _rgb_to_ab(np.array(p.rgb, np.uint8))
        mask[sel] = 1.0
    return FrameColour(ab, mask)


def _check_aspect(h: int, w: int, height: int, width: int, what: str) -> None:
    if abs(h / w - height / width) > 0.02 * height / width:
        raise InputError(f"{what} is {w}x{h} but the frames are {width}x{height}: give it the frames' aspect ratio "
                         "(crop it, or export it at the frame size)")


def hints_from_png(path: str | Path, height: int, width: int) -> FrameColour:
    """A PNG with alpha: opaque pixels (alpha > 127) are hints of their colour. Resized (same aspect) to
    ``height`` x ``width``."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"hint image not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{p} is not a readable image: save the hints as a PNG with transparency")
    if img.ndim != 3 or img.shape[2] != 4:
        raise InputError(f"{p} has no alpha channel: paint the hints on a transparent layer and save it as PNG "
                         "(opaque pixels are hints)")
    if img.dtype != np.uint8:
        img = (img / 257).round().astype(np.uint8)
    _check_aspect(img.shape[0], img.shape[1], height, width, f"hint image {p.name}")
    rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    mask = (img[..., 3] > 127).astype(np.float32)
    if not mask.any():
        raise InputError(f"hint image {p.name} has no opaque pixels: paint the colours you want at full opacity")
    return FrameColour(_rgb_to_ab(rgb) * mask[..., None], mask).resized(height, width)


def reference_from_image(rgb: np.ndarray, height: int, width: int, name: str = "reference") -> FrameColour:
    """A whole colour frame (uint8 RGB ``[h, w, 3]``) as that frame's colour, resized (same aspect) to the
    frame's ``height`` x ``width``. A grey image carries no colour and is refused."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"{name} must be a colour image (uint8 RGB [H, W, 3])")
    _check_aspect(rgb.shape[0], rgb.shape[1], height, width, name)
    if is_grey(rgb):
        raise InputError(f"{name} is grey: a reference gives the frame's colour, so it must be a colour image")
    ab = _rgb_to_ab(rgb)
    return FrameColour(ab, np.ones(rgb.shape[:2], np.float32), reference=True).resized(height, width)


def parse_reference_arg(text: str) -> tuple[Path, int]:
    """``IMAGE[@FRAME]`` -> (path, frame index; 0 when not given)."""
    path, sep, frame = text.rpartition("@")
    if not sep or not frame.isdigit():
        return Path(text), 0
    return Path(path), int(frame)


def read_reference(path: str | Path) -> np.ndarray:
    """A reference image file -> uint8 RGB ``[H, W, 3]``; a grey one (one channel, or three equal ones) refused."""
    from .images import read_image

    p = Path(path)
    img = read_image(p)
    if img.ndim != 3 or is_grey(img):
        raise InputError(f"reference {p.name} is grey: a reference gives the frame's colour, so it must be a colour "
                         "image")
    return img


REFERENCE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def reference_folder(folder: str | Path) -> dict[str, dict[int, Path]]:
    """A folder of reference frames for many videos -> {video stem: {frame index: image path}}. Each image
    is named after the video it colours: ``<stem>.png`` for its frame 0, ``<stem>@<frame>.png`` for another
    frame (any of :data:`REFERENCE_SUFFIXES`). Every image is read here and a grey or unreadable one refused,
    before any work; the aspect ratio is checked against each video (:func:`check_reference_image`)."""
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"reference folder not found: {d} (give a folder of <video stem>[@frame].png images)"
                         if not d.exists() else f"{d} is a file: give a folder of <video stem>[@frame].png images")
    out: dict[str, dict[int, Path]] = {}
    for p in sorted(d.iterdir()):
        if not p.is_file() or p.suffix.lower() not in REFERENCE_SUFFIXES:
            continue
        stem, frame = parse_reference_arg(p.stem)
        stem = str(stem)
        if frame in out.get(stem, {}):
            raise InputError(f"{out[stem][frame].name} and {p.name} both give frame {frame} of {stem!r}: keep one")
        read_reference(p)  # refused now, before any work, if grey or unreadable
        out.setdefault(stem, {})[frame] = p
    if not out:
        raise InputError(f"reference folder {d} holds no images ({', '.join(REFERENCE_SUFFIXES[:3])}, ...) named "
                         "<video stem>[@frame]")
    return out


def check_reference_image(path: str | Path, frame: int, height: int, width: int, num_frames: int | None) -> None:
    """Refuse a reference (an image file for ``frame``) that does not fit a video of ``height`` x ``width``
    and ``num_frames`` frames: another aspect ratio, or a frame past the end."""
    from .images import read_image

    p = Path(path)
    img = read_image(p)
    _check_aspect(img.shape[0], img.shape[1], height, width, f"reference {p.name}")
    if frame < 0 or (num_frames is not None and frame >= num_frames):
        raise InputError(f"reference {p.name} is for frame {frame}, but the video has frames 0 to {(num_frames or 1) - 1}"
                         ": fix the @FRAME in its name")


def to_working(colour: FrameColour, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A frame's colour -> the colour prior's hint inputs at the working ``size`` (h, w): normalised ab
    ``[1, 2, h, w]`` and mask ``[1, 1, h, w]`` (1 where a hint touches the working pixel)."""
    ab = torch.from_numpy(np.ascontiguousarray(colour.ab)).permute(2, 0, 1)[None]
    m = torch.from_numpy(np.ascontiguousarray(colour.mask))[None, None]
    m_w = F.adaptive_avg_pool2d(m, size) if m.shape[-2] >= size[0] else F.interpolate(m, size=size, mode="bilinear")
    ab_w = (F.adaptive_avg_pool2d(ab * m, size) if m.shape[-2] >= size[0]
            else F.interpolate(ab * m, size=size, mode="bilinear"))
    ab_w = torch.where(m_w > 1e-6, ab_w / m_w.clamp_min(1e-6), torch.zeros_like(ab_w))
    return normalize_ab(ab_w), (m_w > 1e-6).float()


def frame_colours(points: list[HintPoint], height: int, width: int, *, fps: float | None = None,
                  num_frames: int | None = None) -> dict[int, FrameColour]:
    """Points (with ``frame`` / ``time``; none given = frame 0) -> {frame index: FrameColour}. A point past the
    end of the video (``num_frames``) is refused."""
    by_frame: dict[int, list[HintPoint]] = {}
    for p in points:
        if p.time is not None:
            if not fps:
                raise InputError("a hint gives \"time\" but the input has no frame rate: use \"frame\" instead")
            idx = int(round(p.time * fps))
        else:
            idx = p.frame or 0
        if num_frames is not None and idx >= num_frames:
            at = f"time {p.time:g} s" if p.time is not None else f"frame {idx}"
            raise InputError(f"a hint at {at} is past the end of the video ({num_frames} frames"
                             + (f", {num_frames / fps:.2f} s" if fps else "") + "): fix its frame or time")
        by_frame.setdefault(idx, []).append(p)
    return {i: rasterise(ps, height, width) for i, ps in sorted(by_frame.items())}


def user_colours(height: int, width: int, *, hints: list[HintPoint] | dict[int, FrameColour] | FrameColour | None = None,
                 references: dict[int, np.ndarray | FrameColour] | None = None, fps: float | None = None,
                 num_frames: int | None = None) -> dict[int, FrameColour]:
    """Everything the user said about a video's colour -> {frame index: FrameColour} at ``height`` x ``width``.

    ``hints``: points (each with its ``frame`` / ``time``), a {frame: FrameColour} map, or one FrameColour
    (frame 0); ``references``: {frame: colour image (uint8 RGB) or FrameColour}. A frame past the end
    (``num_frames``), or given both hints and a reference, is refused."""
    out: dict[int, FrameColour] = {}
    if isinstance(hints, FrameColour):
        hints = {0: hints}
    if isinstance(hints, list):
        out.update(frame_colours(hints, height, width, fps=fps, num_frames=num_frames))
    elif isinstance(hints, dict):
        out.update({int(i): c.resized(height, width) for i, c in hints.items()})
    elif hints is not None:
        raise InputError(f"hints must be a list of HintPoint or a {{frame: FrameColour}} map, got {type(hints).__name__}")
    for i, ref in (references or {}).items():
        i = int(i)
        if i < 0 or (num_frames is not None and i >= num_frames):
            raise InputError(f"a reference for frame {i} is outside the video (frames 0 to "
                             f"{(num_frames or 1) - 1}): fix the @FRAME")
        if i in out:
            raise InputError(f"frame {i} has both hints and a reference: a reference sets every pixel, give one")
        out[i] = ref.resized(height, width) if isinstance(ref, FrameColour) else reference_from_image(
            ref, height, width, name=f"the reference for frame {i}")
    for i in out:
        if i < 0 or (num_frames is not None and i >= num_frames):
            raise InputError(f"hints for frame {i} are past the end of the video ({num_frames} frames): fix the frame")
    return out


def load_user_colours(hints: str | Path | None, references: list[str] | None, height: int, width: int, *,
                      fps: float | None = None, num_frames: int | None = None, video: bool = True
                      ) -> dict[int, FrameColour]:
    """What the command line's ``--hints FILE`` (a JSON list of points, or a PNG with alpha for frame 0) and
    ``--reference IMAGE[@FRAME]`` (repeatable) give, for frames of ``height`` x ``width``.
    ``video=False`` (a photo): points' frame/time and a reference's @FRAME are refused."""
    given: dict[int, FrameColour] | list[HintPoint] | None = None
    if hints is not None:
        p = Path(hints)
        if p.suffix.lower() == ".png":
            given = {0: hints_from_png(p, height, width)}
        else:
            given = read_hints_json(p)
            if not video and any(q.frame or q.time for q in given):
                raise InputError(f"hints file {p.name} gives a frame or time, but the input is a photo: leave them out")
    refs: dict[int, np.ndarray] = {}
    for spec in references or []:
        path, frame = parse_reference_arg(spec)
        if not video and frame:
            raise InputError(f"--reference {spec}: a photo has one frame: leave out @{frame}")
        if frame in refs:
            raise InputError(f"two references for frame {frame}: give one")
        refs[frame] = read_reference(path)
    return user_colours(height, width, hints=given, references=refs, fps=fps, num_frames=num_frames)


def check_hints_file(path: str | Path, video: bool = True) -> None:
    """Refuse a bad ``--hints`` file before any work, whatever the frame size (a PNG's aspect is checked per input)."""
    p = Path(path)
    if p.suffix.lower() == ".png":
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) if p.is_file() else None
        hints_from_png(p, *(img.shape[:2] if img is not None else (1, 1)))  # its own size: every other check
        return
    points = read_hints_json(p)
    if not video and any(q.frame or q.time for q in points):
        raise InputError(f"hints file {p.name} gives a frame or time, but the inputs are photos: leave them out")


def painted_hints(rgb: np.ndarray, mask: np.ndarray) -> FrameColour:
    """Colour painted on a frame: uint8 RGB ``[H, W, 3]`` and a mask ``[H, W]`` (> 0.5 where the paint is a hint)."""
    m = (np.asarray(mask, np.float32) > 0.5).astype(np.float32)
    if m.shape != rgb.shape[:2]:
        raise InputError(f"the hint mask is {m.shape[1]}x{m.shape[0]} but the painted image is {rgb.shape[1]}x"
                         f"{rgb.shape[0]}: use the mask of the same image")
    if not m.any():
        raise InputError("the hint mask is empty: mark where the painted hints are")
    return FrameColour(_rgb_to_ab(rgb) * m[..., None], m)


@torch.no_grad()
def spread_hints(ab: torch.Tensor, l_norm: torch.Tensor, hint_ab: torch.Tensor, hint_mask: torch.Tensor, *,
                 sigma_space: float = 0.2, sigma_l: float = 0.25, floor: float = 0.05,
                 max_points: int = 1024) -> torch.Tensor:
    """Edit propagation of the hints' colour (after the network): normalised ab ``[B, 2, h, w]`` -> the same,
    moved towards each hint where the frame looks like the hint's place.

    The residual ``hint - ab`` at every hinted pixel is spread with a joint bilateral weight — a Gaussian in
    space (``sigma_space``, a fraction of the short side) times a Gaussian in lightness (``sigma_l``, normalised L
    units) — and blended in with ``Σw / (Σw + floor)``: at a hint the output takes the hint's colour, on the
    same surface it follows it, across an edge or far away the network's colour stays. ``l_norm``
    ``[B, 1, h, w]``, ``hint_mask`` ``[B, 1, h, w]`` (0/1); at most ``max_points`` hinted pixels per image
    are used (evenly spaced among them)."""
    b, _, h, w = ab.shape
    out = ab.clone()
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1).to(ab.device)  # [h*w, 2]
    s2 = 2 * (sigma_space * min(h, w)) ** 2
    l2 = 2 * sigma_l ** 2
    for i in range(b):
        idx = torch.nonzero(hint_mask[i, 0].reshape(-1) > 0.5).squeeze(1)
        if idx.numel() == 0:
            continue
        if idx.numel() > max_points:
            idx = idx[torch.linspace(0, idx.numel() - 1, max_points).round().long()]
        l_flat = l_norm[i, 0].reshape(-1).float()
        res = (hint_ab[i].reshape(2, -1)[:, idx] - ab[i].reshape(2, -1)[:, idx]).float()  # [2, K]
        d2 = torch.cdist(pos, pos[idx]).square()  # [h*w, K]
        wts = torch.exp(-d2 / s2 - (l_flat[:, None] - l_flat[idx][None, :]).square() / l2)
        total = wts.sum(1)
        corr = (wts @ res.T) / total.clamp_min(1e-8)[:, None]  # [h*w, 2]
        alpha = (total / (total + floor))[:, None]
        out[i] = (ab[i].reshape(2, -1).T + alpha * corr).T.reshape(2, h, w).to(ab.dtype)
    return out.clamp(-1.0, 1.0)
