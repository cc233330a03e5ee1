#!/usr/bin/env bash
# Assemble shipped weights, fp16: the keyframe network of BACKBONE (for `camvid`: the held-out-selected
# best.safetensors of recipes/train_camvid_keyframe.sh) + FlowNet and CoNet of EVSS (the EVSS stage run,
# e.g. recipes/train_camvid_evss_dis.sh), with the deployment defaults in the config: MODE
# (warp_only | evss | per_frame) and flow dis, and REASON, the measurement behind MODE.
#
#   MODE=evss REASON="..." recipes/ship_weights.sh BACKBONE.safetensors EVSS.safetensors "RECIPE NOTE" [OUT]
#   (OUT: src/evss/weights/camvid.safetensors by default; synthdrive_light.safetensors for the demo's)
#   W_F=0.2 (optional): Eq. (4)'s w_f, chosen on validation data (for synthdrive_light: clips of seed 500)
#   COARSE_REF=keyframe (optional): what Eq. (3) compares with when streaming (previous | keyframe), chosen so too
#   other distortion.* settings (e.g. combine=max): recipes/set_deploy_config.sh on the file written here
#   CARD=recipes/model_cards/NAME.json (default: NAME = OUT's file name without .safetensors): the model card
#   written into OUT (tools/write_model_card.py), what `evss weights` shows; bring its figures up to date first
set -euo pipefail
BACKBONE=${1:?usage: MODE=... REASON=... $0 BACKBONE.safetensors EVSS.safetensors NOTE [OUT]}
EVSS=${2:?}
NOTE=${3:?}
OUT=${4:-src/evss/weights/camvid.safetensors}
MODE=${MODE:?set MODE (warp_only, evss or per_frame)}
REASON=${REASON:?set REASON: why MODE is the default (the measurement)}
optional=()
if [ -n "${W_F:-}" ]; then optional+=(--w-f "$W_F"); fi
if [ -n "${COARSE_REF:-}" ]; then optional+=(--coarse-reference "$COARSE_REF"); fi
python "$(dirname "$0")/../tools/ship_weights.py" "$BACKBONE" "$EVSS" "$NOTE" "$OUT" --mode "$MODE" --reason "$REASON" \
    "${optional[@]}"
CARD=${CARD:-$(dirname "$0")/model_cards/$(basename "$OUT" .safetensors).json}
if [ -f "$CARD" ]; then
  python "$(dirname "$0")/../tools/write_model_card.py" "$OUT" "$CARD"
else
  echo "note: no model card at $CARD: \`evss weights\` shows \"no model card\" for $OUT" >&2
fi
