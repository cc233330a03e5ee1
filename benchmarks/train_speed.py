"""Wall time per 100 training steps of each stage on this machine.

    python benchmarks/train_speed.py --preset light --crop 256x512 --batch-size 8 --threads 2
    python benchmarks/train_speed.py --preset lite0 --crop 256x448 --stages evss --threads 2   # cache before/after

Each stage runs through ``evss.train.main`` exactly as ``evss train`` does (the same loop, data
pipeline, losses and optimizer; TensorBoard and checkpoints off the clock), for ``--warmup`` +
``--steps`` steps; the time per step is the median of the measured steps' wall times (data loading
included, ``workers=0``), times 100. The evss stage uses a freshly initialised teacher checkpoint:
the cost does not depend on the weights. SynthDrive clips are generated before the clock starts.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from evss import train
from evss.checkpoint import save_model
from evss.cli.args import size
from evss.config import build_model, preset
from evss.device import resolve_device


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="light")
    p.add_argument("--crop", type=size, default=(256, 512), help="HxW (default: the light configs' 256x512)")
    p.add_argument("--batch-size", type=int, default=8, help="default: TrainConfig's 8")
    p.add_argument("--steps", type=int, default=3, help="measured steps per stage")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", default="bf16", choices=("off", "bf16", "fp16"))
    p.add_argument("--stages", nargs="+", default=list(train.STAGES), choices=train.STAGES)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    h, w = a.crop
    total = a.warmup + a.steps
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher.safetensors"
        model_config = preset(a.preset)
        torch.manual_seed(0)
        save_model(teacher, build_model(model_config), model_config)
        common = dict(model=a.preset, crop_size=(h, w), batch_size=a.batch_size, steps=total, checkpoint_every=total,
                      log_every=total, eval_every=0, progress=False, tensorboard=False, threads=a.threads,
                      device=a.device, amp=a.amp, synth_clips=1, synth_frames=8, synth_size=(h, w),
                      flow_pairs=a.batch_size * total, flow_eval_pairs=a.batch_size)
        device = resolve_device(a.device)
        print(f"device {device} ({cpu_name() if device.type == 'cpu' else torch.cuda.get_device_name(device)}), "
              f"torch {torch.__version__}, threads {torch.get_num_threads()}, preset {a.preset}, "
              f"crop {h}x{w}, batch {a.batch_size}, amp {a.amp if device.type == 'cuda' else 'off'}; "
              f"median of {a.steps} steps after {a.warmup} warm-up")
        runs = []
        for stage in a.stages:
            if stage != "evss":
                runs.append((stage, stage, {}))
                continue
            # The EVSS stage as the paper runs it (the frozen backbone twice per step) and with the
            # teacher cache (built before the clock starts), for the learned flow and for DIS.
            runs.append(("evss", "evss", {"teacher": str(teacher)}))
            runs.append(("evss+cache", "evss", {"teacher": str(teacher), "cache": str(Path(tmp) / "cache")}))
            runs.append(("evss+cache+dis", "evss", {"teacher": str(teacher), "cache": str(Path(tmp) / "cache_dis"),
                                                    "flow_source": "dis"}))
        for name, stage, extra in runs:
            config = train.TrainConfig(stage=stage, out_dir=str(Path(tmp) / name), **common, **extra)
            t0 = time.perf_counter()
            result = train.main(config)
            wall = time.perf_counter() - t0
            per_step = statistics.median(r["seconds"] for r in result.losses[a.warmup:])
            print(f"{name:15s} {per_step:7.3f} s/step  ->  {100 * per_step / 60:6.1f} min per 100 steps, "
                  f"{60 / per_step:6.1f} steps/min ({per_step / a.batch_size:.3f} s/sample; whole run incl. setup "
                  f"{wall:.1f} s)")


if __name__ == "__main__":
    main()
