#!/usr/bin/env bash
# Trains the colour prior (hueshift_core/model/prior.py) on one CPU thread, in the background of a work session,
# and resumes it next session: run it at the start of every session.
#   scripts/train_prior.sh                 # MINUTES=160 by default; writes runs/prior/ (log.jsonl, best/last states)
#   MINUTES=140 ANNEAL=30 scripts/train_prior.sh   # what a 3-hour session runs
# It resumes runs/prior/last.safetensors when present, else the compact state the last session committed
# (training/colour-prior/last.safetensors: weights and EMA, no Adam moments, so the learning rate re-warms).
# Judge a state on the tuning photos before shipping it, with the shipped decoding at a few balances:
#   python benchmarks/eval_colour.py --split tune --n 280 --prior runs/prior/last.safetensors --variants \
#       prior:prior_side=128,prior_flip=1,prior_hue=mean,balance=0.35,prior_neutral=3 ...
# and ship the lowest ΔE00 at colourfulness >= 0.70x the truth's (docs/model-card.md); then the clips at that balance:
#   python benchmarks/sweep_clips.py --prior runs/prior/last.safetensors --variants \
#       prior:prior_side=128,prior_flip=1,prior_hue=mean,prior_neutral=3,balance=B --name NAME --out runs/exp
# (add ,prior_video_chroma=2,prior_video_target=15 for the video saturation v8 ships; docs/model-card.md).
# hueshift-v8 is round 13's state at step 93,207 (the EMA after the anneal, committed at dedc36a), balance 0.15:
#   python scripts/ship_model.py hueshift_core/weights/hueshift-v2.safetensors \
#       hueshift_core/weights/hueshift-v8.safetensors --prior training/colour-prior/last.safetensors \
#       --balance 0.15 --neutral 3 --hue mean --prior-side 128 --flip 1 --video-chroma 2 --video-target 15
# (the same weights are inside v8: --prior hueshift_core/weights/hueshift-v8.safetensors; v7 was round 10's
# step 51,918 at balance 0.38, the same way).
# At the end of a session, commit the compact state and the log so the next one goes on from there:
#   cp runs/prior/last-compact.safetensors training/colour-prior/last.safetensors
#   cat runs/prior/log.jsonl >> training/colour-prior/log.jsonl     # (the new lines only; a run killed and
#   resumed repeats the steps after its last checkpoint: keep the resumed ones, training/colour-prior/README.md)
# Round 10 restarted from step 38,561 (the state v4-v6 ship) with Tiny ImageNet shards 02-04 added and the
# scene sources drawn less often (each scene image had been seen ~300 times), in two runs side by side; the
# one with --l-jitter 0.5 (a random tone curve on L for half the samples) measured better and is the default
# since (L_JITTER=0 turns it off; training/colour-prior/README.md):
#   git show 3c3dff5:training/colour-prior/last.safetensors > runs/from/step38561.safetensors
#   FROM_STATE=runs/from/step38561.safetensors OUT=runs/prior-jit MINUTES=100 ANNEAL=30 scripts/train_prior.sh
# Round 12 trained on from step 78,338 with this recipe at lr 1e-3: worse. Round 13 changed it, from 78,338:
#   git show 00d60ec:training/colour-prior/last.safetensors > runs/from/step78338.safetensors
#   FROM_STATE=runs/from/step78338.safetensors OUT=runs/prior-aug LR=3e-4 L_JITTER=0.7 MINUTES=128 ANNEAL=30 \
#       scripts/train_prior.sh --min-scale 0.35
# which measured best on the clips (training/colour-prior/README.md); its state (step 93,207) is the committed one
# and its recipe the default here since (LR 3e-4, L_JITTER 0.7, MIN_SCALE 0.35).
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
  -o "$OUT" "${FROM[@]}" --minutes "${MINUTES:-160}" --batch "${BATCH:-32}" --lr "${LR:-3e-4}" \
  --threads "${THREADS:-1}" --device "${DEVICE:-cpu}" --val-every 1000 --anneal-minutes "${ANNEAL:-30}" \
  --l-jitter "${L_JITTER:-0.7}" --min-scale "${MIN_SCALE:-0.35}" "$@" \
  >> "$OUT.log" 2>&1 &
echo "colour prior training started (pid $!): tail -f $OUT.log"
