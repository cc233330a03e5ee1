#!/usr/bin/env bash
# Reproduces the shipped `synthdrive_light` weights on a 2-core CPU (run from the repo root).
# Wall times measured 2026-11-26 on the 2-core build machine, shared with other jobs:
#   data 3.4 min, backbone 2538 s, flow 2136 s (these two ran side by side, 1 thread each), evss 456 s.
set -euo pipefail
SD=${SD:-sd-train}
evss synth --out "$SD" --clips 100 --seed 0
B=runs/backbone_light_synthdrive-256x512; F=runs/flow_light_flowpairs-256x512; E=runs/evss_light_synthdrive-256x512
evss train backbone --config configs/backbone_light_synthdrive-256x512.json --data-root "$SD" \
    --steps 1400 --crop 192x384 --threads 1 --workers 1 &
evss train flow --config configs/flow_light_flowpairs-256x512.json --steps 1500 --eval-every 500 \
    --threads 1 --workers 1 &
wait
evss train evss --config configs/evss_light_synthdrive-256x512.json --data-root "$SD" \
    --steps 350 --checkpoint-every 50 --crop 192x384 --threads 2 --workers 1
python "$(dirname "$0")/../tools/fp16_weights.py" runs/evss_light_synthdrive-256x512/last.safetensors \
    src/evss/weights/synthdrive_light.safetensors
