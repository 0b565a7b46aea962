#!/usr/bin/env bash
# Trains the colour prior (hueshift_core/model/prior.py) on one CPU thread, in the background of a work session,
# and resumes it next session: run it at the start of every session.
#   scripts/train_prior.sh                 # MINUTES=160 by default; writes runs/prior/ (log.jsonl, best/last states)
# It resumes runs/prior/last.safetensors when present, else the compact state the last session committed
# (training/colour-prior/last.safetensors: weights and EMA, no Adam moments, so the learning rate re-warms).
# Judge a state on the tuning photos before shipping it (python benchmarks/eval_colour.py --split tune --prior
# runs/prior/last.safetensors ...): since step 38,561 every later state measured worse there (docs/model-card.md,
# "Training this session": more images, not more steps, is the next move).
# At the end of a session, commit the compact state and the log so the next one goes on from there:
#   cp runs/prior/last-compact.safetensors training/colour-prior/last.safetensors
#   cat runs/prior/log.jsonl >> training/colour-prior/log.jsonl     # (the new lines only)
# Ship a state (hueshift-v4: the EMA of the last state, after the learning rate's anneal) inside a model file,
# with the decoding chosen on the tuning photos (docs/model-card.md):
#   python scripts/ship_model.py hueshift_core/weights/hueshift-v2.safetensors \
#       hueshift_core/weights/hueshift-v4.safetensors --prior runs/prior/last.safetensors \
#       --balance 0.54 --hue mean --prior-side 96
# hueshift-v5 is v4's prior read another way (a closer look at 128, mirrored looks, balance 0.45):
#   python scripts/ship_model.py hueshift_core/weights/hueshift-v2.safetensors \
#       hueshift_core/weights/hueshift-v5.safetensors --prior hueshift_core/weights/hueshift-v4.safetensors \
#       --balance 0.45 --hue mean --prior-side 128 --flip 1
# hueshift-v6 is v5 read with balance 0.35 and a neutral pull of 3 CIELAB units:
#   python scripts/ship_model.py hueshift_core/weights/hueshift-v5.safetensors \
#       hueshift_core/weights/hueshift-v6.safetensors --balance 0.35 --neutral 3
# Round 10 restarted from step 38,561 (the state v4-v6 ship) with Tiny ImageNet shards 02-04 added and the
# scene sources drawn less often (each scene image had been seen ~300 times):
#   git show 3c3dff5:training/colour-prior/last.safetensors > runs/from/step38561.safetensors
#   FROM_STATE=runs/from/step38561.safetensors MINUTES=125 ANNEAL=30 scripts/train_prior.sh
# On a GPU: DEVICE=cuda THREADS=8 BATCH=256 LR=2e-3 scripts/train_prior.sh (untested: no GPU was lent).
set -euo pipefail
D=${DATA:-../shared/data}
OUT=${OUT:-runs/prior}
if [ -f "$OUT/last.safetensors" ]; then
    FROM=(--resume)
elif [ -n "${FROM_STATE:-}" ]; then
    FROM=(--resume-from "$FROM_STATE")   # a chosen earlier state, e.g. one taken from the git history
elif [ -f training/colour-prior/last.safetensors ]; then
    FROM=(--resume-from training/colour-prior/last.safetensors)
else
    FROM=()
fi
mkdir -p "$(dirname "$OUT")"
OMP_NUM_THREADS=${THREADS:-1} nohup python3 -m hueshift_core.training.prior \
  "$D/scenes/scenes-video.zip" "$D/scenes/scenes-photos.zip" "$D/scenes/imagenette.zip" \
  "$D/images/train-00.zip" "$D/images/train-01.zip" "$D/images/train-02.zip" "$D/images/train-03.zip" \
  "$D/images/train-04.zip" --weights 0.22 0.15 0.30 0.066 0.066 0.066 0.066 0.066 \
  -o "$OUT" "${FROM[@]}" --minutes "${MINUTES:-160}" --batch "${BATCH:-32}" --lr "${LR:-1e-3}" \
  --threads "${THREADS:-1}" --device "${DEVICE:-cpu}" --val-every 1000 --anneal-minutes "${ANNEAL:-30}" "$@" \
  >> "$OUT.log" 2>&1 &
echo "colour prior training started (pid $!): tail -f $OUT.log"
