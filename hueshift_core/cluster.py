"""``hueshift colorize-many INPUTS... -o OUT_DIR``: colorize many videos, and long videos in pieces, on many workers.

Inputs are video files, folders (the videos inside), glob patterns and frame sequences (a folder of images).
The job is a list of tasks: one per video, or, for a video longer than about two shot groups, one per
group of whole shots (``group_seconds`` long, one minute by default). Tasks run on workers that load the
model once and keep it: one in this process (no ``ray``), or Ray actors (``ray="auto"``: a private local
Ray on this machine; ``ray="ADDRESS"``: an existing Ray cluster), one per GPU when the cluster has GPUs.
Both give the same results: the same tasks, each deterministic.

A long video:

1. a cheap first pass (decode, L, the pipeline's own cut detector; no flow, no model) finds its shots;
2. consecutive shots are grouped into pieces of about ``group_seconds``; each piece is decoded from the
   nearest keyframe before it (a seek), colorized with ``VideoPipeline(first_frame=...)`` and encoded on
   its own (``OUT_DIR/.hueshift-parts/<stem>/``);
3. the encoded pieces are joined without re-encoding (packets copied, timestamps shifted by the frames
   before them) and the source's audio is added once.

Colour never crosses a cut and every shot draws its random numbers from (seed, its first frame)
(:func:`hueshift_core.pipeline.shot_generator`), so the pieces decode to exactly the frames a
single-process run produces, up to the encoder's rounding (each piece is its own H.264 stream).

Every output is written to a hidden temporary name and renamed when complete. The job's manifest,
``OUT_DIR/hueshift-job.json``, records each input's state (pending, running, done, failed), frames, fps,
keyframes, shots, attempts and error, and is rewritten after every change: rerunning the same command
skips what is done (an output whose input changed is redone). A task whose worker fails or dies is
retried up to ``retries`` times, then reported; bad input (a corrupt file) is reported at once.

Ray is optional (``pip install hueshift[cluster]``) and imported only when ``ray`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter
import cv2
import numpy as np
import torch

from . import sequence as _sequence
from . import video as _video
from .colorize import SampleOptions, get_model, resolve_model_path
from .diffusion import Sampler
from .errors import HueShiftError, InputError, VideoError
from .keyframes import KeyframeOptions
from .outputs import atomic_write_bytes
from .pipeline import MODES, PipelineOptions, VideoPipeline, colorize_video
from .video import VideoWriter, probe

log = logging.getLogger(__name__)

MANIFEST = "hueshift-job.json"
PARTS = ".hueshift-parts"
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
                  ".mxf", ".wmv", ".flv", ".ogv", ".dv", ".y4m", ".h264", ".264", ".hevc", ".265")
GLOB_CHARS = set("*?[")


# ---- frame sequences (a folder of images is one input; read as hueshift_core.sequence reads them) -------
def _is_sequence_folder(folder: Path) -> bool:
    try:
        return bool(_sequence.sequence_files(folder))
    except HueShiftError:
        return False


def _sequence_frames(folder: str, first: int = 0, end: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
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


# ---- decoding a piece ----------------------------------------------------------------------------
def _frames_with_pts(path: str, start_pts: int | None = None, stop_pts: int | None = None) -> Iterator[tuple[int | None, np.ndarray]]:
    """(pts, uint8 RGB) of every frame with ``start_pts <= pts < stop_pts`` in display order, decoded
    from the keyframe at or before ``start_pts`` (a seek), converted as :func:`video.read_frames` does."""
    reformatter = VideoReformatter()
    with _video.open_video(path) as c:
        s = _video.video_stream(c)
        s.thread_type = "AUTO"
        if start_pts is not None:
            c.seek(start_pts, stream=s, backward=True)
        for frame in _video.decode_packets(c, s, []):
            if start_pts is not None and (frame.pts is None or frame.pts < start_pts):
                continue
            if stop_pts is not None and frame.pts is not None and frame.pts >= stop_pts:
                break
            yield frame.pts, _video.frame_to_rgb(frame, s, reformatter)


def _batches(frames: Iterator[tuple[int | None, np.ndarray]], size: int, pts: list | None = None,
             limit: int | None = None) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    n = 0
    for p, rgb in frames:
        if limit is not None and n >= limit:
            break
        if pts is not None:
            pts.append(p)
        batch.append(rgb)
        n += 1
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


# ---- joining pieces ------------------------------------------------------------------------------
def join_videos(parts: list[Path], dst: Path, fps: Fraction, audio_from: Path | None = None) -> int:
    """Concatenate H.264 mp4 ``parts`` (made by one encoder with one set of settings, frames at 1/fps)
    into ``dst`` without re-encoding: each part's packets shifted by the frames before it. Adds
    ``audio_from``'s audio once. Atomic like :class:`~hueshift_core.video.VideoWriter`. Returns the frames."""
    dst = Path(dst)
    tmp = dst.with_name(_video.temp_name(dst))
    audio_tmp = tmp.with_name(tmp.name + ".audio" + dst.suffix)
    fmt = _video.FORMATS.get(dst.suffix.lower(), "mp4")
    frames = 0
    ok = False
    try:
        opts = {"movflags": "+faststart"} if fmt in ("mp4", "mov") and audio_from is None else {}
        with av.open(str(tmp), mode="w", format=fmt, container_options=opts) as out:
            o_stream, extradata, last_dts = None, None, None
            for part in parts:
                with av.open(str(part)) as inp:
                    s = inp.streams.video[0]
                    if o_stream is None:
                        o_stream = out.add_stream_from_template(s)
                        extradata = bytes(s.codec_context.extradata or b"")
                    elif bytes(s.codec_context.extradata or b"") != extradata:
                        raise VideoError(f"{part} was encoded with other settings than the first piece; "
                                         "delete the job's .hueshift-parts folder and run again")
                    shift = round(Fraction(frames) / fps / s.time_base)
                    n = 0
                    for pkt in inp.demux(s):
                        if pkt.dts is None:
                            continue
                        pkt.pts += shift
                        pkt.dts += shift
                        if last_dts is not None and pkt.dts <= last_dts:  # never expected: parts share one delay
                            pkt.dts = last_dts + 1
                            if pkt.dts > pkt.pts:
                                raise VideoError(f"{part} cannot follow the piece before it without re-encoding")
                        last_dts = pkt.dts
                        pkt.stream = o_stream
                        out.mux(pkt)
                        n += 1
                    frames += n
        if audio_from is not None:
            err = None
            for transcode in (False, True):
                try:
                    if _video.mux_audio(tmp, Path(audio_from), audio_tmp, fmt, transcode):
                        os.replace(audio_tmp, tmp)
                    err = None
                    break
                except (av.error.FFmpegError, ValueError, OSError) as e:
                    err = e
                    audio_tmp.unlink(missing_ok=True)
            if err is not None:
                log.warning("the audio of %s could not be added (%s); %s is video only", audio_from, err, dst)
        os.replace(tmp, dst)
        ok = True
    except av.error.FFmpegError as err:
        raise VideoError(f"joining the pieces of {dst} failed ({err})") from None
    finally:
        if not ok:
            tmp.unlink(missing_ok=True)
            audio_tmp.unlink(missing_ok=True)
    return frames


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
        res = colorize_video(task["input"], dst, self.model, self.options, device=self.device, progress=report)
        return {"frames": res.frames, "keyframes": res.keyframes, "shots": res.shots, "fps": str(res.fps)}

    def _scan(self, task: dict) -> dict:
        """Shot starts and their timestamps; ``splittable`` is False when frames cannot be found again by
        timestamp (missing or non-increasing pts, variable frame rate)."""
        pts: list = []
        pipe = VideoPipeline(self.model, self.options)
        src = _sequence_frames(task["input"]) if Path(task["input"]).is_dir() else _frames_with_pts(task["input"])
        starts, n = pipe.scan(_batches(src, self.options.decode_batch, pts))
        ok = all(p is not None for p in pts) and all(b > a for a, b in zip(pts, pts[1:]))
        return {"starts": starts, "frames": n, "splittable": ok, "start_pts": [pts[i] for i in starts]}

    def _piece(self, task: dict, report) -> dict:
        dst = Path(task["output"])
        dst.with_name(_video.temp_name(dst)).unlink(missing_ok=True)
        first, end = task["first"], task["end"]
        if Path(task["input"]).is_dir():
            info = _sequence.probe_sequence(task["input"], Fraction(task["fps"]))
            frames = _sequence_frames(task["input"], first, end)
        else:
            info = probe(task["input"])
            frames = _frames_with_pts(task["input"], task["start_pts"], task["stop_pts"])
        end = info.frame_count if end is None else end
        pipe = VideoPipeline(self.model, self.options, first_frame=first)
        seen: list = []
        with VideoWriter(dst, info.width, info.height, info.fps) as writer:
            for out in pipe.run(_batches(frames, self.options.decode_batch, seen, limit=end - first), report):
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


# ---- backends ------------------------------------------------------------------------------------
class _Local:
    """One worker in this process; tasks run one at a time, in order."""

    def __init__(self, model, options, device, threads, on_progress) -> None:
        self.worker = Worker(model, options, device, threads, progress=on_progress)
        self.slots = 1
        self._queue: deque = deque()

    def submit(self, task: dict) -> None:
        self._queue.append(task)

    def wait(self) -> list[tuple[dict, dict]]:
        task = self._queue.popleft()
        return [(task, self.worker.run(task))]

    def progress(self) -> dict[str, int]:
        return {}

    def close(self, interrupted: bool = False) -> None:
        pass


class _Ray:
    """Ray actors, one task at a time each; a dead actor is replaced and its task handed back to be retried."""

    def __init__(self, address: str, model, options, device, threads, workers: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise InputError("--ray needs Ray: pip install 'hueshift[cluster]' (or pip install ray)") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            env = {"env_vars": {"OMP_NUM_THREADS": str(threads or 1)}}
            if address == "auto":
                ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=True, runtime_env=env,
                         logging_level=logging.WARNING)
            else:
                ray.init(address=address, include_dashboard=False, runtime_env=env, logging_level=logging.WARNING)
            self.started = True
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        cpus = max(1, int(res.get("CPU", 1)))
        if device == "auto":
            device = "cuda" if gpus else "cpu"
        use_gpu = device.startswith("cuda")
        if use_gpu and not gpus:
            raise InputError(f"--device {device}, but the Ray cluster has no GPUs; use --device cpu")
        device = "cuda" if use_gpu else device  # each GPU worker sees only its own GPU
        self.per_cpus = threads or 1
        self.slots = workers or (gpus if use_gpu else max(1, cpus // self.per_cpus))

        @ray.remote(num_cpus=0)
        class Progress:
            def __init__(self):
                self.done: dict[str, int] = {}

            def add(self, key: str, n: int) -> None:
                self.done[key] = self.done.get(key, 0) + n

            def get(self) -> dict[str, int]:
                return self.done

        self.progress_actor = Progress.remote()
        self._actor_cls = ray.remote(Worker).options(num_cpus=self.per_cpus, num_gpus=1 if use_gpu else 0,
                                                     max_restarts=0)
        self._args = (model, options, device, self.per_cpus, self.progress_actor)
        self.idle = [self._actor_cls.remote(*self._args) for _ in range(self.slots)]
        self.busy: dict = {}  # ref -> (actor, task)
        self._queue: deque = deque()
        self._progress: dict[str, int] = {}

    def submit(self, task: dict) -> None:
        self._queue.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and self.idle:
            actor, task = self.idle.pop(), self._queue.popleft()
            self.busy[actor.run.remote(task)] = (actor, task)

    def wait(self, timeout: float = 0.5) -> list[tuple[dict, dict]]:
        ray = self.ray
        ready, _ = ray.wait(list(self.busy), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            actor, task = self.busy.pop(ref)
            try:
                res = ray.get(ref)
                self.idle.append(actor)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as err:
                res = {"error": f"worker died ({type(err).__name__})", "retry": True}
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 — already gone
                    pass
                self.idle.append(self._actor_cls.remote(*self._args))
            except ray.exceptions.RayError as err:
                res = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", "retry": True}
                self.idle.append(actor)
            out.append((task, res))
        self._dispatch()
        return out

    def progress(self) -> dict[str, int]:
        try:
            self._progress = self.ray.get(self.progress_actor.get.remote(), timeout=5)
        except Exception:  # noqa: BLE001 — progress is cosmetic
            pass
        return self._progress

    def close(self, interrupted: bool = False) -> None:
        ray = self.ray
        busy = [a for a, _ in self.busy.values()]
        for actor in [*self.idle, *busy]:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass
        for actor in busy:  # wait until the killed workers are gone, so none writes after the clean-up
            try:
                ray.get(actor.pid.remote(), timeout=10)
            except Exception:  # noqa: BLE001 — RayActorError once it is dead
                pass
        try:
            ray.kill(self.progress_actor)
        except Exception:  # noqa: BLE001
            pass
        self.idle, self.busy = [], {}
        if self.started:
            ray.shutdown()


# ---- the job -------------------------------------------------------------------------------------
def _settings(model: str | None, options: PipelineOptions, group_seconds: float, fps: Fraction) -> dict:
    o = dataclasses.asdict(options)
    return {"model": str(resolve_model_path(model).resolve()), "options": json.loads(json.dumps(o, default=str)),
            "group_seconds": group_seconds, "sequence_fps": str(fps)}


def _stat(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def colorize_many(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, model: str | os.PathLike | None = None,
                  options: PipelineOptions = PipelineOptions(), *, ray: str | None = None, workers: int | None = None,
                  threads: int | None = None, device: str = "auto", group_seconds: float = 60.0, retries: int = 2,
                  force: bool = False, fps: Fraction | float = Fraction(24),
                  progress: bool | Callable[[int, int], None] = False) -> JobResult:
    """Colorize every video of ``inputs`` (files, folders, glob patterns) into ``out_dir/<stem>.mp4``.

    ``ray``: None = in this process; "auto" = a local Ray on this machine; else the address of a Ray
    cluster (``ray.init(address=...)``); an already initialised Ray is used as it is. ``workers``: how
    many (default: one per GPU, else one per ``threads`` CPUs). ``device``: "auto" = CUDA where there is
    a GPU (on Ray: one GPU per worker), else "cpu". ``group_seconds``: the length of a piece of
    a long video. ``retries``: extra attempts of a task whose worker failed or died. ``force``: redo
    everything. ``fps``: the frame rate of frame sequences (folders of images). ``progress``: True for a tqdm bar on stderr, or ``callable(done_frames, total_frames)``.
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
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the output folder {out}: {err.strerror or err}") from None
    fps = _sequence._check_fps(fps)  # of frame sequences, as `hueshift colorize` takes it
    settings = _settings(str(model) if model is not None else None, options, group_seconds, fps)
    mpath = out / MANIFEST
    manifest = {"version": 1, "settings": settings, "inputs": {}}
    if mpath.exists() and not force:
        try:
            old = json.loads(mpath.read_text())
        except (OSError, ValueError) as err:
            raise InputError(f"{mpath} is not a readable job manifest ({err}); delete it or use --force") from None
        if old.get("settings") != settings:
            raise InputError(f"{out} holds a job run with other settings (model, options or group length); "
                             "use another folder, the same options, or --force to redo it")
        manifest = old

    def save() -> None:
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_bytes(mpath, json.dumps(manifest, indent=1).encode(), "job manifest")

    result = JobResult(manifest)
    entries = manifest["inputs"]
    todo: list[str] = []
    for stem, src in names.items():
        dst = out / f"{stem}.mp4"
        e = entries.get(stem)
        src_abs = str(src.resolve())
        try:
            stat = _stat(src)
        except OSError:
            stat = None
        if (e and e.get("state") == "done" and e.get("input") == src_abs and e.get("input_stat") == stat
                and dst.exists() and not force):
            result.skipped.append(stem)
            continue
        old = e
        entries[stem] = e = {"input": src_abs, "output": str(dst.resolve()), "input_stat": stat, "state": "pending",
                             "frames": None, "fps": None, "keyframes": None, "shots": None, "error": None,
                             "retries": 0, "pieces": None, "scan": None}
        if old and old.get("input_stat") == stat and old.get("input") == src_abs and not force:
            e["pieces"], e["scan"] = old.get("pieces"), old.get("scan")  # a long video resumes where it stopped
        try:
            info = _sequence.probe_sequence(src, fps) if src.is_dir() else probe(src)
            _video.check_writable(dst, [src])
        except HueShiftError as err:
            e.update(state="failed", error=str(err))
            result.failed.append(stem)
            continue
        e["frames"], e["fps"] = info.frame_count, str(info.fps)
        e["_info"] = info
        todo.append(stem)
    # (inputs of an earlier run of this job that are not named this time stay in the manifest as they are)
    total = sum(entries[s]["frames"] or 0 for s in todo)
    infos = {s: entries[s].pop("_info") for s in todo}
    save()
    if not todo:
        result.seconds = time.perf_counter() - t0
        return result

    finished_frames = [0]
    running: dict[str, int] = {}

    def local_progress(key: str, n: int) -> None:
        if key in running:
            running[key] += n
        show()

    model_arg = str(model) if model is not None else None
    if ray is None and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    backend = (_Local(model_arg, options, device, threads, local_progress)
               if ray is None else _Ray(ray, model_arg, options, device, threads, workers))
    bar = None
    if progress is True:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="colorize-many", file=sys.stderr, dynamic_ncols=True)

    def show() -> None:
        done = finished_frames[0] + sum(running.values())
        if bar is not None:
            bar.n = min(done, total)
            bar.refresh()
        elif callable(progress):
            progress(done, total)

    group = {s: max(1, round(group_seconds * float(Fraction(entries[s]["fps"])))) for s in todo}
    parts_root = out / PARTS
    attempt_no: dict[str, int] = {}

    def submit(task: dict) -> None:
        attempt_no[task["key"]] = attempt_no.get(task["key"], 0) + 1
        task["attempt_key"] = f"{task['key']}#{attempt_no[task['key']]}"
        running[task["attempt_key"]] = 0
        task = {**task, "key": task["attempt_key"], "fps": entries[task["stem"]]["fps"]}
        backend.submit(task)

    def plan_pieces(stem: str, scan: dict) -> None:
        e = entries[stem]
        src = e["input"]
        pieces = group_shots(scan["starts"], scan["frames"], group[stem])
        start_pts = dict(zip(scan["starts"], scan["start_pts"]))
        old = {(p["first"], p["end"]): p for p in (e.get("pieces") or [])}
        e["frames"] = scan["frames"]
        e["shots"] = len(scan["starts"])
        e["scan"] = {k: scan[k] for k in ("starts", "start_pts", "frames", "splittable")}
        e["pieces"] = []
        folder = parts_root / stem
        folder.mkdir(parents=True, exist_ok=True)
        for first, end in pieces:
            path = folder / f"{first:09d}-{end:09d}.mp4"
            prev = old.get((first, end))
            p = {"first": first, "end": end, "state": "pending", "keyframes": None, "shots": None, "output": str(path)}
            if prev and prev.get("state") == "done" and path.exists():
                p.update(state="done", keyframes=prev.get("keyframes"), shots=prev.get("shots"))
                finished_frames[0] += end - first
            e["pieces"].append(p)
        for p in e["pieces"]:
            if p["state"] != "done":
                p["state"] = "running"
                submit({"kind": "piece", "key": f"{stem}:{p['first']}", "stem": stem, "input": src,
                        "output": p["output"], "first": p["first"], "end": p["end"],
                        "start_pts": start_pts[p["first"]], "stop_pts": start_pts[p["end"]]
                        if p["end"] < scan["frames"] else None})
        if all(p["state"] == "done" for p in e["pieces"]):
            finish_join(stem)

    def finish_join(stem: str) -> None:
        e = entries[stem]
        try:
            info = infos[stem]
            n = join_videos([Path(p["output"]) for p in e["pieces"]], Path(e["output"]), Fraction(e["fps"]),
                            Path(e["input"]) if info.has_audio else None)
            if n != e["frames"]:
                raise VideoError(f"the joined video has {n} frames, its pieces {e['frames']}")
        except HueShiftError as err:
            e.update(state="failed", error=str(err))
            result.failed.append(stem)
            return
        e.update(state="done", error=None, keyframes=sum(p["keyframes"] for p in e["pieces"]),
                 shots=sum(p["shots"] for p in e["pieces"]))
        shutil.rmtree(parts_root / stem, ignore_errors=True)
        try:
            parts_root.rmdir()  # when no other video's pieces are left
        except OSError:
            pass
        result.done.append(stem)

    def fail(stem: str, msg: str) -> None:
        entries[stem].update(state="failed", error=msg)
        result.failed.append(stem)

    pending = 0
    for stem in todo:
        e = entries[stem]
        info = infos[stem]
        e["state"] = "running"
        long = (options.mode == "keyframes" and not info.variable_rate
                and info.frame_count > 2 * group[stem])
        if long and e.get("scan") and e["scan"].get("splittable"):  # scanned in an earlier run
            plan_pieces(stem, e["scan"])
            pending += sum(p["state"] == "running" for p in e["pieces"])
        elif long:
            submit({"kind": "scan", "key": f"{stem}:scan", "stem": stem, "input": e["input"]})
            pending += 1
        else:
            submit({"kind": "whole", "key": stem, "stem": stem, "input": e["input"], "output": e["output"]})
            pending += 1
    save()
    interrupted = False
    try:
        outstanding = pending
        last_show = 0.0
        while outstanding:
            for task, res in backend.wait():
                outstanding -= 1
                stem = task["stem"]
                e = entries[stem]
                key = task["key"].rsplit("#", 1)[0]
                frames_now = running.pop(task["key"], 0)
                if e["state"] == "failed":
                    continue
                if "error" in res:
                    if res.get("retry") and attempt_no[key] <= retries:
                        e["retries"] = e.get("retries", 0) + 1
                        log.warning("%s: %s; retrying (attempt %d of %d)", key, res["error"], attempt_no[key] + 1,
                                    retries + 1)
                        submit({k: v for k, v in task.items() if k != "attempt_key"} | {"key": key})
                        outstanding += 1
                    else:
                        fail(stem, res["error"] + (f" (after {attempt_no[key]} attempts)" if res.get("retry") else ""))
                        for p in e.get("pieces") or []:
                            if p["state"] == "running":
                                p["state"] = "pending"
                    continue
                if task["kind"] == "whole":
                    finished_frames[0] += res["frames"]
                    e.update(state="done", error=None, frames=res["frames"], keyframes=res["keyframes"],
                             shots=res["shots"], seconds=res["seconds"])
                    result.done.append(stem)
                elif task["kind"] == "scan":
                    if not res["splittable"]:
                        submit({"kind": "whole", "key": stem, "stem": stem, "input": e["input"], "output": e["output"]})
                        outstanding += 1
                        continue
                    plan_pieces(stem, res)
                    outstanding += sum(p["state"] == "running" for p in e["pieces"])
                else:
                    finished_frames[0] += res["frames"]
                    p = next(p for p in e["pieces"] if p["first"] == task["first"])
                    p.update(state="done", keyframes=res["keyframes"], shots=res["shots"])
                    if all(q["state"] == "done" for q in e["pieces"]):
                        finish_join(stem)
                save()
            if time.monotonic() - last_show > 0.5:
                prog = backend.progress()
                for k in list(running):
                    if k in prog:
                        running[k] = prog[k]
                show()
                last_show = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        backend.close(interrupted)
        for stem in todo:  # what did not finish is pending for the next run; no temporary file is left
            e = entries[stem]
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
        save()
        show()
        if bar is not None:
            bar.close()
    result.seconds = time.perf_counter() - t0
    return result


# ---- the command line ----------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    from .cli.image import add_model_arguments

    defaults = PipelineOptions()
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
    p.add_argument("--mode", choices=MODES, default=defaults.mode, help="as for `hueshift colorize`")
    p.add_argument("--max-gap", type=int, default=defaults.keyframes.max_gap, help="as for `hueshift colorize`")
    p.add_argument("--deflicker", type=float, default=defaults.deflicker, help="as for `hueshift colorize`")
    p.add_argument("--warm-start", type=float, default=defaults.warm_start, help="as for `hueshift colorize`")
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
    options = PipelineOptions(
        mode=args.mode,
        sample=SampleOptions(steps=args.steps, sampler=Sampler(args.sampler), seed=args.seed, guidance=args.guidance),
        keyframes=KeyframeOptions(max_gap=args.max_gap),
        deflicker=args.deflicker, upscale=args.upscale, warm_start=args.warm_start,
    )
    res = colorize_many(args.inputs, args.output, args.model, options, ray=args.ray, workers=args.workers,
                        threads=threads, device=args.device, group_seconds=args.group_seconds, retries=args.retries,
                        force=args.force, fps=args.fps, progress=not args.no_progress)
    entries = res.manifest["inputs"]
    for stem, e in entries.items():
        if e["state"] == "failed":
            print(f"{e['input']}: failed: {e['error']}", file=sys.stderr)
    n_done = sum(e["state"] == "done" for e in entries.values())
    print(f"{args.output}: {n_done} of {len(entries)} videos done ({len(res.done)} in this run, "
          f"{len(res.skipped)} already done), {len(res.failed)} failed, in {res.seconds:.1f} s; "
          f"manifest {Path(args.output) / MANIFEST}", file=sys.stderr)
    return 0 if res.ok else 2  # as colorize-image and eval: some input was not done
