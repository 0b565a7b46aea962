"""The job: the manifest (``OUT_DIR/hueshift-job.json``), scheduling tasks on workers, retries and resume
(:func:`colorize_many`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path

import torch

from .. import video as _video
from ..errors import HueShiftError, InputError, VideoError
from ..hints import check_reference_image
from ..model.checkpoint import resolve_model_path
from ..outputs import atomic_write_bytes
from ..video import probe
from ..video import sequence as _sequence
from ..video.pipeline import MODES, PipelineOptions
from .backends import LocalBackend, RayBackend
from .inputs import MANIFEST, PARTS, expand_inputs, group_shots, output_names
from .pieces import join_videos
from .worker import JobResult

log = logging.getLogger(__name__)



# ---- the job -------------------------------------------------------------------------------------
def _settings(model: str | None, options: PipelineOptions, group_seconds: float, fps: Fraction,
              hints: dict | list | None = None, references: dict | None = None) -> dict:
    o = dataclasses.asdict(options)
    out = {"model": str(resolve_model_path(model).resolve()), "options": json.loads(json.dumps(o, default=str)),
           "group_seconds": group_seconds, "sequence_fps": str(fps)}
    if hints:
        out["hints"] = hints
    if references:
        out["references"] = references
    return out


def _reference_paths(references: dict | None) -> dict[str, dict[str, str]]:
    """``{stem: {frame: image path}}`` as JSON (absolute paths, frame keys as strings): for the manifest and tasks."""
    out: dict[str, dict[str, str]] = {}
    for stem, frames in (references or {}).items():
        if not isinstance(frames, Mapping):
            raise InputError(f"references for {stem!r} must map frame indices to image paths")
        for frame, path in frames.items():
            if not str(frame).lstrip("-").isdigit() or int(frame) < 0:
                raise InputError(f"reference {path} for {stem!r}: the frame must be an index from 0, got {frame!r}")
            out.setdefault(str(stem), {})[str(int(frame))] = str(Path(path).resolve())
    return out


def _hints_for(hints: dict | list | None, stem: str) -> list | None:
    """The hint points (JSON, :func:`hueshift_core.hints.points_from_json`) of one input: a list is every
    input's; a dict maps input stems to their lists."""
    if hints is None:
        return None
    return hints if isinstance(hints, list) else hints.get(stem)


def _stat(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def colorize_many(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, model: str | os.PathLike | None = None,
                  options: PipelineOptions = PipelineOptions(), *, ray: str | None = None, workers: int | None = None,
                  threads: int | None = None, device: str = "auto", group_seconds: float = 60.0, retries: int = 2,
                  force: bool = False, fps: Fraction | float = Fraction(24),
                  progress: bool | Callable[[int, int], None] = False, hints: dict | list | None = None,
                  references: dict | None = None) -> JobResult:
    """Colorize every video of ``inputs`` (files, folders, glob patterns) into ``out_dir/<stem>.mp4``.

    ``ray``: None = in this process; "auto" = a local Ray on this machine; else the address of a Ray
    cluster (``ray.init(address=...)``); an already initialised Ray is used as it is. ``workers``: how
    many (default: one per GPU, else one per ``threads`` CPUs). ``device``: "auto" = CUDA where there is
    a GPU (on Ray: one GPU per worker), else "cpu". ``group_seconds``: the length of a piece of
    a long video. ``retries``: extra attempts of a task whose worker failed or died. ``force``: redo
    everything. ``fps``: the frame rate of frame sequences (folders of images). ``progress``: True for a tqdm bar
    on stderr, or ``callable(done_frames, total_frames)``. ``hints``: the user's colours as JSON hint points
    (:mod:`hueshift_core.hints`), a list for every input or ``{input stem: list}``; each point's ``frame`` /
    ``time`` counts in its own video. ``references``: ``{input stem: {frame index: colour image path}}``
    (:func:`hueshift_core.hints.reference_folder` reads a folder of ``<stem>[@frame].png``); a stem that names
    no input is refused, a reference of another aspect ratio or past the end fails its input before any work.
    The manifest (``out_dir/hueshift-job.json``) is the result; ``JobResult.ok`` says whether all finished.
    """
    t0 = time.perf_counter()
    if options.mode not in MODES:
        raise InputError(f"mode must be one of {MODES}")
    if retries < 0 or group_seconds <= 0 or (workers is not None and workers < 1):
        raise InputError("retries must be >= 0, group_seconds > 0 and workers >= 1")
    if ray is not None:  # before any work: Ray is an optional extra
        try:
            import ray as _  # noqa: F401
        except ImportError:
            raise InputError("--ray needs Ray: pip install 'hueshift[cluster]' (or pip install ray)") from None
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; -o must be a folder (it is created if missing)")
    paths = expand_inputs(inputs)
    names = output_names(paths, out)
    refs = _reference_paths(references)
    unknown = sorted(set(refs) - set(names))
    if unknown:
        raise InputError(f"references name no input: {', '.join(unknown)} (a reference is named after its video's "
                         f"stem; the inputs are {', '.join(sorted(names)[:8])}{' ...' if len(names) > 8 else ''})")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the output folder {out}: {err.strerror or err}") from None
    fps = _sequence._check_fps(fps)  # of frame sequences, as `hueshift colorize` takes it
    model_arg = str(model) if model is not None else None
    job = _Job(out, _Manifest.open(out, _settings(model_arg, options, group_seconds, fps, hints, refs),
                                          force), options, group_seconds, retries, hints, refs)
    job.plan(names, fps, force)
    if job.todo:
        if ray is None and device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        backend = (LocalBackend(model_arg, options, device, threads, job.local_progress)
                   if ray is None else RayBackend(ray, model_arg, options, device, threads, workers))
        job.run(backend, progress)
    job.result.seconds = time.perf_counter() - t0
    return job.result


class _Manifest:
    """The job's record, ``OUT_DIR/hueshift-job.json``: settings and one entry per input, rewritten atomically
    after every change."""

    def __init__(self, path: Path, data: dict) -> None:
        self.path, self.data = path, data

    @classmethod
    def open(cls, out: Path, settings: dict, force: bool) -> "_Manifest":
        """The manifest of ``out``: the earlier run's when its settings are these (not with ``force``), else new."""
        path = out / MANIFEST
        data = {"version": 1, "settings": settings, "inputs": {}}
        if path.exists() and not force:
            try:
                old = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise InputError(f"{path} is not a readable job manifest ({err}); delete it or use --force") from None
            if old.get("settings") != settings:
                raise InputError(f"{out} holds a job run with other settings (model, options or group length); "
                                 "use another folder, the same options, or --force to redo it")
            data = old
        return cls(path, data)

    @property
    def entries(self) -> dict:
        return self.data["inputs"]

    def save(self) -> None:
        self.data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_bytes(self.path, json.dumps(self.data, indent=1).encode(), "job manifest")


class _Job:
    """One run of :func:`colorize_many`: which inputs to do (:meth:`plan`), then tasks on a backend until every
    input is done or failed (:meth:`run`): whole videos, or a scan of a long one and its pieces, joined at the end."""

    def __init__(self, out: Path, manifest: _Manifest, options: PipelineOptions, group_seconds: float, retries: int,
                 hints: dict | list | None, references: dict[str, dict[str, str]]) -> None:
        self.out, self.manifest, self.options = out, manifest, options
        self.entries = manifest.entries
        self.group_seconds, self.retries, self.hints, self.references = group_seconds, retries, hints, references
        self.result = JobResult(manifest.data)
        self.parts_root = out / PARTS
        self.todo: list[str] = []
        self.infos: dict = {}
        self.group: dict[str, int] = {}
        self.attempt_no: dict[str, int] = {}
        self.running: dict[str, int] = {}  # attempt key -> frames done so far
        self.finished = 0  # frames of finished tasks
        self.total = 0
        self.backend = None
        self._show: Callable[[int, int], None] | None = None

    # ---- before the work ---------------------------------------------------------------------------
    def plan(self, names: dict, fps: Fraction, force: bool) -> None:
        """An entry per input: skipped when done and unchanged, failed when unreadable, else to do."""
        for stem, src in names.items():
            dst = self.out / f"{stem}.mp4"
            e = self.entries.get(stem)
            src_abs = str(src.resolve())
            try:
                stat = _stat(src)
            except OSError:
                stat = None
            if (e and e.get("state") == "done" and e.get("input") == src_abs and e.get("input_stat") == stat
                    and dst.exists() and not force):
                self.result.skipped.append(stem)
                continue
            old = e
            self.entries[stem] = e = {"input": src_abs, "output": str(dst.resolve()), "input_stat": stat,
                                      "state": "pending", "frames": None, "fps": None, "keyframes": None,
                                      "shots": None, "error": None, "retries": 0, "pieces": None, "scan": None}
            if old and old.get("input_stat") == stat and old.get("input") == src_abs and not force:
                e["pieces"], e["scan"] = old.get("pieces"), old.get("scan")  # a long video resumes where it stopped
            try:
                info = _sequence.probe_sequence(src, fps) if src.is_dir() else probe(src)
                _video.check_writable(dst, [src])
                for frame, path in self.references.get(stem, {}).items():
                    check_reference_image(path, int(frame), info.height, info.width, info.frame_count or None)
            except HueShiftError as err:
                e.update(state="failed", error=str(err))
                self.result.failed.append(stem)
                continue
            e["frames"], e["fps"] = info.frame_count, str(info.fps)
            self.infos[stem] = info
            self.todo.append(stem)
        # (inputs of an earlier run of this job that are not named this time stay in the manifest as they are)
        self.total = sum(self.entries[s]["frames"] or 0 for s in self.todo)
        self.group = {s: max(1, round(self.group_seconds * float(Fraction(self.entries[s]["fps"])))) for s in self.todo}
        self.manifest.save()

    # ---- progress ----------------------------------------------------------------------------------
    def local_progress(self, key: str, n: int) -> None:
        if key in self.running:
            self.running[key] += n
        self.show()

    def show(self) -> None:
        if self._show is not None:
            self._show(self.finished + sum(self.running.values()), self.total)

    # ---- tasks ---------------------------------------------------------------------------------------
    def submit(self, task: dict) -> None:
        key = task["key"]
        self.attempt_no[key] = self.attempt_no.get(key, 0) + 1
        task["attempt_key"] = f"{key}#{self.attempt_no[key]}"
        self.running[task["attempt_key"]] = 0
        self.backend.submit({**task, "key": task["attempt_key"], "fps": self.entries[task["stem"]]["fps"],
                             "hints": _hints_for(self.hints, task["stem"]),
                             "references": self.references.get(task["stem"])})

    def submit_whole(self, stem: str) -> None:
        e = self.entries[stem]
        self.submit({"kind": "whole", "key": stem, "stem": stem, "input": e["input"], "output": e["output"]})

    def start(self) -> int:
        """The first task of every input (a whole video, a scan, or the pieces an earlier scan planned); how many."""
        pending = 0
        for stem in self.todo:
            e, info = self.entries[stem], self.infos[stem]
            e["state"] = "running"
            long = (self.options.mode == "keyframes" and not info.variable_rate
                    and info.frame_count > 2 * self.group[stem])
            if long and e.get("scan") and e["scan"].get("splittable"):  # scanned in an earlier run
                self.plan_pieces(stem, e["scan"])
                pending += sum(p["state"] == "running" for p in e["pieces"])
            elif long:
                self.submit({"kind": "scan", "key": f"{stem}:scan", "stem": stem, "input": e["input"]})
                pending += 1
            else:
                self.submit_whole(stem)
                pending += 1
        self.manifest.save()
        return pending

    def plan_pieces(self, stem: str, scan: dict) -> None:
        """Split a scanned long video into groups of whole shots; submit the pieces not done yet."""
        e = self.entries[stem]
        pieces = group_shots(scan["starts"], scan["frames"], self.group[stem])
        start_pts = dict(zip(scan["starts"], scan["start_pts"]))
        old = {(p["first"], p["end"]): p for p in (e.get("pieces") or [])}
        e["frames"], e["shots"] = scan["frames"], len(scan["starts"])
        e["scan"] = {k: scan[k] for k in ("starts", "start_pts", "frames", "splittable")}
        e["pieces"] = []
        folder = self.parts_root / stem
        folder.mkdir(parents=True, exist_ok=True)
        for first, end in pieces:
            path = folder / f"{first:09d}-{end:09d}.mp4"
            prev = old.get((first, end))
            p = {"first": first, "end": end, "state": "pending", "keyframes": None, "shots": None, "output": str(path)}
            if prev and prev.get("state") == "done" and path.exists():
                p.update(state="done", keyframes=prev.get("keyframes"), shots=prev.get("shots"))
                self.finished += end - first
            e["pieces"].append(p)
        for p in e["pieces"]:
            if p["state"] != "done":
                p["state"] = "running"
                self.submit({"kind": "piece", "key": f"{stem}:{p['first']}", "stem": stem, "input": e["input"],
                             "output": p["output"], "first": p["first"], "end": p["end"],
                             "start_pts": start_pts[p["first"]],
                             "stop_pts": start_pts[p["end"]] if p["end"] < scan["frames"] else None})
        if all(p["state"] == "done" for p in e["pieces"]):
            self.finish_join(stem)

    def finish_join(self, stem: str) -> None:
        """Join a long video's pieces (no re-encoding; its audio once) into its output."""
        e = self.entries[stem]
        try:
            info = self.infos[stem]
            n = join_videos([Path(p["output"]) for p in e["pieces"]], Path(e["output"]), Fraction(e["fps"]),
                            Path(e["input"]) if info.has_audio else None)
            if n != e["frames"]:
                raise VideoError(f"the joined video has {n} frames, its pieces {e['frames']}")
        except HueShiftError as err:
            self.fail(stem, str(err))
            return
        e.update(state="done", error=None, keyframes=sum(p["keyframes"] for p in e["pieces"]),
                 shots=sum(p["shots"] for p in e["pieces"]))
        shutil.rmtree(self.parts_root / stem, ignore_errors=True)
        try:
            self.parts_root.rmdir()  # when no other video's pieces are left
        except OSError:
            pass
        self.result.done.append(stem)

    def fail(self, stem: str, msg: str) -> None:
        self.entries[stem].update(state="failed", error=msg)
        self.result.failed.append(stem)

    def handle(self, task: dict, res: dict) -> int:
        """A task's result: record it, retry or fail, submit what follows; how many new tasks were submitted."""
        stem = task["stem"]
        e = self.entries[stem]
        key = task["key"].rsplit("#", 1)[0]
        self.running.pop(task["key"], 0)
        if e["state"] == "failed":
            return 0
        if "error" in res:
            if res.get("retry") and self.attempt_no[key] <= self.retries:
                e["retries"] = e.get("retries", 0) + 1
                log.warning("%s: %s; retrying (attempt %d of %d)", key, res["error"], self.attempt_no[key] + 1,
                            self.retries + 1)
                self.submit({k: v for k, v in task.items() if k != "attempt_key"} | {"key": key})
                return 1
            self.fail(stem, res["error"] + (f" (after {self.attempt_no[key]} attempts)" if res.get("retry") else ""))
            for p in e.get("pieces") or []:
                if p["state"] == "running":
                    p["state"] = "pending"
            return 0
        if task["kind"] == "whole":
            self.finished += res["frames"]
            e.update(state="done", error=None, frames=res["frames"], keyframes=res["keyframes"], shots=res["shots"],
                     seconds=res["seconds"])
            self.result.done.append(stem)
            return 0
        if task["kind"] == "scan":
            if not res["splittable"]:
                self.submit_whole(stem)
                return 1
            self.plan_pieces(stem, res)
            return sum(p["state"] == "running" for p in e["pieces"])
        self.finished += res["frames"]
        p = next(p for p in e["pieces"] if p["first"] == task["first"])
        p.update(state="done", keyframes=res["keyframes"], shots=res["shots"])
        if all(q["state"] == "done" for q in e["pieces"]):
            self.finish_join(stem)
        return 0

    # ---- the run -------------------------------------------------------------------------------------
    def run(self, backend, progress: bool | Callable[[int, int], None]) -> None:
        """Every task to its end on ``backend``; whatever happens, what did not finish is left pending."""
        self.backend = backend
        bar = None
        if progress is True:
            from tqdm import tqdm

            bar = tqdm(total=self.total, unit="frame", desc="colorize-many", file=sys.stderr, dynamic_ncols=True)

            def show(done: int, total: int) -> None:
                bar.n = min(done, total)
                bar.refresh()

            self._show = show
        elif callable(progress):
            self._show = progress
        interrupted = False
        try:
            outstanding = self.start()
            last_show = 0.0
            while outstanding:
                for task, res in backend.wait():
                    outstanding += self.handle(task, res) - 1
                    self.manifest.save()
                if time.monotonic() - last_show > 0.5:
                    prog = backend.progress()
                    for k in list(self.running):
                        if k in prog:
                            self.running[k] = prog[k]
                    self.show()
                    last_show = time.monotonic()
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            backend.close(interrupted)
            self.leave_pending()
            self.manifest.save()
            self.show()
            if bar is not None:
                bar.close()

    def leave_pending(self) -> None:
        """What did not finish is pending for the next run; no temporary file is left."""
        for stem in self.todo:
            e = self.entries[stem]
            if e["state"] == "running":
                e["state"] = "pending"
            for p in e.get("pieces") or []:
                if p["state"] == "running":
                    p["state"] = "pending"
                    Path(p["output"]).with_name(_video.temp_name(Path(p["output"]))).unlink(missing_ok=True)
            dst = Path(e["output"])
            tmp = dst.with_name(_video.temp_name(dst))
            tmp.unlink(missing_ok=True)
            tmp.with_name(tmp.name + ".audio" + dst.suffix).unlink(missing_ok=True)
