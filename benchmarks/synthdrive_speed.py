"""How fast SynthDrive generates and writes clips (issue 3: 200 clips x 30 frames in < 10 min).

    python benchmarks/synthdrive_speed.py [--clips 3] [--frames 30] [--size 256x512] [--out DIR]

Times ``generate_clip`` alone (median per clip) and ``write_dataset`` end to end (scene building,
rendering, flow, occlusion, statistics, PNG and .npy writing, one writer thread) after a warm-up
clip, and prints ms per frame, clips per minute and the projected time for the default training
set (200 clips x 30 frames). One process; OpenCV may use its own threads. The machine's load
average is printed because other processes on a small machine inflate the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from evss.cli.args import size
from evss.data.synthdrive import SynthDriveConfig, generate_clip, write_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4, help="timed clips per measurement")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", type=size, default="256x512", help="HxW")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="folder to write into (default: a temporary folder)")
    args = ap.parse_args()
    h, w = args.size
    cfg = SynthDriveConfig(height=h, width=w, frames=args.frames)
    print(f"size {h}x{w}, {args.frames} frames/clip, {args.clips} timed clips, cpus {os.cpu_count()}, "
          f"cv2 threads {cv2.getNumThreads()}, torch threads {torch.get_num_threads()}, "
          f"numpy {np.__version__}")
    generate_clip(SynthDriveConfig(height=h, width=w, frames=2), seed=12345)  # warm-up
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    gen = []
    for i in range(args.clips):
        t0 = time.perf_counter()
        generate_clip(cfg, seed=args.seed + i)
        gen.append((time.perf_counter() - t0) / args.frames)

    # End to end, as `evss synth` runs it: several clips in one call, so the writer thread
    # overlaps PNG encoding of clip i with rendering of clip i + 1.
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out) if args.out else Path(tmp) / "sd"
        n = args.clips * args.frames
        t0, c0 = time.perf_counter(), time.process_time()
        write_dataset(root, clips=args.clips, seed=args.seed, config=cfg, progress=False)
        wall, cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
        per_frame = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / n

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average before timing: {load0:.2f}, after: {load:.2f} "
          "(other processes slow the numbers)")
    print(f"generate_clip only     : {1e3 * statistics.median(gen):7.1f} ms/frame "
          f"(median of {args.clips} clips)")
    print(f"write_dataset (all in) : {1e3 * wall:7.1f} ms/frame wall, {1e3 * cpu:.1f} ms/frame CPU "
          f"(all threads), {60 / (wall * args.frames):.2f} clips/min")
    print(f"projected 200 x 30 frames at {h}x{w}: {wall * 200 * 30 / 60:.1f} min (target < 10 min)")
    print(f"disk: {per_frame / 2**20:.2f} MiB/frame, "
          f"projected {per_frame * 200 * 30 / 2**30:.1f} GiB for 200 x 30")


if __name__ == "__main__":
    main()
