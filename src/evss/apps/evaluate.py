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
truth, occluded pixels ignored), also per clip and split by where the pair (t - 1, t) falls in the
keyframe interval (t mod n; 0: t is a keyframe), which shows where a method gains or loses
consistency (the keyframe switch against the propagated frames). Methods: the per-frame backbone,
warp-only (DFF-style) and EVSS, plus any separately trained models (``--compare``) and test-time
variants (``--variant``). The report is written by :mod:`evss.apps.report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from evss import memory
from evss.apps._eval_data import FlowLookup, estimated_flow, eval_source, model_frame, motion_fields
from evss.apps.report import write_report
from evss.checkpoint import load_model
from evss.config import apply_overrides, parse_override
from evss.device import init_distributed
from evss.errors import ConfigError, EvssError
from evss.flow_sources import MVFlow, make_flow_source
from evss.media import resize_labels
from evss.memory import format_bytes, resolve_budget
from evss.metrics import ConfusionMatrix, corrected_labels, mean_iou, warp_labels
from evss.models.distortion import merge
from evss.models.evss import EVSSNet
from evss.models.warp import warp
from evss.segmenter import SegmenterConfig, VideoSegmenter

DEFAULT_INTERVALS = tuple(range(1, 10))
METHODS = ("per_frame", "warp_only", "evss")


@dataclass(frozen=True)
class Method:
    """One row of the report: a model, how it is run, and what it is called."""

    name: str
    model: Any  # EVSSNet
    mode: str  # "evss" | "warp_only" | "per_frame"
    label_space: str = "camvid"
    segmenter_overrides: tuple[tuple[str, Any], ...] = ()
    flow: Any = None  # a FlowEstimator replacing the model's FlowNet (None: the learned flow)


def _at_size(result: Any, size: tuple[int, ...]) -> Any:
    """``result`` with its labels (and warped labels) at ``size`` (H, W): upsampled where the model
    segmented a downscaled frame, as they are otherwise."""
    h, w = int(size[0]), int(size[1])
    if result.labels.shape == (h, w):
        return result
    warped = None if result.warped_labels is None else resize_labels(result.warped_labels, h, w)
    return dataclasses.replace(result, labels=resize_labels(result.labels, h, w), warped_labels=warped)


def eval_memory_plan(*, source: Any, config: Any, models: int, budget: Any, allow_downscale: bool,
                     tc: bool, what: str = "evss eval") -> Any:
    """evss.memory.Plan of an evaluation: a sequence's frames and labels in memory, the model
    (with its distortion maps) on one frame, and ``models`` sets of weights."""
    first = source.frame(0, 0)  # (H, W, 3)
    h, w = first.shape[:2]
    length = max(source.sequence_length(s) for s in range(source.num_sequences()))
    # frames (3 B/px) and labels (1 B/px) of a sequence; TC: a full-size flow (float32 x 2) and labels
    held = memory.BASELINE + models * memory.weights_bytes(config) + length * 4 * h * w + (16 * h * w if tc else 0)
    return memory.plan(height=h, width=w, model_px=memory.model_pixel_bytes(config, maps=True),
                       buffers=memory.Buffers(held=int(held), writing=0), budget=budget,
                       allow_downscale=allow_downscale, what=what,
                       remedy="; a smaller --size (synthdrive) evaluates smaller frames")


def _segmenter(method: Method, interval: int, device, *, maps: bool = False) -> VideoSegmenter:
    cfg = SegmenterConfig(mode=method.mode, keyframe_interval=interval)
    if method.segmenter_overrides:
        cfg = dataclasses.replace(cfg, **dict(method.segmenter_overrides))
    return VideoSegmenter(method.model, config=cfg, device=device, return_maps=maps, flow=method.flow)


def _step(seg: VideoSegmenter, method: Method, frames: list[np.ndarray], fields: list | None, t: int):
    """One segmenter step on frame t; a codec-vector flow source is fed that frame's field first."""
    if isinstance(method.flow, MVFlow):
        method.flow.feed(fields[t])
    return seg.step(frames[t])


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
    if target not in ("all", "last"):
        raise ValueError(f"target {target!r} is not 'all' or 'last'")
    n_seq = source.num_sequences() if max_sequences is None else min(max_sequences, source.num_sequences())
    seqs = list(range(rank, n_seq, world))
    cms = {m.name: {d: ConfusionMatrix(num_classes) for d in intervals} for m in methods}
    cl = {m.name: {d: [] for d in intervals} for m in methods}
    times = {m.name: {"key": [], "non": []} for m in methods}
    tcs: dict[str, list[float]] = {m.name: [] for m in methods}  # per-sequence mIoU, Eq. (8)
    # Eq. (8)'s pairs (t - 1, t) pooled by t mod tc_interval: 0 is the pair that ends at a keyframe
    # (the switch from propagated to fresh features), 1 the first non-keyframe, and so on.
    tc_pos = {m.name: [ConfusionMatrix(num_classes) for _ in range(tc_interval)] for m in methods}
    panels: list[dict[str, np.ndarray]] = []
    total_steps = 0
    bar = tqdm(total=len(seqs) * len(methods), desc="eval", unit="seq·method", disable=not progress or rank != 0)
    for s in seqs:
        length = source.sequence_length(s)
        first = source.frame(s, 0)
        full_size = first.shape[:2]  # what the labels are scored at
        frames = [model_frame(first if t == 0 else source.frame(s, t), model_size) for t in range(length)]
        del first
        fields = motion_fields(frames) if any(isinstance(m.flow, MVFlow) for m in methods) else None
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
                        r = _step(seg, m, frames, fields, t)
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
                    r = _at_size(_step(seg, m, frames, fields, t), full_size)
                    if prev is not None:
                        flow, valid = tc_flow(s, t)
                        warped_prev = warp_labels(prev, flow)  # P^w_{t-1 -> t}
                        if valid is not None:  # pixels with no true correspondence are not scored
                            warped_prev = np.where(valid, warped_prev, 255).astype(np.uint8)
                        pair = ConfusionMatrix(num_classes)
                        pair.update(r.labels, warped_prev)
                        seq_cm.merge(pair)
                        tc_pos[m.name][t % tc_interval].merge(pair)
                    prev = r.labels
                tcs[m.name].append(mean_iou(seq_cm.matrix))
            bar.update(1)
    bar.close()
    if world > 1:
        for m in methods:
            for d in intervals:
                cms[m.name][d].all_reduce()
            for cm in tc_pos[m.name]:
                cm.all_reduce()
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
                                     "temporal_consistency": float(np.mean(tc_vals)) if tc_vals else None,
                                     "tc_per_sequence": [float(v) for v in tc_vals],
                                     "tc_by_position": [mean_iou(cm.matrix) if cm.matrix.any() else None
                                                        for cm in tc_pos[m.name]]}
    report["panels"] = panels
    return report


def component_costs(model: EVSSNet, height: int, width: int, *, runs: int = 3) -> dict[str, dict[str, float]]:
    """Per-component GFLOPs and median ms (Fig. 9) at one resolution, batch 1."""
    device = next(model.parameters()).device
    key, cur = torch.rand(1, 3, height, width, device=device), torch.rand(1, 3, height, width, device=device)
    with torch.inference_mode():
        feat = model.backbone(key)  # (1, C, H/4, W/4)
        flow = model.flow(key, cur)  # (1, 2, H/4, W/4)
        warped = warp(feat, flow)
        upd, edge = model.correction(cur, warped)
        key_pred = feat.argmax(1)  # (1, H/4, W/4)
        parts = {"backbone": lambda: model.backbone(key), "flow": lambda: model.flow(key, cur),
                 "warp": lambda: warp(feat, flow), "conet": lambda: model.correction(cur, warped),
                 "fusion": lambda: merge(warped, upd, model.correction.edge_probability(edge), key_pred,
                                         model.distortion)}  # Eqs. (3)-(5)
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


def variant(model: EVSSNet, config: Any, spec: str) -> tuple[str, EVSSNet, tuple[tuple[str, Any], ...]]:
    """``--variant NAME=KEY=VALUE[,KEY=VALUE]``: model config keys (distortion.* at test time) or
    segmenter.*; values read by :func:`evss.config.parse_override`."""
    name, _, rest = spec.partition("=")
    if not name or not rest:
        raise ConfigError(f"--variant {spec!r}: expected NAME=KEY=VALUE")
    what = f"--variant {name}"
    overrides, seg = {}, []
    for item in rest.split(","):
        key, value = parse_override(item, what=what)
        if key.startswith("segmenter."):
            seg.append((key.removeprefix("segmenter."), value))
        else:
            overrides[key] = value
    new = apply_overrides(config, overrides, what=what)
    if new.correction != config.correction or new.backbone != config.backbone or new.flow != config.flow:
        raise ConfigError(f"--variant {name}: only distortion.* and segmenter.* can change at test time; "
                          "other changes need a separately trained model (--compare)")
    model = EVSSNet(backbone=model.backbone, flow=model.flow, correction=model.correction,
                    distortion=new.distortion).eval()
    return name, model, tuple(seg)


def _trained_flow(config: Any, model: EVSSNet) -> Any:
    """The flow a checkpoint's CoNet was trained with, as a Method's ``flow`` (None: its learned
    FlowNet; also for mv, which needs a video's vectors)."""
    return make_flow_source(config.flow_source, model) if config.flow_source not in ("learned", "mv") else None


def _methods(args: argparse.Namespace, model: EVSSNet, config: Any, device: torch.device,
             space: str) -> list[Method]:
    """The rows: --methods with the weights' own flow, --flow-sources, --variant and --compare."""
    methods = []
    own_flow = _trained_flow(config, model)  # the rows without a [source]
    prop = (("propagation", args.propagation),)  # every row propagates the same way
    for mode in args.methods.split(","):
        mode = mode.strip()
        if mode not in METHODS:
            raise ConfigError(f"--methods: {mode!r} is not per_frame, warp_only or evss")
        methods.append(Method(name=mode, model=model, mode=mode, label_space=space, flow=own_flow,
                              segmenter_overrides=prop))
    for src in filter(None, (v.strip() for v in args.flow_sources.split(","))):
        for mode in ("warp_only", "evss"):
            methods.append(Method(name=f"{mode}[{src}]", model=model, mode=mode, label_space=space,
                                  flow=make_flow_source(src, model), segmenter_overrides=prop))
    for spec in args.variant:  # the same CoNet, so the same flow as the plain evss row
        name, other, seg = variant(model, config, spec)
        methods.append(Method(name=name, model=other, mode="evss", label_space=space, segmenter_overrides=prop + seg,
                              flow=own_flow))
    for spec in args.compare:
        name, _, path = spec.partition("=")
        other, other_cfg = load_model(path)
        if other_cfg.num_classes != config.num_classes:
            raise ConfigError(f"--compare {spec}: {other_cfg.num_classes} classes, --weights has {config.num_classes}")
        other = other.to(device).eval()  # with the flow its own CoNet was trained with
        methods.append(Method(name=name, model=other, mode="evss", label_space=space,
                              flow=_trained_flow(other_cfg, other), segmenter_overrides=prop))
    return methods


def run(args: argparse.Namespace) -> int:
    memory.return_freed_memory()  # peaks that follow the memory plan, whatever the thread timing
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime = init_distributed(args.device)  # under torchrun: one process per device, sequences split by rank
    try:
        return _run(args, runtime.device, rank=runtime.rank, world=runtime.world_size)
    finally:
        runtime.close()


def _run(args: argparse.Namespace, device: torch.device, *, rank: int, world: int) -> int:
    intervals = args.intervals
    model, config = load_model(args.weights)
    model = model.to(device).eval()
    source, tc_flow, tc_default, space = eval_source(args)
    tc_name = args.tc_flow or tc_default
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
        tc_flow = estimated_flow(tc_name, model, source, device, model_size)
    elif tc_flow is None:
        raise EvssError(f"--tc-flow gt needs ground-truth flow, which {args.data} does not have")
    methods = _methods(args, model, config, device, space)
    t0 = time.perf_counter()
    report = evaluate(methods, source, num_classes=config.num_classes, intervals=intervals, target=args.target,
                      tc_interval=args.tc_interval, tc_flow=tc_flow, tc_flow_name=tc_name, device=device,
                      max_sequences=args.max_sequences, panel_samples=args.panels, rank=rank, world=world,
                      model_size=model_size)
    report["seconds"] = time.perf_counter() - t0
    report["flow_of_plain_rows"] = config.flow_source if config.flow_source not in ("learned", "mv") else "learned"
    report["device"], report["threads"] = str(device), torch.get_num_threads()
    report["weights"], report["preset"] = str(args.weights), config.name
    if rank != 0:
        return 0
    costs = None
    if args.costs_size:
        h, w = args.costs_size
        costs = component_costs(model, h, w)
        costs["size"] = f"{h}x{w}"
    md = write_report(report, args.out, label_space=space, costs=costs,
                      command="evss eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]))
    for name, m in report["methods"].items():
        row = " ".join(f"{d}:{100 * m['intervals'][str(d)]['miou']:.1f}" for d in intervals)
        tc = m["temporal_consistency"]
        print(f"{name:>12}  mIoU {row}  TC {'n/a' if tc is None else f'{100 * tc:.1f}'}")
    print(f"wrote {md} ({report['seconds']:.0f} s)")
    return 0
