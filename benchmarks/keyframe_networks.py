"""Keyframe cost of the keyframe networks, measured in one run: backbone + labels, as the segmenter
runs them (SwiftNet with BatchNorm folded and channels-last, CSRNet as it is).

    python benchmarks/keyframe_networks.py --presets light lite0 --sizes 360x480 512x1024 --threads 2

The presets take turns ``--rounds`` times, so a noisy neighbour hits them alike; the figure is the
median over all timed runs. Weights do not change the time, so fresh models are timed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from evss.cli.args import size
from evss.config import build_model, preset
from evss.models.backbone import prepare_inference
from evss.models.upsample import labels_from_quarter


def keyframe(model, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return labels_from_quarter(model.backbone(image), size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["light", "lite0"])
    p.add_argument("--sizes", nargs="+", type=size, default=[(360, 480), (512, 1024)])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = {}
    for name in args.presets:
        torch.manual_seed(0)
        model = build_model(preset(name)).eval()
        prepare_inference(model.backbone)
        models[name] = model
    print(f"# keyframe = backbone + labels; {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| preset | " + " | ".join(f"{s[0]}x{s[1]} ms" for s in args.sizes) + " |")
    print("|---|" + "---:|" * len(args.sizes))
    times: dict[tuple[str, str], list[float]] = {}
    with torch.inference_mode():
        for size_hw in args.sizes:
            h, w = size_hw
            hp, wp = -(-h // 32) * 32, -(-w // 32) * 32  # the segmenter pads to a multiple of 32
            image = torch.rand(1, 3, hp, wp)
            for model in models.values():
                keyframe(model, image, (h, w))  # warm-up
            for _ in range(args.rounds):
                for name, model in models.items():
                    for _ in range(args.runs):
                        t0 = time.perf_counter()
                        keyframe(model, image, (h, w))
                        times.setdefault((name, size_hw), []).append(time.perf_counter() - t0)
    for name in models:
        row = [f"{1000 * statistics.median(times[(name, s)]):.1f}" for s in args.sizes]
        print(f"| {name} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
