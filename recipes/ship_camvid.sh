#!/usr/bin/env bash
# Assemble the built-in `camvid` weights from the two training runs, fp16:
#   the keyframe network of BACKBONE_RUN (recipes/train_camvid_lite0.sh, its held-out-selected
#   best.safetensors) + CoNet of EVSS_CKPT (recipes/train_camvid_evss_dis.sh), with the deployment
#   defaults (mode warp_only, flow dis) in the config.
#
#   recipes/ship_camvid.sh BACKBONE.safetensors EVSS.safetensors "RECIPE NOTE" [OUT]
set -euo pipefail
BACKBONE=${1:?usage: $0 BACKBONE.safetensors EVSS.safetensors NOTE [OUT]}
EVSS=${2:?}
NOTE=${3:?}
OUT=${4:-src/evss/weights/camvid.safetensors}
python - "$BACKBONE" "$EVSS" "$NOTE" "$OUT" <<'PY'
import dataclasses, sys
from evss.checkpoint import load_model, save_model
backbone_ckpt, evss_ckpt, note, out = sys.argv[1:]
model, config = load_model(evss_ckpt)
source, _ = load_model(backbone_ckpt)
model.backbone.load_state_dict(source.backbone.state_dict())
config = dataclasses.replace(config, default_mode="warp_only", flow_source="dis")
save_model(out, model, config, half=True, extra={
    "recipe": note,
    "default_mode_reason": "on the CamVid val clip warp-only with DIS beats this CoNet; see README"})
print(f"wrote {out}")
PY
