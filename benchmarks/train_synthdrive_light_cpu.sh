#!/usr/bin/env bash
# CPU schedule for the shipped SynthDrive light model (times recorded in runs/*.time)
set -e
cd /work/main; . .venv/bin/activate
B=runs/backbone_light_synthdrive-256x512; F=runs/flow_light_flowpairs-256x512; E=runs/evss_light_synthdrive-256x512
( /usr/bin/time -f "%e s" -o runs/backbone.time evss train backbone --config configs/backbone_light_synthdrive-256x512.json \
    --data-root /work/sd-train --steps 1400 --crop 192x384 --threads 1 --workers 1 --no-progress > runs/backbone.log 2>&1 ) &
( /usr/bin/time -f "%e s" -o runs/flow.time evss train flow --config configs/flow_light_flowpairs-256x512.json \
    --steps 1500 --eval-every 500 --threads 1 --workers 1 --no-progress > runs/flow.log 2>&1 ) &
wait
/usr/bin/time -f "%e s" -o runs/evss.time evss train evss --config configs/evss_light_synthdrive-256x512.json \
    --data-root /work/sd-train --steps 1200 --crop 192x384 --threads 2 --workers 1 --no-progress > runs/evss.log 2>&1
echo done > runs/pipeline.done
