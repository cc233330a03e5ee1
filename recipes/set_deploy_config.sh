#!/usr/bin/env bash
# Change test-time settings of a shipped weights file (its tensors untouched, checked): e.g. Eq. (4)'s
# w_f or Eq. (3)'s coarse reference, after choosing them on validation data (never on the val clip).
#
#   recipes/set_deploy_config.sh src/evss/weights/camvid.safetensors distortion.coarse_reference=keyframe
#
# Only distortion.* may change (what `evss eval --variant` varies); the recipe note gains a line.
set -euo pipefail
WEIGHTS=${1:?usage: $0 WEIGHTS.safetensors distortion.KEY=VALUE [...]}
shift
[ $# -ge 1 ] || { echo "$0: give at least one distortion.KEY=VALUE" >&2; exit 2; }
python - "$WEIGHTS" "$@" <<'PY'
import sys
from pathlib import Path
import torch
from evss.checkpoint import load_model, read_metadata, read_tensors, save_model
from evss.config import apply_overrides, parse_override
from evss.errors import EvssError
path, items = Path(sys.argv[1]), sys.argv[2:]
try:
    overrides = dict(parse_override(i) for i in items)
    bad = [k for k in overrides if not k.startswith("distortion.")]
    if bad:
        sys.exit(f"set_deploy_config: only distortion.* can change here, not {', '.join(bad)}")
    meta = read_metadata(path)
    model, config = load_model(path)
    before = read_tensors(path)
    config = apply_overrides(config, overrides)
except EvssError as exc:
    sys.exit(f"set_deploy_config: {exc}")
extra = {k: v for k, v in meta.items() if k not in ("format", "version", "config", "aliases")}
extra["recipe"] = extra.get("recipe", "") + f"\nthen: recipes/set_deploy_config.sh {' '.join(items)}"
tmp = path.with_name(path.name + ".new")
save_model(tmp, model, config, half=all(t.dtype != torch.float32 for t in before.values()), extra=extra)
after = read_tensors(tmp)
if set(after) != set(before) or any(not torch.equal(after[k], before[k]) or after[k].dtype != before[k].dtype
                                    for k in before):
    tmp.unlink()
    sys.exit(f"set_deploy_config: the tensors of {path} would change; nothing written")
tmp.replace(path)
print(f"wrote {path}: {', '.join(items)}")
PY
