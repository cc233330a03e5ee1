#!/usr/bin/env bash
# CoNet of the shipped `synthdrive_light` weights, trained the way the `camvid` one is: with the
# flow it is used with (OpenCV DIS, cached with the teacher's outputs), from the passthrough head
# (F^u = F^w at the start), against the frozen light CSRNet keyframe network of the shipped weights
# (their FlowNet is kept for --flow learned; it was trained on uncentred input, hence input_offset 0).
# Two stages, each resumable (run the script again to continue after an interruption):
#   1. 2,500 steps, lr 3e-4, on 24 SynthDrive clips generated in memory (seed 0's clips);
#   2. from stage 1's last step, 6,000 steps, lr 2e-4, on 48 clips (seed 0's first 48; the first
#      24 are stage 1's). The demo's clip (generate_clip(seed=0)) and the evaluation clips (seeds
#      500 for choosing w_f, 1000 for the report) are none of them.
# On 2 threads: stage 1 ~12 min (0.25 s/step), stage 2 ~39 min beside a backbone run (0.39 s/step,
# 1 thread); each cache (teacher logits, pseudo-labels, DIS flow per pair) takes a few minutes.
#
#   recipes/train_synthdrive_evss_dis.sh [TEACHER] [OUT] [CACHE]   # OUT/stage1, OUT/stage2
#   MODE=... REASON=... recipes/ship_weights.sh OUT/stage2/last.safetensors OUT/stage2/last.safetensors NOTE \
#       src/evss/weights/synthdrive_light.safetensors              # then assemble the shipped file
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
TEACHER=${1:-src/evss/weights/synthdrive_light.safetensors}
OUT=${2:-runs/synthdrive_evss_dis}
CACHE=${3:-runs/cache_synthdrive_dis}
common=(evss train evss --model light --teacher "$TEACHER" --flow-init "$TEACHER" --flow dis
        --set flow.input_offset=0.0 --data synthdrive --synth-frames 30 --synth-size 256x512 --crop 192x384
        --batch-size 8 --min-lr 1e-6 --checkpoint-every 250 --seed 0 --device "${DEVICE:-auto}"
        --threads "${THREADS:-2}")
resume=()
[ -f "$OUT/stage1/last.state.pt" ] && resume=(--resume)
if ! grep -q '"step": 2500,' "$OUT/stage1/metrics.jsonl" 2>/dev/null; then  # stage 1 not finished yet
  "${common[@]}" --cache "$CACHE-24" --synth-clips 24 --steps 2500 --lr 3e-4 --out "$OUT/stage1" "${resume[@]}" "${@:4}"
fi
resume=()
[ -f "$OUT/stage2/last.state.pt" ] && resume=(--resume)
init=(--init "$OUT/stage1/last.safetensors")
[ ${#resume[@]} -gt 0 ] && init=()
exec "${common[@]}" --cache "$CACHE-48" --synth-clips 48 --steps 6000 --lr 2e-4 "${init[@]}" \
  --out "$OUT/stage2" "${resume[@]}" "${@:4}"
