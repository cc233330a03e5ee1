"""`evss eval`: the paper's evaluation protocol (Sec. IV-B) with baselines in the same run.

Protocol. For a labelled frame t and a keyframe interval d, the keyframe is t - d; features are
propagated (and, for EVSS, rectified) frame by frame to t, where the prediction is scored. Every
(t, d) run starts from a fresh segmenter. Where every frame is labelled (SynthDrive, the CamVid
val clip) ``target="all"`` scores every frame that has d frames before it, which is the mean over
all frames of a clip at each interval; ``target="last"`` scores only the last frame of each
sequence, as with Cityscapes' 20th frame.

Reported per method and interval: mIoU and per-class IoU; corrected labels (Eq. 9, the share of
pixels where the final prediction differs from the warped one, at full resolution); average time
per frame from keyframe to labelled frame. Per method: temporal consistency (Eq. 8) of a streaming
run at a fixed interval, with the previous prediction warped by a named flow (SynthDrive: ground
truth, occluded pixels ignored). Methods: the per-frame backbone, warp-only (DFF-style) and EVSS,
plus any separately trained models (``--compare``) and test-time variants (``--variant``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

DEFAULT_INTERVALS = tuple(range(1, 10))

# (sequence, frame) -> (backward flow (2, H, W) of frame t to t-1 in pixels, valid mask (H, W) or None)
FlowLookup = Callable[[int, int], "tuple[np.ndarray, np.ndarray | None]"]


@dataclass(frozen=True)
class Method:
    """One row of the report: a model, how it is run, and what it is called."""

    name: str
    model: Any  # EVSSNet
    mode: str  # "evss" | "warp_only" | "per_frame"
    label_space: str = "camvid"
    segmenter_overrides: tuple[tuple[str, Any], ...] = ()
    flow: Any = None  # a FlowEstimator replacing the model's FlowNet (None: the learned flow)


def warp_labels(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Nearest-neighbour backward warp of a label map (H, W) by flow (2, H, W), border clamped."""
    h, w = labels.shape
    ys, xs = np.mgrid[0:h, 0:w]
    sx = np.clip(np.rint(xs + flow[0]), 0, w - 1).astype(np.intp)
    sy = np.clip(np.rint(ys + flow[1]), 0, h - 1).astype(np.intp)
    return labels[sy, sx]


def _model_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """The frame the model segments: as it is, or downscaled to ``size`` (the memory budget)."""
    if size is None:
        return frame
    from evss.data.video import resize_image
    return resize_image(frame, *size)


def _at_size(result: Any, size: tuple[int, ...]) -> Any:
    """``result`` with its labels (and warped labels) at ``size`` (H, W): upsampled where the model
    segmented a downscaled frame, as they are otherwise."""
    from evss.data.video import resize_labels
    h, w = int(size[0]), int(size[1])
    if result.labels.shape == (h, w):
        return result
    warped = None if result.warped_labels is None else resize_labels(result.warped_labels, h, w)
    return dataclasses.replace(result, labels=resize_labels(result.labels, h, w), warped_labels=warped)


def eval_memory_plan(*, source: Any, config: Any, models: int, budget: Any, allow_downscale: bool,
                     tc: bool, what: str = "evss eval") -> Any:
    """evss.memory.Plan of an evaluation: a sequence's frames and labels in memory, the model
    (with its distortion maps) on one frame, and ``models`` sets of weights."""
    from evss import memory
    first = source.frame(0, 0)  # (H, W, 3)
    h, w = first.shape[:2]
    length = max(source.sequence_length(s) for s in range(source.num_sequences()))
    # frames (3 B/px) and labels (1 B/px) of a sequence; TC: a full-size flow (float32 x 2) and labels
    held = memory.BASELINE + models * memory.weights_bytes(config) + length * 4 * h * w + (16 * h * w if tc else 0)
    return memory.plan(height=h, width=w, model_px=memory.model_pixel_bytes(config, maps=True),
                       buffers=memory.Buffers(held=int(held), writing=0), budget=budget,
                       allow_downscale=allow_downscale, what=what,
                       remedy="; a smaller --size (synthdrive) evaluates smaller frames")


def _segmenter(method: Method, interval: int, device, *, maps: bool = False):
    from evss.segmenter import SegmenterConfig, VideoSegmenter
    cfg = SegmenterConfig(mode=method.mode, keyframe_interval=interval)
    if method.segmenter_overrides:
        cfg = dataclasses.replace(cfg, **dict(method.segmenter_overrides))
    return VideoSegmenter(method.model, config=cfg, device=device, return_maps=maps, flow=method.flow)


def _starts(labelled: Sequence[int], intervals: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
    """keyframe index k -> [(t, d)] of labelled frames t = k + d scored in the run from k."""
    runs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for t in labelled:
        for d in intervals:
            if t - d >= 0:
                runs[t - d].append((t, d))
    return runs


def evaluate(methods: Sequence[Method], source, *, num_classes: int, intervals: Sequence[int] = DEFAULT_INTERVALS,
             target: str = "all", tc_interval: int = 5, tc_flow: FlowLookup | None = None,
             tc_flow_name: str = "none", device=None, max_sequences: int | None = None,
             panel_samples: int = 0, progress: bool = True, rank: int = 0, world: int = 1,
             model_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Run the protocol for every method over ``source`` (a ``SequenceSource``); returns the raw report.

    ``model_size`` (H, W): segment frames downscaled to this size (the memory budget) and score the
    labels upsampled back to the ground truth's size (nearest neighbour).
    """
    import torch
    from tqdm import tqdm

    from evss.metrics import ConfusionMatrix, corrected_labels, mean_iou

    if target not in ("all", "last"):
        raise ValueError(f"target {target!r} is not 'all' or 'last'")
    n_seq = source.num_sequences() if max_sequences is None else min(max_sequences, source.num_sequences())
    seqs = list(range(rank, n_seq, world))
    cms = {m.name: {d: ConfusionMatrix(num_classes) for d in intervals} for m in methods}
    cl = {m.name: {d: [] for d in intervals} for m in methods}
    times = {m.name: {"key": [], "non": []} for m in methods}
    tcs: dict[str, list[float]] = {m.name: [] for m in methods}  # per-sequence mIoU, Eq. (8)
    panels: list[dict[str, np.ndarray]] = []
    total_steps = 0
    bar = tqdm(total=len(seqs) * len(methods), desc="eval", unit="seq·method", disable=not progress or rank != 0)
    for s in seqs:
        length = source.sequence_length(s)
        first = source.frame(s, 0)
        full_size = first.shape[:2]  # what the labels are scored at
        frames = [_model_frame(first if t == 0 else source.frame(s, t), model_size) for t in range(length)]
        del first
        labelled = [t for t in source.labelled_indices(s) if source.label(s, t) is not None]
        if target == "last":
            labelled = labelled[-1:]
        labels = {t: source.label(s, t) for t in labelled}
        runs = _starts(labelled, intervals)
        for m in methods:
            if m.mode == "per_frame":
                seg = _segmenter(m, 1, device)
                scored = {t for t, _ in (p for ps in runs.values() for p in ps)}
                for t in sorted(scored):
                    seg.reset()
                    r = _at_size(seg.step(frames[t]), labels[t].shape)
                    times[m.name]["key"].append(r.seconds)
                    for d in intervals:
                        if t - d >= 0:
                            cms[m.name][d].update(r.labels, labels[t])
                    total_steps += 1
            else:
                want_panel = panel_samples > len(panels) and m.mode == "evss" and rank == 0
                seg = _segmenter(m, 10 ** 9, device, maps=True)  # one keyframe per run
                for k, pairs in sorted(runs.items()):
                    horizon = max(d for _, d in pairs)
                    scored = dict(pairs)  # t -> d
                    seg.reset()
                    for t in range(k, k + horizon + 1):
                        r = seg.step(frames[t])
                        if t in scored:
                            r = _at_size(r, labels[t].shape)
                        total_steps += 1
                        times[m.name]["key" if r.is_keyframe else "non"].append(r.seconds)
                        if t in scored:
                            d = scored[t]
                            cms[m.name][d].update(r.labels, labels[t])
                            if r.warped_labels is not None:
                                cl[m.name][d].append(corrected_labels(r.warped_labels, r.labels))
                            if want_panel and d == max(intervals) and len(panels) < panel_samples:
                                panels.append({"frame": frames[t], "coarse": r.maps["coarse"], "edge": r.maps["edge"],
                                               "fine": r.maps["fine"], "warped": r.warped_labels,
                                               "rectified": r.labels, "gt": labels[t],
                                               "title": f"{m.name} seq {s} frame {t} interval {d}"})
            if tc_flow is not None and length > 1:
                seg = _segmenter(m, tc_interval, device)
                seq_cm, prev = ConfusionMatrix(num_classes), None
                for t in range(length):
                    r = _at_size(seg.step(frames[t]), full_size)
                    if prev is not None:
                        flow, valid = tc_flow(s, t)
                        warped_prev = warp_labels(prev, flow)  # P^w_{t-1 -> t}
                        if valid is not None:  # pixels with no true correspondence are not scored
                            warped_prev = np.where(valid, warped_prev, 255).astype(np.uint8)
                        seq_cm.update(r.labels, warped_prev)
                    prev = r.labels
                tcs[m.name].append(mean_iou(seq_cm.matrix))
            bar.update(1)
    bar.close()
    if world > 1:
        import torch.distributed as dist
        for m in methods:
            for d in intervals:
                cms[m.name][d].all_reduce()
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, (cl, times, tcs))
        cl = {n: {d: sum((g[0][n][d] for g in gathered), []) for d in intervals} for n in cl}
        times = {n: {k: sum((g[1][n][k] for g in gathered), []) for k in ("key", "non")} for n in times}
        per_seq = {n: sum((g[2][n] for g in gathered), []) for n in tcs}
    else:
        per_seq = tcs
    report: dict[str, Any] = {"num_sequences": n_seq, "intervals": list(intervals), "target": target,
                              "tc_interval": tc_interval, "tc_flow": tc_flow_name, "methods": {}}
    for m in methods:
        key_s = float(np.median(times[m.name]["key"])) if times[m.name]["key"] else float("nan")
        non_s = float(np.median(times[m.name]["non"])) if times[m.name]["non"] else float("nan")
        rows = {}
        for d in intervals:
            res = cms[m.name][d].compute()
            ms = key_s * 1000 if m.mode == "per_frame" else (key_s + d * non_s) / (d + 1) * 1000
            rows[str(d)] = {"miou": res["miou"], "per_class_iou": [None if np.isnan(v) else float(v)
                                                                   for v in res["per_class_iou"]],
                            "corrected_labels": float(np.mean(cl[m.name][d])) if cl[m.name][d] else 0.0,
                            "ms_per_frame": ms}
        tc_vals = per_seq[m.name]
        report["methods"][m.name] = {"mode": m.mode, "intervals": rows, "ms_keyframe": key_s * 1000,
                                     "ms_non_keyframe": non_s * 1000,
                                     "temporal_consistency": float(np.mean(tc_vals)) if tc_vals else None}
    report["panels"] = panels
    return report


def component_costs(model, height: int, width: int, *, runs: int = 3) -> dict[str, dict[str, float]]:
    """Per-component GFLOPs and median ms (Fig. 9) at one resolution, batch 1."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from evss.models.distortion import coarse_map, fine_map, fuse
    from evss.models.warp import warp

    device = next(model.parameters()).device
    key, cur = torch.rand(1, 3, height, width, device=device), torch.rand(1, 3, height, width, device=device)
    with torch.inference_mode():
        feat = model.backbone(key)
        flow = model.flow(key, cur)
        warped = warp(feat, flow)
        upd, edge = model.correction(cur, warped)
        parts = {"backbone": lambda: model.backbone(key), "flow": lambda: model.flow(key, cur),
                 "warp": lambda: warp(feat, flow), "conet": lambda: model.correction(cur, warped),
                 "fusion": lambda: fuse(warped, upd, fine_map(coarse_map(warped, feat.argmax(1)),
                                                             model.correction.edge_probability(edge),
                                                             model.distortion), model.distortion)}
        out = {}
        for name, fn in parts.items():
            with FlopCounterMode(display=False) as fc:
                fn()
            ts = []
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            out[name] = {"gflops": fc.get_total_flops() / 1e9, "ms": float(np.median(ts)) * 1000}
    return out


# ---- report ------------------------------------------------------------------------------------

def write_report(report: dict[str, Any], out: Path, *, label_space: str, costs: dict | None = None,
                 command: str = "") -> Path:
    """report.json, report.md and the plots (Figs. 1, 8, 11 and a Fig. 6/12-style panel)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evss.checkpoint import atomic_write
    from evss.classes import LABEL_SPACES
    from evss.visualize import gray

    out.mkdir(parents=True, exist_ok=True)
    space = LABEL_SPACES[label_space]
    panels = report.pop("panels", [])
    if costs:
        report["component_costs"] = costs
    report["command"] = command
    atomic_write(out / "report.json", lambda p: p.write_text(json.dumps(report, indent=2)))
    intervals = report["intervals"]
    methods = report["methods"]

    def save(fig, name):
        atomic_write(out / name, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in methods.items():
        ax.plot(intervals, [100 * m["intervals"][str(d)]["miou"] for d in intervals], marker="o", label=name)
    ax.set(xlabel="keyframe interval", ylabel="mIoU (%)", title="Accuracy vs keyframe interval (Fig. 8)")
    ax.grid(alpha=0.3), ax.legend()
    save(fig, "miou_vs_interval.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in methods.items():
        if m["mode"] == "evss":
            ax.plot(intervals, [100 * m["intervals"][str(d)]["corrected_labels"] for d in intervals], marker="o", label=name)
    ax.set(xlabel="keyframe interval", ylabel="corrected labels (%)", title="Corrected labels, Eq. (9) (Fig. 11)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    save(fig, "corrected_labels.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in methods.items():
        xs = [m["intervals"][str(d)]["ms_per_frame"] for d in intervals]
        ys = [100 * m["intervals"][str(d)]["miou"] for d in intervals]
        ax.plot(xs, ys, marker="o", label=name)
        for d, x, y in zip(intervals, xs, ys):
            if m["mode"] != "per_frame":
                ax.annotate(str(d), (x, y), fontsize=7)
    ax.set(xlabel="average ms per frame (keyframe to labelled frame)", ylabel="mIoU (%)",
           title="Accuracy vs time per frame (Fig. 1)")
    ax.grid(alpha=0.3), ax.legend()
    save(fig, "accuracy_vs_time.png")
    if panels:
        cols = ["frame", "coarse", "edge", "fine", "warped", "rectified", "gt"]
        fig, axes = plt.subplots(len(panels), len(cols), figsize=(2.2 * len(cols), 1.4 * len(panels) + 0.4),
                                 squeeze=False)
        for row, p in zip(axes, panels):
            for ax, c in zip(row, cols):
                img = p[c]
                if c in ("coarse", "edge", "fine"):
                    img = gray(img)
                elif c != "frame":
                    img = space.colorize(img)
                ax.imshow(img), ax.set_xticks([]), ax.set_yticks([])
                ax.set_title(c, fontsize=8)
            row[0].set_ylabel(p["title"].split(" frame")[0], fontsize=6)
        save(fig, "panels.png")

    lines = [f"# Evaluation report", "", f"Command: `{command}`", "",
             f"Sequences: {report['num_sequences']}, target frames: {report['target']}, "
             f"TC: streaming at interval {report['tc_interval']}, flow: {report['tc_flow']}", "",
             "## mIoU (%) by keyframe interval", "",
             "| method | " + " | ".join(str(d) for d in intervals) + " | TC (%) | ms key | ms non-key |",
             "|---|" + "---:|" * (len(intervals) + 3)]
    for name, m in methods.items():
        tc = "n/a" if m["temporal_consistency"] is None else f"{100 * m['temporal_consistency']:.2f}"
        lines.append(f"| {name} | " + " | ".join(f"{100 * m['intervals'][str(d)]['miou']:.2f}" for d in intervals)
                     + f" | {tc} | {m['ms_keyframe']:.1f} | {m['ms_non_keyframe']:.1f} |")
    lines += ["", "## Corrected labels (%), Eq. (9)", "",
              "| method | " + " | ".join(str(d) for d in intervals) + " |", "|---|" + "---:|" * len(intervals)]
    for name, m in methods.items():
        if m["mode"] == "evss":
            lines.append(f"| {name} | " + " | ".join(f"{100 * m['intervals'][str(d)]['corrected_labels']:.2f}"
                                                    for d in intervals) + " |")
    lines += ["", "## Average ms per frame, keyframe to labelled frame", "",
              "| method | " + " | ".join(str(d) for d in intervals) + " |", "|---|" + "---:|" * len(intervals)]
    for name, m in methods.items():
        lines.append(f"| {name} | " + " | ".join(f"{m['intervals'][str(d)]['ms_per_frame']:.1f}" for d in intervals) + " |")
    d_last = str(intervals[-1])
    lines += ["", f"## Per-class IoU (%) at interval {d_last}", "",
              "| method | " + " | ".join(space.names) + " |", "|---|" + "---:|" * space.num_classes]
    for name, m in methods.items():
        vals = m["intervals"][d_last]["per_class_iou"]
        lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{100 * v:.1f}" for v in vals) + " |")
    if costs:
        lines += ["", "## Per-component cost (Fig. 9)", "", f"At {costs.get('size', '?')}:", "",
                  "| part | GFLOPs | ms |", "|---|---:|---:|"]
        for part, c in costs.items():
            if isinstance(c, dict):
                lines.append(f"| {part} | {c['gflops']:.2f} | {c['ms']:.1f} |")
    lines += ["", "Plots: `miou_vs_interval.png`, `corrected_labels.png`, `accuracy_vs_time.png`"
              + (", `panels.png`" if panels else "") + "."]
    atomic_write(out / "report.md", lambda p: p.write_text("\n".join(lines) + "\n"))
    return out / "report.md"


# ---- command line ------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, help="built-in name or checkpoint path of the model to evaluate")
    p.add_argument("--data", choices=("synthdrive", "camvid"), default="synthdrive")
    p.add_argument("--root", type=Path, default=None,
                   help="dataset folder (synthdrive: written by `evss synth`, default: generate on the fly; "
                        "camvid: the SegNet-layout root, e.g. ../shared/data/camvid)")
    p.add_argument("--split", default="val", help="camvid split (default val, the 15 fps labelled clip)")
    p.add_argument("--clips", type=int, default=8, help="synthdrive clips generated on the fly (default 8)")
    p.add_argument("--seed", type=int, default=1000, help="synthdrive seed (default 1000, apart from training)")
    p.add_argument("--size", default="256x512", help="synthdrive frame size HxW")
    p.add_argument("--frames", type=int, default=30, help="synthdrive frames per clip")
    p.add_argument("--intervals", default="1-9", help="keyframe intervals, e.g. 1-9 or 1,3,5,7,9")
    p.add_argument("--target", choices=("all", "last"), default="all",
                   help="score every frame with enough history (all) or the last frame of each sequence")
    p.add_argument("--tc-interval", type=int, default=5, help="keyframe interval of the TC streaming run")
    p.add_argument("--tc-flow", choices=("gt", "learned", "dis", "none"), default=None,
                   help="flow used to warp predictions for TC (default: gt on synthdrive, dis on real video)")
    p.add_argument("--methods", default="per_frame,warp_only,evss", help="baselines and the method, comma separated")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=WEIGHTS",
                   help="another trained model (e.g. a Table IV ablation), evaluated as EVSS in the same run")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]",
                   help="a test-time variant of --weights, e.g. coarse_only=distortion.mode=coarse or "
                        "official_test=segmenter.coarse_reference=keyframe")
    p.add_argument("--flow-sources", default="", metavar="NAME[,NAME]",
                   help="also run warp_only and evss with these flow sources instead of the learned FlowNet "
                        "(dis: OpenCV DIS), as rows NAME[dis]")
    p.add_argument("--max-sequences", type=int, default=None)
    p.add_argument("--panels", type=int, default=3, help="samples in the Fig. 6/12-style panel")
    p.add_argument("--costs-size", default="512x1024", help="resolution of the per-component cost table ('' skips)")
    p.add_argument("--out", type=Path, default=Path("eval-report"))
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget, e.g. 2G (default: half the available memory, at most 3G); frames whose "
                        "estimated peak is over it are segmented smaller and the labels upsampled for scoring")
    p.add_argument("--no-downscale", action="store_true",
                   help="stop with an error instead of segmenting smaller when over --max-memory")


def _intervals(text: str) -> tuple[int, ...]:
    from evss.errors import ConfigError
    try:
        if "-" in text:
            a, b = (int(v) for v in text.split("-"))
            vals = tuple(range(a, b + 1))
        else:
            vals = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--intervals {text!r}: expected e.g. 1-9 or 1,3,5") from None
    if not vals or min(vals) < 1:
        raise ConfigError(f"--intervals {text!r}: intervals must be >= 1")
    return vals


def _hw(text: str, flag: str) -> tuple[int, int]:
    from evss.errors import ConfigError
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not HxW, e.g. 256x512") from None
    if h < 1 or w < 1:
        raise ConfigError(f"{flag} {text!r} must be positive")
    return h, w


def _parse_value(v: str) -> Any:
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _variant(model, config, spec: str) -> tuple[str, Any, tuple]:
    """NAME=KEY=VALUE[,KEY=VALUE]: model config keys (distortion.*, correction.* at test time) or segmenter.*."""
    from evss.config import config_from_json, to_dict
    from evss.errors import ConfigError
    from evss.models.evss import EVSSNet

    name, _, rest = spec.partition("=")
    if not name or not rest:
        raise ConfigError(f"--variant {spec!r}: expected NAME=KEY=VALUE")
    cfg, seg = to_dict(config), []
    for item in rest.split(","):
        key, _, value = item.partition("=")
        if not value:
            raise ConfigError(f"--variant {spec!r}: {item!r} is not KEY=VALUE")
        parts = key.split(".")
        if parts[0] == "segmenter":
            seg.append((parts[1], _parse_value(value)))
            continue
        node = cfg
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--variant {spec!r}: {key!r} is not a config key")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"--variant {spec!r}: unknown key {key!r}")
        node[parts[-1]] = _parse_value(value)
    new = config_from_json(cfg, where=f"--variant {name}")
    if new.correction != config.correction or new.backbone != config.backbone or new.flow != config.flow:
        raise ConfigError(f"--variant {name}: only distortion.* and segmenter.* can change at test time; "
                          "other changes need a separately trained model (--compare)")
    variant = EVSSNet(backbone=model.backbone, flow=model.flow, correction=model.correction,
                      distortion=new.distortion).eval()
    return name, variant, tuple(seg)


def _source(args, label_space_classes):
    """(source, tc_flow lookup or None, default tc flow name, label space)."""
    from evss.errors import EvssError
    if args.data == "synthdrive":
        from evss.data.pairs import SynthDriveSource
        from evss.data.synthdrive import SynthDriveConfig, SynthDriveDataset
        h, w = _hw(args.size, "--size")
        if args.root is not None:
            ds = SynthDriveDataset(args.root)
        else:
            ds = SynthDriveDataset(None, clips=args.clips, seed=args.seed,
                                   config=SynthDriveConfig(height=h, width=w, frames=args.frames))
        cache: dict[int, Any] = {}

        def clip(s):
            if s not in cache:
                cache.clear()
                cache[s] = ds.clip(s)
            return cache[s]

        class _Cached:
            def __len__(self):
                return len(ds)

            def clip(self, s):
                return clip(s)

        def gt_flow(s, t):
            c = clip(s)
            return c.flow_bwd[t], ~c.occlusion[t]

        return SynthDriveSource(_Cached()), gt_flow, "gt", "camvid"
    if args.data == "camvid":
        from evss.data.camvid import CamVid
        root = args.root or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"
        if not root.exists():
            raise EvssError(f"CamVid root {root} does not exist (pass --root)")
        return CamVid(root, args.split, max_step=2), None, "dis", "camvid"
    raise EvssError(f"unknown --data {args.data!r}")


def _estimated_flow(name: str, model, source, device, model_size: tuple[int, int] | None = None) -> FlowLookup:
    """TC flow for real video: an estimator at 1/4 (of ``model_size`` when given), upsampled to full resolution."""
    import torch
    import torch.nn.functional as F

    if name == "dis":
        from evss.flow_sources import make_flow_source
        est = make_flow_source("dis", model)
    else:
        est = model.flow

    def lookup(s, t):
        from evss.segmenter import to_tensor
        first = source.frame(s, t - 1)
        a = to_tensor(_model_frame(first, model_size), device, torch.float32)
        b = to_tensor(_model_frame(source.frame(s, t), model_size), device, torch.float32)
        h, w = a.shape[-2:]
        with torch.inference_mode():
            q = est(a, b)  # (1, 2, h/4, w/4) in 1/4-grid pixels
            full = F.interpolate(q, scale_factor=4, mode="bilinear", align_corners=False)[0, :, :h, :w] * 4
            fh, fw = first.shape[:2]
            if (fh, fw) != (h, w):  # to the frames' own size, the vectors scaled with it
                full = F.interpolate(full[None], size=(fh, fw), mode="bilinear", align_corners=False)[0]
                full = full * torch.tensor([fw / w, fh / h], device=full.device).view(2, 1, 1)
        return full.cpu().numpy(), None

    return lookup


def run(args: argparse.Namespace) -> int:
    import shlex
    import sys

    import torch

    from evss.checkpoint import load_model
    from evss.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    intervals = _intervals(args.intervals)
    world = int(__import__("os").environ.get("WORLD_SIZE", "1"))
    rank = 0
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
        if torch.cuda.is_available():
            torch.cuda.set_device(rank % torch.cuda.device_count())
    device = resolve_device(args.device)
    model, config = load_model(args.weights)
    model = model.to(device).eval()
    source, tc_flow, tc_default, space = _source(args, config.num_classes)
    tc_name = args.tc_flow or tc_default
    from evss.memory import format_bytes, resolve_budget
    mem = eval_memory_plan(source=source, config=config, models=1 + len(args.compare) + len(args.variant),
                           budget=resolve_budget(args.max_memory), allow_downscale=not args.no_downscale,
                           tc=tc_name != "none", what=f"evss eval --data {args.data}")
    model_size = (mem.height, mem.width) if mem.downscaled else None
    if model_size is not None:
        print(f"note: {mem.out_width}x{mem.out_height} frames need about {format_bytes(mem.full_estimate)} with this "
              f"model, over the memory budget of {format_bytes(mem.budget.bytes)} ({mem.budget.source}); segmenting "
              f"at {mem.width}x{mem.height} and scoring the labels upsampled to {mem.out_width}x{mem.out_height} "
              "(--max-memory raises the budget, --no-downscale stops instead)", file=sys.stderr)
    if tc_name == "none":
        tc_flow = None
    elif tc_name in ("learned", "dis"):
        tc_flow = _estimated_flow(tc_name, model, source, device, model_size)
    elif tc_flow is None:
        from evss.errors import EvssError
        raise EvssError(f"--tc-flow gt needs ground-truth flow, which {args.data} does not have")
    methods = []
    own_flow = None  # the rows without a [source] use the flow the weights' CoNet was trained with
    if config.flow_source not in ("learned", "mv"):  # mv needs a video's vectors: the learned FlowNet then
        from evss.flow_sources import make_flow_source
        own_flow = make_flow_source(config.flow_source, model)
    for mode in args.methods.split(","):
        mode = mode.strip()
        if mode not in ("per_frame", "warp_only", "evss"):
            from evss.errors import ConfigError
            raise ConfigError(f"--methods: {mode!r} is not per_frame, warp_only or evss")
        methods.append(Method(name=mode, model=model, mode=mode, label_space=space, flow=own_flow))
    for src in filter(None, (v.strip() for v in args.flow_sources.split(","))):
        from evss.flow_sources import make_flow_source
        for mode in ("warp_only", "evss"):
            methods.append(Method(name=f"{mode}[{src}]", model=model, mode=mode, label_space=space,
                                  flow=make_flow_source(src, model)))
    for spec in args.variant:
        name, variant, seg = _variant(model, config, spec)
        methods.append(Method(name=name, model=variant, mode="evss", label_space=space, segmenter_overrides=seg))
    for spec in args.compare:
        name, _, path = spec.partition("=")
        other, other_cfg = load_model(path)
        if other_cfg.num_classes != config.num_classes:
            from evss.errors import ConfigError
            raise ConfigError(f"--compare {spec}: {other_cfg.num_classes} classes, --weights has {config.num_classes}")
        methods.append(Method(name=name, model=other.to(device).eval(), mode="evss", label_space=space))
    t0 = time.perf_counter()
    report = evaluate(methods, source, num_classes=config.num_classes, intervals=intervals, target=args.target,
                      tc_interval=args.tc_interval, tc_flow=tc_flow, tc_flow_name=tc_name, device=device,
                      max_sequences=args.max_sequences, panel_samples=args.panels, rank=rank, world=world,
                      model_size=model_size)
    report["seconds"] = time.perf_counter() - t0
    report["flow_of_plain_rows"] = config.flow_source if own_flow is not None else "learned"
    report["device"], report["threads"] = str(device), torch.get_num_threads()
    report["weights"], report["preset"] = str(args.weights), config.name
    if rank != 0:
        return 0
    costs = None
    if args.costs_size:
        h, w = _hw(args.costs_size, "--costs-size")
        costs = component_costs(model, h, w)
        costs["size"] = args.costs_size
    md = write_report(report, args.out, label_space=space, costs=costs,
                      command="evss eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]))
    for name, m in report["methods"].items():
        row = " ".join(f"{d}:{100 * m['intervals'][str(d)]['miou']:.1f}" for d in intervals)
        tc = m["temporal_consistency"]
        print(f"{name:>12}  mIoU {row}  TC {'n/a' if tc is None else f'{100 * tc:.1f}'}")
    print(f"wrote {md} ({report['seconds']:.0f} s)")
    return 0
