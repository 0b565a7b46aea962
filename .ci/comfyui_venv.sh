#!/usr/bin/env bash
# Sets up (or reuses) a Python for the ComfyUI in ../shared/comfyui, as its README says, and prints its
# python's path on the last line of stdout. The venv is cached outside the clone (CI runs on a clean clone
# each time), keyed by a hash of everything that decides its content; a half-built venv is never reused.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COMFY="${HUESHIFT_COMFYUI:-$ROOT/../shared/comfyui/ComfyUI}"
CACHE="${HUESHIFT_CI_CACHE:-$HOME/.cache/hueshift-ci}"
TORCH_PINS="torch==2.14.1 torchvision==0.29.1"      # ComfyUI needs torchvision; its local build pins torch 2.14.1
EXTRA="requests playwright==1.65.2"                  # requests: imported by ComfyUI, not listed; playwright: browser tier
KEY=$( { echo "$TORCH_PINS $EXTRA"; cat "$COMFY/requirements.txt" "$ROOT/requirements.txt"; python3 --version; } \
       | sha256sum | cut -c1-16)
VENV="$CACHE/comfyui-venv-$KEY"
if [ ! -f "$VENV/.complete" ]; then
    echo "comfyui venv: building $VENV (a few minutes, once per machine)" >&2
    rm -rf "$VENV"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q $TORCH_PINS >&2
    grep -v -E '^(torch|torchvision|torchaudio)$' "$COMFY/requirements.txt" > "$VENV/comfyui-req.txt"
    "$VENV/bin/pip" install -q -r "$VENV/comfyui-req.txt" $EXTRA >&2
    "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt" >&2   # the pack's own, as ComfyUI-Manager would
    touch "$VENV/.complete"
    # keep only this key's venv: old ones are 6 GB each
    for old in "$CACHE"/comfyui-venv-*; do [ "$old" = "$VENV" ] || rm -rf "$old"; done
else
    echo "comfyui venv: reusing $VENV" >&2
fi
echo "$VENV/bin/python"
