#!/usr/bin/env bash
# Trains the shipped default model (hueshift_core/weights/hueshift-v1.safetensors).
# Usage: scripts/train_default.sh OUT_DIR SHARD.zip... (the run that produced v1 used
# ../shared/data/images/train-00..02.zip on one NVIDIA H200; see the model card in README.md).
set -euo pipefail
out=$1; shift
python3 -m hueshift_core.train "$@" -o "$out" \
  --steps 100000 --max-minutes "${MAX_MINUTES:-6.5}" --batch 256 --lr 3e-4 --warmup 300 --ema 0.9995 \
  --holdout 500 --log-every 100 --val-every 500 --sample-every 2000 --ckpt-every 2000 --no-progress
