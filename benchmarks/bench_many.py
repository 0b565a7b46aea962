"""``hueshift colorize-many``: in this process vs on a local Ray, and a long video split into shot groups.

    python benchmarks/bench_many.py                        # the ten development clips, then a 1-minute synthetic video
    python benchmarks/bench_many.py --minutes 2 --group-seconds 20 --skip-clips

1. The development clips (``../shared/data/clips``, DAVIS 854x480): ``colorize_many`` in this process (one
   worker, PyTorch's threads) and with ``ray="auto"`` (a local Ray started by the call, one worker per CPU,
   one thread each). The Ray time includes starting Ray and the workers (what ``--ray auto`` costs).
2. A long synthetic video (1280x720 would be slow here: 854x480, 24 fps, a hard cut between differently lit
   scenes every 4-9 s): ``colorize_video`` in one process vs ``colorize_many(ray="auto")`` split into groups
   of ``--group-seconds``; the two outputs are compared (frames, timestamps, mean colour difference).

Each run records the load average before and after (the machine may be shared). Threads as the ``hueshift``
command sets them (hueshift_core.threads: OMP_WAIT_POLICY=PASSIVE, pools sized to the free CPUs); Ray workers
run one thread each. JSON: docs/bench/many.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hueshift_core import threads  # noqa: E402  (imports no torch)

threads.set_wait_policy()  # as the `hueshift` command does, before torch loads: OpenMP threads sleep, not spin

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from hueshift_core.cluster import colorize_many  # noqa: E402
from hueshift_core.video import VideoWriter  # noqa: E402
from hueshift_core.video.files import colorize_video  # noqa: E402
from hueshift_core.video.pipeline import PipelineOptions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLIPS = ROOT.parent / "shared" / "data" / "clips"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def synthetic_film(path: Path, minutes: float, w: int = 854, h: int = 480, fps: int = 24, seed: int = 0) -> int:
    """Grey shots of 4-9 s: a slow pan over a blurred texture, each lit differently; hard cuts."""
    rng = np.random.default_rng(seed)
    total = round(minutes * 60 * fps)
    n = 0
    with VideoWriter(path, w, h, fps) as wr:
        while n < total:
            length = min(total - n, int(rng.integers(4 * fps, 9 * fps)))
            tex = cv2.GaussianBlur(rng.integers(0, 255, (h // 4, (w + 2 * length) // 4)).astype(np.uint8), (0, 0), 2)
            tex = cv2.resize(tex, ((w + 2 * length), h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
            tex = np.clip((tex - 128) * rng.uniform(0.6, 1.4) + rng.uniform(60, 190), 0, 255).astype(np.uint8)
            for i in range(length):
                wr.write(np.repeat(tex[:, 2 * i:2 * i + w, None], 3, -1))
            n += length
    return total


def decode(path: Path) -> tuple[list, np.ndarray]:
    """Timestamps and the mean RGB of each frame (enough to compare colours without holding the film)."""
    times, means = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            times.append(float(f.pts * f.time_base))
            means.append(f.to_ndarray(format="rgb24").reshape(-1, 3).mean(0))
    return times, np.array(means)


def run_job(inputs, out: Path, ray: str | None, **kw) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    threads.configure()  # in-process: torch and OpenCV sized to the free CPUs, as the command line does
    l0, t = load(), time.perf_counter()
    res = colorize_many(inputs, out, ray=ray, **kw)
    secs = time.perf_counter() - t
    entries = res.manifest["inputs"].values()
    frames = sum(e["frames"] or 0 for e in entries if e["state"] == "done")
    return {"mode": ray or "in-process", "seconds": round(secs, 1), "frames": frames,
            "fps": round(frames / secs, 2), "ok": res.ok, "load_before": l0, "load_after": load(),
            "keyframes": sum(e["keyframes"] or 0 for e in entries)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=1.0, help="length of the synthetic film (default 1)")
    ap.add_argument("--group-seconds", type=float, default=20.0, help="shot-group length for the film (default 20)")
    ap.add_argument("--skip-clips", action="store_true")
    ap.add_argument("--skip-film", action="store_true")
    ap.add_argument("--json", default=str(ROOT / "docs" / "bench" / "many.json"))
    args = ap.parse_args()
    report: dict = {"machine": machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    work = Path(tempfile.mkdtemp(prefix="bench_many-"))
    try:
        if not args.skip_clips:
            clips = sorted(CLIPS.glob("*.mp4"))
            if not clips:
                sys.exit(f"no clips in {CLIPS}; use --skip-clips")
            report["clips"] = [run_job(clips, work / "local", None), run_job(clips, work / "ray", "auto")]
            for r in report["clips"]:
                print(f"clips, {r['mode']}: {r['frames']} frames in {r['seconds']} s = {r['fps']} fps "
                      f"(load {r['load_before']} -> {r['load_after']})", flush=True)
        if not args.skip_film:
            film = work / "film.mp4"
            frames = synthetic_film(film, args.minutes)
            single = work / "single.mp4"
            threads.configure()
            l0, t = load(), time.perf_counter()
            res = colorize_video(film, single, None, PipelineOptions())
            one = {"mode": "colorize_video (one process)", "seconds": round(time.perf_counter() - t, 1),
                   "frames": res.frames, "fps": round(res.frames / (time.perf_counter() - t), 2),
                   "shots": res.shots, "keyframes": res.keyframes, "load_before": l0, "load_after": load()}
            split = run_job([film], work / "split", "auto", group_seconds=args.group_seconds)
            m = json.loads((work / "split" / "hueshift-job.json").read_text())["inputs"]["film"]
            split["pieces"] = len(m["pieces"] or [])
            ta, ma = decode(single)
            tb, mb = decode(work / "split" / "film.mp4")
            report["film"] = {"minutes": args.minutes, "frames": frames, "size": "854x480", "fps": 24,
                              "group_seconds": args.group_seconds, "runs": [one, split],
                              "same_frames_and_times": len(ta) == len(tb) and ta == tb,
                              "mean_abs_diff_of_frame_means": round(float(np.abs(ma - mb).mean()), 4)}
            for r in report["film"]["runs"]:
                print(f"film, {r['mode']}: {r['frames']} frames in {r['seconds']} s = {r['fps']} fps "
                      f"(load {r['load_before']} -> {r['load_after']})", flush=True)
            print(f"film: same frames and timestamps: {report['film']['same_frames_and_times']}; "
                  f"{split['pieces']} pieces; mean |frame-mean difference| "
                  f"{report['film']['mean_abs_diff_of_frame_means']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
