#!/bin/bash
# Every GPU figure docs/benchmarks.md asks for, in one call on a machine with a CUDA GPU.
#
#   benchmarks/gpu_session.sh CLIPS_DIR OUT_DIR
#
# CLIPS_DIR: the development clips (854x480 mp4; ../shared/data/clips here, or a copy carried to the GPU machine).
# Writes to OUT_DIR: nvidia-smi.txt, unet-cuda.json (bench_unet), video-cuda-480p.json and video-cuda-1080p.json
# (bench_video end to end, per stage, peak VRAM; the 1080p clips are the same clips upscaled with libx264 first),
# and log.txt. Needs the package installed with a CUDA build of torch.
set -u
CLIPS=${1:?clips folder}; OUT=${2:?output folder}
mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")" && pwd)
exec > >(tee -a "$OUT/log.txt") 2>&1
date -u; nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1; head -15 "$OUT/nvidia-smi.txt"
python -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name())"
python "$HERE/bench_unet.py" --device cuda --skip-original --json "$OUT/unet-cuda.json"
python "$HERE/bench_video.py" "$CLIPS" --device cuda --json "$OUT/video-cuda-480p.json"
HD="$OUT/clips-1080p"; mkdir -p "$HD"
python - "$CLIPS" "$HD" <<'PY'
import sys
from pathlib import Path
import cv2, numpy as np
from hueshift_core.video import VideoWriter, probe, read_frames
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for clip in sorted(src.glob("*.mp4")):
    info = probe(clip)
    with VideoWriter(dst / clip.name, 1920, 1080, info.fps) as w:
        for batch in read_frames(clip, 16):
            w.write(np.stack([cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_CUBIC) for f in batch]))
    print("1080p", clip.name, flush=True)
PY
python "$HERE/bench_video.py" "$HD" --device cuda --json "$OUT/video-cuda-1080p.json"
rm -rf "$HD"
date -u
