"""``hueshift colorize-image`` on many photos: photos/s end to end and peak memory, variants side by side.

    python benchmarks/bench_images.py [--shard ../shared/data/images/train-00.zip] [--counts 32 128]
        [--batch-sizes 1 8] [--steps N] [--json out.json]

Takes the first photos of a Tiny ImageNet shard (64x64 JPEG), writes them to a temporary folder, and
runs the real command (``python -m hueshift_core.cli colorize-image FILES... -o OUT/``, model load and
start-up included) once per (count, batch size), in a fresh process each, recording wall time, photos/s
and the process's peak resident memory. Memory flat in the number of photos: compare the counts.
The load average is printed with every row: on a shared machine other processes slow every number.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[0].parent / "shared" / "data" / "images" / "train-00.zip"


def child(argv: list[str]) -> None:
    from hueshift_core import cli

    rc = cli.main(argv)
    print(json.dumps({"rc": rc, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
          file=sys.stderr)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shard", default=str(DEFAULT))
    ap.add_argument("--counts", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the command's)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from common import cpu_name

    where = f"{cpu_name()}, {os.cpu_count()} CPUs"
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS") if k in os.environ)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.shard) as z:
        names = [n for n in z.namelist() if n.lower().endswith((".jpeg", ".jpg", ".png"))][:max(args.counts)]
        files = []
        for n in names:
            p = Path(tmp) / Path(n).name
            p.write_bytes(z.read(n))
            files.append(str(p))
        print(f"{where}; {len(files)} photos from {Path(args.shard).name}; {args.steps or 'default'} steps"
              + (f"; {env}" if env else ""), flush=True)
        for count in args.counts:
            for bs in args.batch_sizes:
                out = Path(tmp) / f"out-{count}-{bs}"
                load = os.getloadavg()[0]
                t = time.perf_counter()
                r = subprocess.run([sys.executable, __file__, "--child", "colorize-image", *files[:count], "-o",
                                    f"{out}/", *(["--steps", str(args.steps)] if args.steps else []), "--batch-size", str(bs),
                                    "--no-progress"],
                                   capture_output=True, text=True, check=False)
                wall = time.perf_counter() - t
                info = json.loads(r.stderr.strip().splitlines()[-1])
                if info["rc"] != 0:
                    raise SystemExit(r.stderr[-2000:])
                row = {"photos": count, "batch_size": bs, "seconds": round(wall, 2),
                       "photos_per_s": round(count / wall, 3), "peak_rss_mb": round(info["maxrss_mb"], 1),
                       "load1_before": load, "load1_after": os.getloadavg()[0]}
                rows.append(row)
                print(f"  {count:5d} photos  batch {bs:3d}  {wall:7.1f} s  {count / wall:6.2f} photos/s  "
                      f"peak RSS {info['maxrss_mb']:6.0f} MB  load {load:.2f} -> {row['load1_after']:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": where, "command": " ".join([*([env] if env else []),
                                               "python", *sys.argv]), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
