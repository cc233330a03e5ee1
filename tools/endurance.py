"""Endurance: stream a long generated video through `evss segment` and watch its memory.

    nice -n 10 python tools/endurance.py                         # 10,000 frames at 128x256
    python tools/endurance.py --frames 1000 --preset tiny        # a quick look

The input is generated on the fly with PyAV (a textured street-like pattern panning 3 px per frame,
with two blocks moving against it, H.264); the model is the untrained ``light`` preset (seeded),
saved as a checkpoint and passed with ``--weights``, on the CPU with ``--threads`` (default 1). A
monitor samples the child's VmRSS and VmHWM (peak RSS) from /proc twice a second, alongside the
frame count its progress bar reports. "Start" is the first sample after ``--warmup`` frames (one-off
allocations of the first frames done), "end" the last sample before it exits. The run passes when
the peak RSS grew less than ``--max-growth-mb`` (50) from start to end and the output decodes to
exactly ``--frames`` frames.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

from evss.cli.args import size


def make_video(path: Path, frames: int, height: int, width: int, fps: int = 25) -> None:
    """A pattern panning 3 px per frame plus two blocks moving against it, streamed into H.264."""
    import cv2
    import numpy as np

    from evss.media import VideoWriter
    rng = np.random.default_rng(0)
    period = 3 * 997  # the texture repeats after this many pixels; 997 frames per cycle
    tex = cv2.resize(rng.integers(0, 256, (height // 8 + 1, period // 8 + 1, 3), dtype=np.uint8),
                     (period // 8 * 8 + 8, height // 8 * 8 + 8), interpolation=cv2.INTER_CUBIC)
    tex = np.concatenate([tex, tex[:, :width]], axis=1)  # wrap-around
    with VideoWriter(path, Fraction(fps), height, width, crf=23) as w:
        for t in range(frames):
            x = (3 * t) % period
            img = np.ascontiguousarray(tex[:height, x:x + width])
            for k, (speed, size, colour) in enumerate(((5, 24, (220, 40, 40)), (-4, 32, (40, 40, 220)))):
                cx = int((width / 2 + speed * t) % (width + size)) - size // 2
                cy = height // 3 + k * height // 3
                img[max(cy - size // 2, 0):cy + size // 2, max(cx, 0):max(cx + size, 0)] = colour
            w.write(img)


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in kB (empty once it has exited)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--size", type=size, default="128x256", help="HxW (default 128x256)")
    p.add_argument("--preset", default="light", help="untrained preset to run (default light)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=200, help="frames before the start sample (default 200)")
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    p.add_argument("--work", type=Path, default=None,
                   help="folder for the input, checkpoint and output (default: a temporary folder)")
    p.add_argument("--report", type=Path, default=None, help="also write the figures as JSON here")
    args = p.parse_args()
    h, w = args.size
    work = args.work or Path(tempfile.mkdtemp(prefix="evss-endurance-"))
    work.mkdir(parents=True, exist_ok=True)

    import torch

    from evss.checkpoint import save_model
    from evss.config import build_model, preset
    torch.manual_seed(0)
    weights = save_model(work / f"{args.preset}-untrained.safetensors", build_model(preset(args.preset)).eval(),
                         preset(args.preset))
    src, out = work / "input.mp4", work / "output.mp4"
    t0 = time.perf_counter()
    make_video(src, args.frames, h, w)
    gen_s = time.perf_counter() - t0
    print(f"endurance: {args.frames} frames of {h}x{w} (HxW), preset {args.preset} (untrained), "
          f"threads {args.threads}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, nice {os.nice(0)}; "
          f"input generated in {gen_s:.0f} s ({src.stat().st_size / 2**20:.1f} MiB)", flush=True)

    cmd = [sys.executable, "-m", "evss.cli", "segment", str(src), "-o", str(out), "--weights", str(weights),
           "--threads", str(args.threads), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    seen = {"frames": 0, "text": ""}

    def read_progress() -> None:
        while chunk := proc.stderr.read1(4096):
            seen["text"] = (seen["text"] + chunk.decode(errors="replace"))[-2000:]
            counts = re.findall(r"\| *(\d+)/\d+ \[", seen["text"])
            if counts:
                seen["frames"] = int(counts[-1])

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    samples: list[dict] = []  # {"t", "frames", "rss_kb", "hwm_kb"}
    while proc.poll() is None:
        s = status(proc.pid)
        if s:
            samples.append({"t": round(time.perf_counter() - t0, 1), "frames": seen["frames"],
                            "rss_kb": s["VmRSS"], "hwm_kb": s["VmHWM"]})
        time.sleep(0.5)
    stdout = proc.stdout.read().decode(errors="replace")
    reader.join(timeout=5)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(seen["text"][-1500:], file=sys.stderr)
        print(f"evss segment failed with exit status {proc.returncode}", file=sys.stderr)
        return 1

    import av
    with av.open(str(out)) as c:
        decoded = sum(1 for _ in c.decode(video=0))
    warm = [s for s in samples if s["frames"] >= args.warmup] or samples
    start, end = warm[0], samples[-1]
    growth_mb = (end["hwm_kb"] - start["hwm_kb"]) / 1024
    deciles = []
    for q in range(1, 11):
        at = [s for s in samples if s["frames"] >= q * args.frames // 10]
        if at:
            deciles.append(f"{at[0]['frames']}: {at[0]['rss_kb'] / 1024:.1f} MB")
    result = {
        "frames": args.frames, "size": f"{h}x{w}", "preset": args.preset, "threads": args.threads,
        "output_frames": decoded, "wall_s": round(wall, 1), "fps": round(args.frames / wall, 2),
        "start": {"frames": start["frames"], "rss_mb": round(start["rss_kb"] / 1024, 1),
                  "peak_rss_mb": round(start["hwm_kb"] / 1024, 1)},
        "end": {"frames": end["frames"], "rss_mb": round(end["rss_kb"] / 1024, 1),
                "peak_rss_mb": round(end["hwm_kb"] / 1024, 1)},
        "peak_rss_growth_mb": round(growth_mb, 1), "rss_by_decile": deciles,
        "summary_line": stdout.strip().splitlines()[0] if stdout.strip() else "",
    }
    ok = decoded == args.frames and growth_mb < args.max_growth_mb
    result["pass"] = ok
    print(json.dumps(result, indent=1))
    print(f"{'PASS' if ok else 'FAIL'}: {decoded}/{args.frames} frames out; peak RSS {result['start']['peak_rss_mb']} "
          f"-> {result['end']['peak_rss_mb']} MB (growth {growth_mb:.1f} MB, limit {args.max_growth_mb}); "
          f"{wall:.0f} s, {args.frames / wall:.1f} frames/s")
    if args.report:
        args.report.write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
