"""Change test-time settings of a weights file, its tensors untouched (checked before the file is replaced).

    python tools/set_deploy_config.py WEIGHTS.safetensors distortion.KEY=VALUE [...]
    python tools/set_deploy_config.py WEIGHTS.safetensors inference_size=1024   # or inference_size=null

Only ``distortion.*`` (what ``evss eval --variant`` varies: Eq. (4)'s w_f, Eq. (3)'s coarse
reference, ...) and ``inference_size`` (the longer side `evss segment` segments larger frames at,
chosen on held-out data; null: every frame at its own size) may change; the file's recipe note gains
a line naming the change. The new file is written beside the old one and replaces it only when every
tensor, and its dtype, is unchanged. ``recipes/set_deploy_config.sh`` is the entry point the recipes
document.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEPLOYMENT_KEYS = ("inference_size",)  # top-level settings of the config that only say how to run the weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="set_deploy_config", description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="evss checkpoint (.safetensors), changed in place")
    parser.add_argument("items", nargs="+", metavar="distortion.KEY=VALUE|inference_size=N",
                        help="the settings to change")
    args = parser.parse_args(argv)
    import torch

    from evss.checkpoint import load_model, read_metadata, read_tensors, save_model
    from evss.config import apply_overrides, parse_override
    from evss.errors import EvssError
    path, items = args.weights, args.items
    try:
        overrides = dict(parse_override(i) for i in items)
        bad = [k for k in overrides if not k.startswith("distortion.") and k not in DEPLOYMENT_KEYS]
        if bad:
            sys.exit(f"set_deploy_config: only distortion.* can change here, not {', '.join(bad)} (and "
                     f"{', '.join(DEPLOYMENT_KEYS)}, the longer side `evss segment` segments larger frames at)")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
