"""Comparison strips (docs/evaluation.md): grey | model A | model B ... | truth, on the middle frame of each development clip.

    python benchmarks/compare_models.py [CLIPS_DIR] --model hueshift_core/weights/hueshift-v1.safetensors default
        [--max-frames 24] [--out docs/eval] [--threads N]

Every clip's first ``--max-frames`` frames run through the full video pipeline (keyframes,
propagation, deflicker, upscale: the default options and each model's own guidance scale); the
middle frame of each result is shown beside the grey input and the truth, at half size. Writes
``compare-<clip>.jpg`` and ``compare.jpg`` (all clips stacked).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from hueshift_core import threads
from hueshift_core.evaluation import grey_like
from hueshift_core.model.checkpoint import get_model
from hueshift_core.video import read_frames
from hueshift_core.video.pipeline import PipelineOptions, VideoPipeline

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="?", default=str(DEFAULT))
    ap.add_argument("--model", nargs="+", default=["default"])
    ap.add_argument("--max-frames", type=int, default=24)
    ap.add_argument("--out", default="docs/eval")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        threads.configure(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = [get_model(None if m == "default" else m) for m in args.model]
    rows = []
    for clip in sorted(Path(args.clips).glob("*.mp4")):
        frames = np.concatenate(list(read_frames(clip, 16, max_frames=args.max_frames)))
        mid = len(frames) // 2
        cells = [(grey_like(frames[mid]), "grey input")]
        for m in models:
            pipe = VideoPipeline(m, PipelineOptions())
            result = np.concatenate(list(pipe.run(iter([frames]))))
            cells.append((result[mid], Path(m.path).stem))
        cells.append((frames[mid], "truth"))
        row = np.concatenate([label(cv2.resize(c, (c.shape[1] // 2, c.shape[0] // 2), interpolation=cv2.INTER_AREA), t)
                              for c, t in cells], 1)
        cv2.imwrite(str(out / f"compare-{clip.stem}.jpg"), cv2.cvtColor(row, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 85])
        rows.append(row)
        print(clip.stem, flush=True)
    cv2.imwrite(str(out / "compare.jpg"), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 80])


if __name__ == "__main__":
    main()
