"""Per-component cost of EVSS on this machine: params, GFLOPs and median time.

    python benchmarks/model_speed.py --presets paper light --size 512x1024 --threads 2

FLOPs come from torch.utils.flop_counter (2 per multiply-add, conv/linear/matmul only), as in the
reference measurements. Times are medians of --runs after --warmup runs, batch 1, eval, no grad.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from evss.cli.args import size
from evss.config import build_model, preset
from evss.models.distortion import coarse_map, fine_map, fuse
from evss.models.upsample import upsample4
from evss.models.warp import warp


def timed(fn, runs: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def bench(name: str, h: int, w: int, runs: int, warmup: int, device: torch.device) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    model = build_model(preset(name)).eval().to(device)
    key, cur = torch.rand(1, 3, h, w, device=device), torch.rand(1, 3, h, w, device=device)
    with torch.inference_mode():
        feat = model.backbone(key)
        flow = model.flow(key, cur)
        warped = warp(feat, flow)
        upd, edge = model.correction(cur, warped)
        pred = feat.argmax(1)

        def fusion():
            m = fine_map(coarse_map(warped, pred), model.correction.edge_probability(edge), model.distortion)
            merged = fuse(warped, upd, m, model.distortion)
            return upsample4(merged, (4 * merged.shape[-2], 4 * merged.shape[-1])).argmax(1)

        parts = {
            "backbone": (model.backbone, lambda: model.backbone(key)),
            "flow": (model.flow, lambda: model.flow(key, cur)),
            "warp": (None, lambda: warp(feat, flow)),
            "conet": (model.correction, lambda: model.correction(cur, warped)),
            "fusion+upsample": (None, fusion),
        }
        rows = {}
        for part, (module, fn) in parts.items():
            n = sum(p.numel() for p in module.parameters()) if module is not None else 0
            rows[part] = {"params": n, "gflops": flops(fn), "seconds": timed(fn, runs, warmup, device)}
        key_t = timed(lambda: fusion_key(model, key), runs, warmup, device)
    non = sum(rows[part]["seconds"] for part in ("flow", "warp", "conet", "fusion+upsample"))
    rows["keyframe (backbone+upsample)"] = {"params": rows["backbone"]["params"], "gflops": rows["backbone"]["gflops"],
                                            "seconds": key_t}
    rows["non-keyframe (sum)"] = {"params": 0, "gflops": sum(rows[p]["gflops"] for p in ("flow", "warp", "conet")),
                                  "seconds": non}
    return rows


def fusion_key(model, key):
    logits = model.backbone(key)
    return upsample4(logits, (4 * logits.shape[-2], 4 * logits.shape[-1])).argmax(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["paper", "light"])
    ap.add_argument("--size", type=size, default="512x1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    h, w = a.size
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    print(f"device {device} ({platform.processor() or platform.machine()}), threads {torch.get_num_threads()}, "
          f"size {h}x{w}, torch {torch.__version__}, median of {a.runs} after {a.warmup} warm-up")
    for name in a.presets:
        rows = bench(name, h, w, a.runs, a.warmup, device)
        print(f"\npreset {name}")
        print("| part | params | GFLOPs | ms |\n|---|---:|---:|---:|")
        for part, r in rows.items():
            print(f"| {part} | {r['params']:,} | {r['gflops']:.2f} | {r['seconds'] * 1000:.1f} |")
        ratio = rows["non-keyframe (sum)"]["seconds"] / rows["keyframe (backbone+upsample)"]["seconds"]
        print(f"non-keyframe / keyframe time: {ratio:.2f}")


if __name__ == "__main__":
    main()
