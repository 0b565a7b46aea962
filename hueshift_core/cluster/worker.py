"""The worker: loads the model once and runs tasks (a whole video, or one piece of a long one), and the
:class:`JobResult` of a job."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from .. import video as _video
from ..errors import HueShiftError, VideoError
from ..hints import points_from_json, read_reference, user_colours
from ..model.checkpoint import get_model
from ..video import VideoWriter, probe
from ..video import sequence as _sequence
from ..video.files import colorize_video
from ..video.pipeline import PipelineOptions, VideoPipeline
from .inputs import sequence_frames
from .pieces import batches, frames_with_pts

log = logging.getLogger(__name__)



# ---- the worker ----------------------------------------------------------------------------------
class Worker:
    """Loads the model once; runs tasks (dicts) and returns dicts: never raises for a task's failure,
    so a Ray actor and an in-process worker report the same way. ``{"error": msg, "retry": bool}``:
    bad input is not retried, anything else is."""

    def __init__(self, model: str | None, options: PipelineOptions, device: str = "cpu", threads: int | None = None,
                 progress=None) -> None:
        if threads:
            torch.set_num_threads(threads)
            cv2.setNumThreads(threads)
        self.options, self.device = options, device
        self.model = get_model(model, device)
        self._progress = progress  # a Ray actor handle (``add.remote(key, n)``) or a callable(key, n)

    def pid(self) -> int:
        return os.getpid()

    def _reporter(self, key: str) -> Callable[[int], None]:
        prog = self._progress
        if prog is None:
            return lambda n: None
        if callable(prog):
            return lambda n: prog(key, n)
        pending, last = [0], [time.monotonic()]

        def report(n: int) -> None:  # a Ray actor: a few messages a second at most
            pending[0] += n
            now = time.monotonic()
            if now - last[0] > 0.3:
                prog.add.remote(key, pending[0])
                pending[0], last[0] = 0, now

        report.flush = lambda: pending[0] and prog.add.remote(key, pending[0])  # type: ignore[attr-defined]
        return report

    def run(self, task: dict) -> dict:
        report = self._reporter(task["key"])
        t0 = time.perf_counter()
        try:
            if task["kind"] == "scan":
                out = self._scan(task)
            elif task["kind"] == "piece":
                out = self._piece(task, report)
            else:
                out = self._whole(task, report)
            out["seconds"] = round(time.perf_counter() - t0, 3)
            return out
        except HueShiftError as err:
            return {"error": str(err), "retry": False}
        except Exception as err:  # noqa: BLE001 — reported to the driver, which retries
            log.debug("task %s failed:\n%s", task["key"], traceback.format_exc())
            return {"error": f"{type(err).__name__}: {err}", "retry": True}
        finally:
            flush = getattr(report, "flush", None)
            if flush:
                flush()

    def _whole(self, task: dict, report) -> dict:
        dst = Path(task["output"])
        dst.with_name(_video.temp_name(dst)).unlink(missing_ok=True)  # left by a killed attempt
        if Path(task["input"]).is_dir():  # a frame sequence: one piece from its first frame to its end
            return self._piece({**task, "first": 0, "end": None, "start_pts": 0, "stop_pts": None}, report)
        res = colorize_video(task["input"], dst, self.model, self.options, device=self.device, progress=report,
                             hints=_points(task), references=_references(task))
        return {"frames": res.frames, "keyframes": res.keyframes, "shots": res.shots, "fps": str(res.fps)}

    def _scan(self, task: dict) -> dict:
        """Shot starts and their timestamps; ``splittable`` is False when frames cannot be found again by
        timestamp (missing or non-increasing pts, variable frame rate)."""
        pts: list = []
        pipe = VideoPipeline(self.model, self.options)
        src = sequence_frames(task["input"]) if Path(task["input"]).is_dir() else frames_with_pts(task["input"])
        starts, n = pipe.scan(batches(src, self.options.decode_batch, pts))
        ok = all(p is not None for p in pts) and all(b > a for a, b in zip(pts, pts[1:]))
        return {"starts": starts, "frames": n, "splittable": ok, "start_pts": [pts[i] for i in starts]}

    def _piece(self, task: dict, report) -> dict:
        dst = Path(task["output"])
        dst.with_name(_video.temp_name(dst)).unlink(missing_ok=True)
        first, end = task["first"], task["end"]
        if Path(task["input"]).is_dir():
            info = _sequence.probe_sequence(task["input"], Fraction(task["fps"]))
            frames = sequence_frames(task["input"], first, end)
        else:
            info = probe(task["input"])
            frames = frames_with_pts(task["input"], task["start_pts"], task["stop_pts"])
        end = info.frame_count if end is None else end
        user = None
        if task.get("hints") or task.get("references"):  # frames count in the whole video; the pipeline takes its piece's share
            user = user_colours(info.height, info.width, fps=float(info.fps), num_frames=info.frame_count or None,
                                hints=_points(task), references=_references(task))
        pipe = VideoPipeline(self.model, self.options, first_frame=first, user=user)
        seen: list = []
        with VideoWriter(dst, info.width, info.height, info.fps, keyframes=pipe.shot_starts) as writer:
            with contextlib.closing(pipe.run(batches(frames, self.options.decode_batch, seen, limit=end - first),
                                             report)) as outs:  # an error here ends the pipeline's threads now
                for out in outs:
                    writer.write(out)
            if writer.frames != end - first or (seen and seen[0] != task["start_pts"]):
                raise VideoError(f"{task['input']}: frames {first}-{end - 1} decoded as {writer.frames} frames "
                                 "(the file changed since its first pass?)")
        s = pipe.stats
        return {"frames": s.frames, "keyframes": s.keyframes, "shots": s.shots, "fps": str(info.fps)}


@dataclass
class JobResult:
    manifest: dict
    done: list[str] = field(default_factory=list)  # stems finished in this run
    skipped: list[str] = field(default_factory=list)  # stems already done before this run
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and all(e["state"] == "done" for e in self.manifest["inputs"].values())


def _points(task: dict) -> list | None:
    """A task's hint points (JSON), parsed."""
    return points_from_json(task["hints"], f"hints for {Path(task['input']).name}") if task.get("hints") else None


def _references(task: dict) -> dict[int, np.ndarray] | None:
    """A task's reference frames, ``{frame: image path}`` (JSON), read: {frame index: uint8 RGB}."""
    refs = task.get("references")
    return {int(frame): read_reference(path) for frame, path in refs.items()} if refs else None
