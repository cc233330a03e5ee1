#!/usr/bin/env bash
# CoNet of the shipped `synthdrive_light` weights, retrained the way the `camvid` one is: with the
# flow it is used with (OpenCV DIS, cached with the teacher's outputs), from the passthrough head
# (F^u = F^w at the start), against the frozen light CSRNet keyframe network of the shipped weights
# (their FlowNet is kept for --flow learned; it was trained on uncentred input, hence input_offset 0).
# Data: 24 SynthDrive clips generated in memory (seed 0's clips; the demo's clip, generate_clip(seed=0),
# is not among them).
#
#   recipes/train_synthdrive_evss_dis.sh [TEACHER] [OUT] [CACHE]   # resumable: run it again
#   MODE=... REASON=... recipes/ship_weights.sh OUT/last.safetensors OUT/last.safetensors NOTE \
#       src/evss/weights/synthdrive_light.safetensors              # then assemble the shipped file
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
TEACHER=${1:-src/evss/weights/synthdrive_light.safetensors}
OUT=${2:-runs/synthdrive_evss_dis}
CACHE=${3:-runs/cache_synthdrive_dis}
resume=()
[ -f "$OUT/last.state.pt" ] && resume=(--resume)
exec evss train evss --model light --teacher "$TEACHER" --flow-init "$TEACHER" --flow dis --cache "$CACHE" \
  --set flow.input_offset=0.0 \
  --data synthdrive --synth-clips 24 --synth-frames 30 --synth-size 256x512 --crop 192x384 \
  --batch-size 8 --steps "${STEPS:-2500}" --lr 3e-4 --min-lr 1e-6 --checkpoint-every 250 \
  --seed 0 --device "${DEVICE:-auto}" --threads "${THREADS:-2}" --out "$OUT" "${resume[@]}" "${@:4}"
