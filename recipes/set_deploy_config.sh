#!/usr/bin/env bash
# Change test-time settings of a shipped weights file (its tensors untouched, checked): e.g. Eq. (4)'s
# w_f or Eq. (3)'s coarse reference, or the inference size (the longer side `evss segment` segments
# larger frames at), after choosing them on validation data (never on the val clip).
#
#   recipes/set_deploy_config.sh src/evss/weights/camvid.safetensors distortion.coarse_reference=keyframe
#   recipes/set_deploy_config.sh WEIGHTS.safetensors inference_size=1024    # inference_size=null: none
#
# Only distortion.* (what `evss eval --variant` varies) and inference_size may change; the recipe note
# gains a line.
set -euo pipefail
WEIGHTS=${1:?usage: $0 WEIGHTS.safetensors distortion.KEY=VALUE|inference_size=N [...]}
shift
[ $# -ge 1 ] || { echo "$0: give at least one distortion.KEY=VALUE or inference_size=N" >&2; exit 2; }
exec python "$(dirname "$0")/../tools/set_deploy_config.py" "$WEIGHTS" "$@"
