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
python - "$BACKBONE" "$EVSS" "$NOTE" "$OUT" "$MODE" "$REASON" "${W_F:-}" "${COARSE_REF:-}" <<'PY'
import dataclasses, sys
from evss.checkpoint import load_model, save_model
backbone_ckpt, evss_ckpt, note, out, mode, reason, w_f, coarse_ref = sys.argv[1:]
from evss.config import build_model
trained, config = load_model(evss_ckpt)
source, source_config = load_model(backbone_ckpt)
# the keyframe network's architecture comes from BACKBONE (e.g. lite1 beside a CoNet from a lite0 run)
config = dataclasses.replace(config, name=source_config.name, backbone=source_config.backbone,
                             default_mode=mode, flow_source="dis")
model = build_model(config)
model.backbone.load_state_dict(source.backbone.state_dict())
model.flow.load_state_dict(trained.flow.state_dict())
model.correction.load_state_dict(trained.correction.state_dict())
if w_f:
    config = dataclasses.replace(config, distortion=dataclasses.replace(config.distortion, w_f=float(w_f)))
if coarse_ref:
    config = dataclasses.replace(config, distortion=dataclasses.replace(config.distortion, coarse_reference=coarse_ref))
save_model(out, model, config, half=True, extra={"recipe": note, "default_mode_reason": reason})
print(f"wrote {out}")
PY
CARD=${CARD:-$(dirname "$0")/model_cards/$(basename "$OUT" .safetensors).json}
if [ -f "$CARD" ]; then
  python "$(dirname "$0")/../tools/write_model_card.py" "$OUT" "$CARD"
else
  echo "note: no model card at $CARD: \`evss weights\` shows \"no model card\" for $OUT" >&2
fi
