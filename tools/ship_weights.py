"""Assemble shipped weights, fp16: the keyframe network of one checkpoint with FlowNet and CoNet of another.

    python tools/ship_weights.py BACKBONE.safetensors EVSS.safetensors "RECIPE NOTE" OUT \
        --mode evss --reason "..." [--w-f 0.2] [--coarse-reference keyframe]

The keyframe network's architecture and weights come from BACKBONE (e.g. lite1 beside a CoNet from a
lite0 run), FlowNet and CoNet from EVSS (the EVSS stage run). The config carries the deployment
defaults: ``default_mode`` (with REASON, the measurement behind it, in the metadata), flow ``dis``
and, when given, Eq. (4)'s w_f and Eq. (3)'s coarse reference. ``recipes/ship_weights.sh`` is the
entry point the recipes document.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ship_weights", description=__doc__.splitlines()[0])
    parser.add_argument("backbone", help="checkpoint whose keyframe network ships")
    parser.add_argument("evss", help="checkpoint whose FlowNet and CoNet ship (the EVSS stage run)")
    parser.add_argument("note", help="the recipe note stored in the file")
    parser.add_argument("out", help="the fp16 weights file to write")
    parser.add_argument("--mode", required=True, help="default_mode: warp_only, evss or per_frame")
    parser.add_argument("--reason", required=True, help="why MODE is the default (the measurement)")
    parser.add_argument("--w-f", type=float, default=None, help="Eq. (4)'s w_f")
    parser.add_argument("--coarse-reference", default=None, help="Eq. (3)'s coarse reference (previous | keyframe)")
    args = parser.parse_args(argv)
    from evss.checkpoint import load_model, save_model
    from evss.config import build_model
    trained, config = load_model(args.evss)
    source, source_config = load_model(args.backbone)
    config = dataclasses.replace(config, name=source_config.name, backbone=source_config.backbone,
                                 default_mode=args.mode, flow_source="dis")
    model = build_model(config)
    model.backbone.load_state_dict(source.backbone.state_dict())
    model.flow.load_state_dict(trained.flow.state_dict())
    model.correction.load_state_dict(trained.correction.state_dict())
    if args.w_f is not None:
        config = dataclasses.replace(config, distortion=dataclasses.replace(config.distortion, w_f=args.w_f))
    if args.coarse_reference:
        config = dataclasses.replace(config, distortion=dataclasses.replace(
            config.distortion, coarse_reference=args.coarse_reference))
    save_model(args.out, model, config, half=True, extra={"recipe": args.note, "default_mode_reason": args.reason})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
