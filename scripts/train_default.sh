#!/usr/bin/env bash
# Trains hueshift-v1 (hueshift_core/weights/hueshift-v1.safetensors; v2 is fine-tuned from it by scripts/train_v2.sh) in two stages,
# each on one NVIDIA H200 within a time budget (see docs/model-card.md):
#   stage 1: MAX_MINUTES=6.6 scripts/train_default.sh OUT1 train-00.zip train-01.zip train-02.zip
#   stage 2: INIT=OUT1/model-fp16.safetensors MAX_MINUTES=5.6 LR=2e-4 scripts/train_default.sh OUT2 train-03.zip train-04.zip
# (the shards as copied from ../shared/data/images; these are the exact settings of the two runs)
# Extra arguments after the shards go to `hueshift train`.
set -euo pipefail
out=$1; shift
init=()
if [[ -n "${INIT:-}" ]]; then init=(--init "$INIT"); fi
python3 -m hueshift_core.training "$@" -o "$out" "${init[@]}" \
  --steps 100000 --max-minutes "${MAX_MINUTES:-6.6}" --batch 256 --lr "${LR:-3e-4}" --warmup 300 --ema 0.9995 \
  --holdout 500 --log-every 100 --val-every 500 --sample-every 2000 --ckpt-every 2000 --no-progress
