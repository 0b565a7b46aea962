"""Colorizing many videos, and long videos in pieces, on many workers (``hueshift colorize-many``).

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
(:func:`hueshift_core.video.pipeline.shot_generator`), so the pieces decode to exactly the frames a
single-process run produces, up to the encoder's rounding (each piece is its own H.264 stream).

Every output is written to a hidden temporary name and renamed when complete. The job's manifest,
``OUT_DIR/hueshift-job.json``, records each input's state (pending, running, done, failed), frames, fps,
keyframes, shots, attempts and error, and is rewritten after every change: rerunning the same command
skips what is done (an output whose input changed is redone). A task whose worker fails or dies is
retried up to ``retries`` times, then reported; bad input (a corrupt file) is reported at once.

Ray is optional (``pip install hueshift[cluster]``) and imported only when ``ray`` is given.

Modules: :mod:`.inputs` (inputs, output names, shot groups), :mod:`.pieces` (decoding and joining pieces),
:mod:`.worker` (the worker), :mod:`.backends` (this process or Ray), :mod:`.job` (manifest, scheduling,
:func:`colorize_many`); the command line is :mod:`hueshift_core.cli.many`.
"""

from __future__ import annotations

from .inputs import MANIFEST, PARTS, expand_inputs, group_shots, output_names
from .job import colorize_many
from .pieces import batches, frames_with_pts, join_videos
from .worker import JobResult, Worker

__all__ = [
    "MANIFEST", "PARTS", "JobResult", "Worker", "batches", "colorize_many", "expand_inputs", "frames_with_pts",
    "group_shots", "join_videos", "output_names",
]
