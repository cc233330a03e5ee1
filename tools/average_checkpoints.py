"""Average the weights of several checkpoints of one run and score them on held-out train frames.

    python tools/average_checkpoints.py SNAP1.safetensors SNAP2.safetensors ... \
        --root ../shared/data/camvid --holdout '0006R0_f03*' --out averaged.safetensors

Checkpoint averaging (as in stochastic weight averaging) of the last steps of a decayed schedule
often scores a little above any single one of them. Every input and the average are scored on the
held-out part of CamVid *train* (the frames the run kept out, `--holdout`), never on the val clip,
so the result can be selected honestly. BatchNorm running statistics are averaged like the weights
(the steps are close, so their statistics are too); integer buffers come from the last input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tqdm import tqdm

from evss.checkpoint import load_model, save_model
from evss.data.camvid import CamVid
from evss.train.evaluation import HeldOutFrames


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the floating tensors of ``states`` (same keys); others from the last."""
    keys = states[0].keys()
    if any(s.keys() != keys for s in states):
        raise SystemExit("average_checkpoints: the checkpoints hold different tensors (not one run?)")
    out = {}
    for k in keys:
        if states[0][k].is_floating_point():
            out[k] = torch.stack([s[k].float() for s in states]).mean(0)
        else:
            out[k] = states[-1][k]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--root", type=Path, default=Path("../shared/data/camvid"))
    p.add_argument("--holdout", action="append", default=None, help="held-out frame pattern (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="where the averaged checkpoint goes (fp32)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    held_out = HeldOutFrames(CamVid(args.root, "train"), args.holdout or ["0006R0_f03*"])
    models = [load_model(c) for c in args.checkpoints]
    device = torch.device("cpu")
    for path, (model, config) in tqdm(list(zip(args.checkpoints, models)), desc="scoring inputs", leave=False):
        score = held_out.miou(model.backbone, config.num_classes, device)["miou"]
        tqdm.write(f"{path.name}: held-out mIoU {100 * score:.2f}")
    model, config = models[-1]
    model.load_state_dict(average_state([m.state_dict() for m, _ in models]))
    score = held_out.miou(model.backbone, config.num_classes, device)["miou"]
    print(f"average of {len(models)}: held-out mIoU {100 * score:.2f}")
    save_model(args.out, model, config)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
