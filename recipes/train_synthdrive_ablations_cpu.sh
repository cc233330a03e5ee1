#!/usr/bin/env bash
# Table IV ablation runs for the SynthDrive light model (run from the repo root after train_synthdrive_light_cpu.sh).
SD=${SD:-sd-train}
for ab in ${ABLATIONS:-no-les no-le no-le-les coarse-only edge-only}; do
  ( evss train evss --config configs/evss_light_synthdrive-256x512.json \
      --data-root "$SD" --steps 350 --checkpoint-every 50 --crop 192x384 --threads 1 --workers 0 --no-progress \
      --ablation $ab --out runs/evss_light_synthdrive_$ab ) &
done
wait
