"""`evss synth`: write SynthDrive clips with dense ground truth to a folder."""

from __future__ import annotations

import argparse

from evss.data.synthdrive import SynthDriveConfig, write_dataset


def run(args: argparse.Namespace) -> int:
    config = SynthDriveConfig(height=args.size[0], width=args.size[1], frames=args.frames,
                              difficulty=args.difficulty)
    manifest = write_dataset(args.out, clips=args.clips, seed=args.seed, config=config, preview=args.preview)
    print(f"wrote {args.clips} clips to {args.out} (manifest {manifest})")
    return 0
