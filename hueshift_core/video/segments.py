"""Keyframes and segments: colour the keyframes in order, carry it to the frames between them.

A *segment* is a keyframe and the frames of its shot up to the next keyframe. :class:`SegmentWalker`
goes through analysed frames (:class:`~hueshift_core.video.analysis.AnalysedFrame`) in display order:

1. inside a shot, each frame gets the keyframe's colour carried forward along the flow, with its
   chained confidence (``ab_fw``, ``conf_fw``); the share of pixels still tracking decides, with the
   cut flag, whether the frame is a new keyframe (``decide``: a
   :class:`~hueshift_core.video.keyframes.KeyframeSelector` or a given plan, :class:`PlanDecisions`);
2. a keyframe's colour comes from ``colour(frame, carried_ab, carried_conf)`` — the diffusion model
   (:class:`~hueshift_core.video.keyframe_colour.KeyframeColorizer`, which warm-starts later keyframes of a
   shot from the carried colour), colours given by an earlier stage (:class:`GivenColours`), or
   nothing at all (``colour=None``: planning only);
3. a finished segment is handed out as a :class:`Segment`; :func:`fill_segment` then gives every frame
   its colour: carried forward from the keyframe before and backward from the keyframe after, blended
   by temporal distance and confidence (:func:`~hueshift_core.video.propagate.blend`); after a shot's last
   keyframe, forward only.

Arrays are numpy at the propagation resolution: ab float32 ``[h, w, 2]`` (CIELAB), confidence float32
``[h, w]`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .analysis import AnalysedFrame, StageTimer
from .keyframes import Decision, tracked_share
from .propagate import blend, carry, warp

# (keyframe, colour carried into it or None at a shot start, that colour's confidence or None) -> ab [h, w, 2]
KeyframeColour = Callable[[AnalysedFrame, "np.ndarray | None", "np.ndarray | None"], np.ndarray]


@dataclass
class Segment:
    frames: list[AnalysedFrame]  # frames[0] is the keyframe; frames[1:] carry ab_fw / conf_fw
    key_ab: np.ndarray | None  # the keyframe's colour (None when planning only)
    next: AnalysedFrame | None = None  # the next keyframe of the same shot; None at the end of a shot
    next_ab: np.ndarray | None = None


class PlanDecisions:
    """Keyframe decisions from a given plan (``keyframes`` and ``shot_starts``, frame indices from 0):
    called as ``decide(cut, tracked)`` once per frame in order, like a KeyframeSelector."""

    def __init__(self, keyframes, shot_starts) -> None:
        self.keys = frozenset(int(k) for k in keyframes) | frozenset(int(s) for s in shot_starts) | {0}
        self.starts = frozenset(int(s) for s in shot_starts) | {0}
        self._i = 0

    def decide(self, cut: bool, tracked: float | None = None) -> Decision:
        i, self._i = self._i, self._i + 1
        return Decision(cut=i in self.starts, keyframe=i in self.keys)


class GivenColours:
    """Keyframe colours computed earlier: ``{frame index: ab [h, w, 2]}``, used as a ``colour`` source."""

    def __init__(self, ab_by_frame: dict[int, np.ndarray]) -> None:
        self.ab = ab_by_frame

    def __call__(self, frame: AnalysedFrame, init=None, conf=None) -> np.ndarray:
        if frame.index not in self.ab:
            raise InputError(f"frame {frame.index} is a keyframe of the plan but has no colour: colour the same "
                             "keyframe plan's frames first")
        return self.ab[frame.index]


class SegmentWalker:
    """``walk(frames) -> Iterator[Segment]``: the keyframe pass over analysed frames (see the module
    docstring). ``decide(cut, tracked) -> Decision``; ``colour``: a :data:`KeyframeColour` or None
    (planning only: decisions and chained confidence, no colour). Counts ``shots``, ``keyframes``,
    ``keyframe_indices``, ``shot_starts`` and ``max_buffered`` (most frames held at once)."""

    def __init__(self, decide: Callable[[bool, float | None], Decision], colour: KeyframeColour | None,
                 *, timer: StageTimer | None = None, on_shot: Callable[[AnalysedFrame], None] | None = None) -> None:
        self.decide, self.colour, self.on_shot = decide, colour, on_shot
        self.timer = timer if timer is not None else StageTimer()
        self.shots = 0
        self.keyframe_indices: list[int] = []
        self.shot_starts: list[int] = []
        self.max_buffered = 0

    @property
    def keyframes(self) -> int:
        return len(self.keyframe_indices)

    def _colour(self, f: AnalysedFrame, init=None, conf=None):
        self.keyframe_indices.append(f.index)
        return None if self.colour is None else self.colour(f, init, conf)

    def walk(self, frames: Iterable[AnalysedFrame]) -> Iterator[Segment]:
        seg: list[AnalysedFrame] = []  # seg[0] is the segment's keyframe, already coloured
        key_ab: np.ndarray | None = None
        for f in frames:
            tracked = None
            if seg and not f.cut:
                with self.timer("propagate"):
                    prev = seg[-1]
                    first = len(seg) == 1
                    src_ab = key_ab if first else prev.ab_fw
                    src_conf = np.ones(f.l_prop.shape, np.float32) if first else prev.conf_fw
                    if src_ab is None:  # planning: only the confidence travels
                        f.conf_fw = warp(src_conf, f.flows[0]) * f.conf_back
                    else:
                        f.ab_fw, f.conf_fw = carry(src_ab, src_conf, f.flows[0], f.conf_back)
                tracked = tracked_share(f.conf_fw)
            decision = self.decide(f.cut, tracked)
            self.max_buffered = max(self.max_buffered, len(seg) + 1)
            if decision.cut or not seg:
                if seg:
                    yield Segment(seg, key_ab)
                self.shots += 1
                self.shot_starts.append(f.index)
                if self.on_shot is not None:
                    self.on_shot(f)
                seg, key_ab = [f], self._colour(f)
            elif decision.keyframe:
                new_ab = self._colour(f, f.ab_fw, f.conf_fw)
                yield Segment(seg, key_ab, f, new_ab)
                seg, key_ab = [f], new_ab
            else:
                seg.append(f)
        if seg:
            yield Segment(seg, key_ab)


def fill_segment(seg: Segment) -> list[np.ndarray]:
    """Colour for every frame of a segment, ab ``[h, w, 2]`` each: the keyframe's own, then the forward
    chain blended with the backward chain from the next keyframe (forward only at a shot's end)."""
    out = [seg.key_ab]
    if seg.next is None:
        return out + [f.ab_fw for f in seg.frames[1:]]
    frames = seg.frames + [seg.next]
    ab_b, conf_b = seg.next_ab, np.ones(seg.next.l_prop.shape, np.float32)
    back = {}
    for j in range(len(frames) - 1, 1, -1):  # carry frame j's colour to j-1 along the flow (j-1 -> j)
        ab_b, conf_b = carry(ab_b, conf_b, frames[j].flows[1], frames[j].conf_fwd)
        back[j - 1] = (ab_b, conf_b)
    n = len(seg.frames)
    return out + [blend(seg.frames[j].ab_fw, seg.frames[j].conf_fw, *back[j], j / n) for j in range(1, n)]
