#!/usr/bin/env bash
# The EVSS stage of the built-in `camvid` weights: CoNet trained with the flow it is used with
# (OpenCV DIS), against the frozen keyframe network (recipes/train_camvid_keyframe.sh; MODEL its
# preset, lite1 by default), on
#   * CamVid train as simulated drives (--data camvid-stills): each labelled still becomes a
#     6-frame clip of a camera moving forward (3 % zoom per frame): the target city's look;
#   * the two dash-cam clips, real motion without labels: the teacher's pseudo-labels (Sec. III-E);
#   * 8 generated SynthDrive clips: people, bicycles and occlusions that move on their own.
# The semantic targets are the teacher's everywhere (Sec. III-E); true labels give the edge targets.
# CoNet's update branch is the keyframe network itself on the frame scaled by UPDATE_SCALE (0.75,
# correction.update=keyframe, started from TEACHER, encoder frozen), trained in two cosine cycles:
# 1,500 steps at lr 3e-4 into OUT/stage1, then 3,500 at lr 1e-4 from its last step into OUT
# (STEPS / STEPS2): the shipped `camvid`. UPDATE_SCALE= (empty) trains the paper's CoNet instead
# (one cycle, 5,000 steps by default), which starts at F^u = F^w (the lite* presets' passthrough
# head), so it learns corrections only.
# The teacher cache (backbone logits, pseudo-labels, DIS flow per pair) is built first, with a
# progress bar, and reused; a step then runs only CoNet.
#
#   recipes/train_camvid_evss_dis.sh TEACHER.safetensors [OUT] [CACHE] [EXTRA ARGS]   # resumable: run it again
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
TEACHER=${1:?usage: $0 TEACHER.safetensors [OUT] [CACHE]}
OUT=${2:-runs/camvid_evss_dis}
CACHE=${3:-runs/cache_camvid_stills_dis}
CAMVID=${CAMVID:-../shared/data/camvid}
VIDEOS=${VIDEOS:-../shared/data/video}

train() {  # train OUT STEPS LR [ARGS...]: one cosine cycle, resumed when OUT holds a run
  local out=$1 steps=$2 lr=$3
  shift 3
  local resume=()
  [ -f "$out/last.state.pt" ] && resume=(--resume)
  evss train evss --model "${MODEL:-lite1}" --teacher "$TEACHER" --flow dis --cache "$CACHE" \
    --data camvid-stills --data-root "$CAMVID" --still-frames 6 --still-zoom 0.03 \
    --extra-data "videos:$VIDEOS" --video-max-size 640 --crop 256x448 \
    --extra-data synthdrive --synth-clips 8 --synth-frames 30 --synth-size 256x512 \
    --batch-size 8 --steps "$steps" --lr "$lr" --min-lr 1e-6 --checkpoint-every 250 \
    --seed 0 --device "${DEVICE:-auto}" --threads "${THREADS:-2}" --out "$out" "${resume[@]}" "$@"
}

if [ -z "${UPDATE_SCALE-0.75}" ]; then
  train "$OUT" "${STEPS:-5000}" 3e-4 "${@:4}"
  exit
fi
update=(--set correction.update=keyframe --set "correction.update_scale=${UPDATE_SCALE-0.75}")
train "$OUT/stage1" "${STEPS:-1500}" 3e-4 "${update[@]}" "${@:4}"
train "$OUT" "${STEPS2:-3500}" 1e-4 "${update[@]}" --init "$OUT/stage1/last.safetensors" "${@:4}"
