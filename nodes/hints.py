"""The user's colours in a graph: HueShiftColourHints, HueShiftReferenceFrames.

Both output HUESHIFT_HINTS (:class:`UserHints`), which Keyframe Select (the frames become keyframes), DDPM
Colorize and Colorize Video File take; the meaning is :mod:`hueshift_core.hints`'s, the CLI's ``--hints`` and
``--reference``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from ..hueshift_core.errors import InputError
from ..hueshift_core.hints import FrameColour, HintPoint, frame_colours, painted_hints, points_from_json, user_colours
from .comfy_compat import io, ui
from .common import CATEGORY, HINTS, images_to_u8

EXAMPLE_POINTS = '[{"x": 0.5, "y": 0.35, "color": "#c03020", "radius": 0.04, "frame": 0}]'


@dataclass(frozen=True)
class UserHints:
    """What travels on a HUESHIFT_HINTS socket: hint points (sized when used), painted hints and reference
    frames (uint8 RGB), by frame index."""

    points: tuple[HintPoint, ...] = ()
    painted: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # frame -> (rgb u8, mask)
    references: dict[int, np.ndarray] = field(default_factory=dict)

    def merged(self, other: "UserHints | None") -> "UserHints":
        if other is None:
            return self
        clash = (set(self.references) & (set(other.references) | set(other.painted))) | (
            set(other.references) & set(self.painted))
        if clash:
            raise InputError(f"frame {min(clash)} has a reference and other hints: a reference sets every pixel")
        return UserHints(other.points + self.points, {**other.painted, **self.painted},
                         {**other.references, **self.references})

    def frames(self) -> list[int]:
        return sorted({p.frame or 0 for p in self.points} | set(self.painted) | set(self.references))

    def resolve(self, height: int, width: int, num_frames: int, fps: float | None = None) -> dict[int, FrameColour]:
        """{frame index: FrameColour} at ``height`` x ``width`` for a clip of ``num_frames`` frames."""
        colours = frame_colours(list(self.points), height, width, fps=fps, num_frames=num_frames)
        for i, (rgb, mask) in self.painted.items():
            painted = painted_hints(rgb, mask)
            if tuple(rgb.shape[:2]) != (height, width):
                if abs(rgb.shape[0] / rgb.shape[1] - height / width) > 0.02 * height / width:
                    raise InputError(f"painted hints for frame {i} are {rgb.shape[1]}x{rgb.shape[0]} but the frames are "
                                     f"{width}x{height}: paint on a frame of the clip")
                painted = painted.resized(height, width)
            if i in colours:  # points and paint on one frame: paint over the points
                base = colours[i]
                m = painted.mask[..., None]
                painted = FrameColour(base.ab * (1 - m) + painted.ab * m, np.maximum(base.mask, painted.mask))
            colours[i] = painted
        return user_colours(height, width, hints=colours, references=self.references, num_frames=num_frames)


class ColourHints(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftColourHints",
            display_name="HueShift Colour Hints",
            category=CATEGORY,
            description="Your colours for a frame: colour dots as JSON points, and/or an image whose masked pixels "
                        "are colour hints (paint the colours in any editor, mark them with ComfyUI's mask editor). "
                        "The frame becomes a keyframe and its colour is carried through the shot.",
            inputs=[
                io.String.Input("points", multiline=True, default=EXAMPLE_POINTS,
                                tooltip='JSON list of {"x": 0.42, "y": 0.31, "color": "#b03020"}: x, y fractions of '
                                        'the width and height (0-1); optional "radius" (fraction of the short side) '
                                        'and "frame" (default: the frame below). Empty: no points.'),
                io.Int.Input("frame", default=0, min=0, max=10_000_000,
                             tooltip="The frame (index from 0) the painted image, and points without a frame, belong to."),
                io.Image.Input("image", optional=True, tooltip="Optional: a frame with colour painted on it."),
                io.Mask.Input("mask", optional=True,
                              tooltip="With image: where the hints are (1). Load Image's mask is 1 where you painted "
                                      "with the mask editor (or where the PNG is transparent)."),
                HINTS.Input("hints", optional=True, tooltip="Optional: more hints to add these to."),
            ],
            outputs=[HINTS.Output(display_name="hints", tooltip="For Keyframe Select, DDPM Colorize or Colorize "
                                                                "Video File.")],
        )

    @classmethod
    def execute(cls, points: str, frame: int, image: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                hints: UserHints | None = None) -> io.NodeOutput:
        pts: tuple[HintPoint, ...] = ()
        if points.strip():
            try:
                data = json.loads(points)
            except json.JSONDecodeError as err:
                raise InputError(f"Colour Hints: points are not valid JSON (line {err.lineno}: {err.msg})") from None
            pts = tuple(p if p.frame is not None or p.time is not None else HintPoint(p.x, p.y, p.rgb, p.radius, frame)
                        for p in points_from_json(data, where="Colour Hints points"))
        painted = {}
        if (image is None) != (mask is None):
            raise InputError("Colour Hints: connect both image and mask (the mask says which pixels are hints), or "
                             "neither")
        if image is not None:
            rgb = images_to_u8(image[:1])[0]
            m = mask[0] if mask.dim() == 3 else mask
            m = m.float().cpu().numpy()
            painted_hints(rgb, m)  # checked here, where the user sees it
            painted[int(frame)] = (rgb, m)
        if not pts and not painted:
            raise InputError("Colour Hints: no hints: write points or connect an image and its mask")
        out = UserHints(pts, painted).merged(hints)
        text = f"hints on frame(s) {out.frames()}"
        return io.NodeOutput(out, ui=ui.PreviewText(text))


class ReferenceFrames(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HueShiftReferenceFrames",
            display_name="HueShift Reference Frames",
            category=CATEGORY,
            description="Whole colour frames from any tool (a photo editor, another colorizer) as the colour of "
                        "those frames: each becomes a keyframe and its colour is carried through the shot.",
            inputs=[
                io.Image.Input("images", tooltip="The colour frames, one per index below (the clip's aspect ratio)."),
                io.String.Input("frames", default="0", tooltip="Frame index of each image, comma-separated: 0, 48"),
                HINTS.Input("hints", optional=True, tooltip="Optional: hints to add these to."),
            ],
            outputs=[HINTS.Output(display_name="hints", tooltip="For Keyframe Select, DDPM Colorize or Colorize "
                                                                "Video File.")],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, frames: str, hints: UserHints | None = None) -> io.NodeOutput:
        try:
            idx = [int(v) for v in frames.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise InputError(f"Reference Frames: frames must be frame indices separated by commas, got {frames!r}") from None
        rgb = images_to_u8(images)
        if len(idx) != len(rgb):
            raise InputError(f"Reference Frames: {len(rgb)} image(s) but {len(idx)} frame index(es): give one index "
                             "per image")
        if len(set(idx)) != len(idx) or min(idx) < 0:
            raise InputError("Reference Frames: frame indices must be different and >= 0")
        out = UserHints(references=dict(zip(idx, rgb))).merged(hints)
        return io.NodeOutput(out, ui=ui.PreviewText(f"references for frame(s) {sorted(idx)}"))
