#!/usr/bin/env bash
# Reproduces the shipped `camvid` weights (run from the repo root, after train_synthdrive_light_cpu.sh).
# Wall times measured 2026-11-26 on the shared 2-core build machine: backbone 3789 s (1 thread).
set -euo pipefail
CAMVID=${CAMVID:-../shared/data/camvid}; VIDEOS=${VIDEOS:-../shared/data/video}
evss train backbone --model light --data camvid --data-root "$CAMVID" --data-split train --crop 288x384 \
    --batch-size 8 --steps 1400 --lr 0.001 --threads 1 --workers 1 --checkpoint-every 200 \
    --out runs/backbone_light_camvid-288x384
# "Train on your own unlabelled footage": CoNet + FlowNet on the dash-cam clips with the CamVid
# backbone's pseudo-labels, starting from the SynthDrive-trained FlowNet and CoNet.
evss train evss --model light --data videos --data-root "$VIDEOS" --video-max-size 480 --crop 256x384 \
    --batch-size 8 --steps 200 --init runs/evss_light_synthdrive-256x512/last.safetensors \
    --teacher runs/backbone_light_camvid-288x384/last.safetensors --checkpoint-every 50 --threads 2 --workers 1 \
    --out runs/evss_light_camvid-videos
python "$(dirname "$0")/../tools/fp16_weights.py" runs/evss_light_camvid-videos/last.safetensors \
    src/evss/weights/camvid.safetensors
