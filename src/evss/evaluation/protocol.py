"""The paper's evaluation protocol (Sec. IV-B), with baselines in the same run.

Protocol. For a labelled frame t and a keyframe interval d, the keyframe is t - d; features are
propagated (and, for EVSS, rectified) frame by frame to t, where the prediction is scored. Every
(t, d) run starts from a fresh segmenter. Where every frame is labelled (SynthDrive, the CamVid
val clip) ``target="all"`` scores every frame that has d frames before it, which is the mean over
all frames of a clip at each interval; ``target="last"`` scores only the last frame of each
sequence, as with Cityscapes' 20th frame. ``target="single"`` is for single frames (the pix2pix
Cityscapes files): no frame has a keyframe before it, so only per-frame rows are scored, every
labelled frame as its own keyframe, reported at interval 1 (``evss segment --keyframe-interval 1``).
A model in another label space than the data's is scored through its label sets (``Method.label_sets``:
e.g. a Cityscapes-19 model on CamVid-11 labels, each pixel the CamVid class whose Cityscapes classes
have the largest summed probability).

Reported per method and interval: mIoU and per-class IoU; corrected labels (Eq. 9, the share of
pixels where the final prediction differs from the warped one, at full resolution); average time
per frame from keyframe to labelled frame. Per method: temporal consistency (Eq. 8) of a streaming
run at a fixed interval, with the previous prediction warped by a named flow (SynthDrive: ground
truth, occluded pixels ignored), also per clip and split by where the pair (t - 1, t) falls in the
keyframe interval (t mod n; 0: t is a keyframe), which shows where a method gains or loses
consistency (the keyframe switch against the propagated frames). Methods: the per-frame backbone,
warp-only (DFF-style) and EVSS, plus any separately trained models and test-time variants
(:mod:`evss.evaluation.variants`). The report is written by :mod:`evss.evaluation.report`.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from evss import memory
from evss.evaluation.data import FlowLookup, model_frame, motion_fields
from evss.flow_sources import MVFlow
from evss.media import resize_labels
from evss.metrics import ConfusionMatrix, TemporalConsistency, corrected_labels
from evss.segmenter import SegmenterConfig, VideoSegmenter

DEFAULT_INTERVALS = tuple(range(1, 10))
METHODS = ("per_frame", "warp_only", "evss")
TARGETS = ("all", "last", "single")


@dataclass(frozen=True)
class Method:
    """One row of the report: a model, how it is run, and what it is called."""

    name: str
    model: Any  # EVSSNet
    mode: str  # "evss" | "warp_only" | "per_frame"
    label_space: str = "camvid"
    segmenter_overrides: tuple[tuple[str, Any], ...] = ()
    flow: Any = None  # a FlowEstimator replacing the model's FlowNet (None: the learned flow)
    label_sets: Any = None  # (K, C) bool: score in the K-class space of the data (evss.label_sets.collapse_table)


@dataclass
class _Tally:
    """What the protocol gathers for one method: confusion matrices and corrected labels (Eq. 9) per
    interval, step times of keyframes ("key") and non-keyframes ("non"), temporal consistency (Eq. 8)."""

    cms: dict[int, ConfusionMatrix]
    corrected: dict[int, list[float]]
    times: dict[str, list[float]]
    tc: TemporalConsistency

    @classmethod
    def empty(cls, num_classes: int, intervals: Sequence[int], tc_interval: int) -> _Tally:
        return cls(cms={d: ConfusionMatrix(num_classes) for d in intervals}, corrected={d: [] for d in intervals},
                   times={"key": [], "non": []}, tc=TemporalConsistency(num_classes, positions=tc_interval))


@dataclass
class _Sequence:
    """One sequence in memory: the frames the model segments, their codec fields (None: no mv row),
    the labels scored, the runs (keyframe k -> [(t, d)]) and the size the labels are scored at."""

    index: int
    frames: list[np.ndarray]
    fields: list | None
    labels: dict[int, np.ndarray]
    runs: dict[int, list[tuple[int, int]]]
    full_size: tuple[int, int]


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
    return VideoSegmenter(method.model, config=cfg, device=device, return_maps=maps, flow=method.flow,
                          label_sets=method.label_sets)


def _step(seg: VideoSegmenter, method: Method, seq: _Sequence, t: int):
    """One segmenter step on frame t; a codec-vector flow source is fed that frame's field first."""
    if isinstance(method.flow, MVFlow):
        method.flow.feed(seq.fields[t])
    return seg.step(seq.frames[t])


def _starts(labelled: Sequence[int], intervals: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
    """keyframe index k -> [(t, d)] of labelled frames t = k + d scored in the run from k."""
    runs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for t in labelled:
        for d in intervals:
            if t - d >= 0:
                runs[t - d].append((t, d))
    return runs


def _load_sequence(source: Any, s: int, *, methods: Sequence[Method], intervals: Sequence[int], target: str,
                   model_size: tuple[int, int] | None) -> _Sequence:
    """Sequence ``s`` read into memory, its frames at ``model_size`` (None: as they are)."""
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
    runs = {t: [(t, 1)] for t in labelled} if target == "single" else _starts(labelled, intervals)
    return _Sequence(s, frames, fields, labels, runs, full_size)


def _score_per_frame(m: Method, seq: _Sequence, tally: _Tally, *, device) -> None:
    """The per-frame backbone on every scored frame, counted at each interval that frame is scored at."""
    seg = _segmenter(m, 1, device)
    scored: dict[int, list[int]] = defaultdict(list)  # t -> the intervals t is scored at
    for pairs in seq.runs.values():
        for t, d in pairs:
            scored[t].append(d)
    for t in sorted(scored):
        seg.reset()
        r = _at_size(seg.step(seq.frames[t]), seq.labels[t].shape)
        tally.times["key"].append(r.seconds)
        for d in scored[t]:
            tally.cms[d].update(r.labels, seq.labels[t])


def _score_runs(m: Method, seq: _Sequence, tally: _Tally, *, intervals: Sequence[int], device,
                panels: list[dict[str, Any]] | None, panel_samples: int) -> None:
    """Warp-only or EVSS: each run from its keyframe k to the farthest frame scored from k, scoring
    frame t = k + d at interval d; ``panels`` (None: none wanted) takes samples at the largest d."""
    seg = _segmenter(m, 10 ** 9, device, maps=True)  # one keyframe per run
    for k, pairs in sorted(seq.runs.items()):
        horizon = max(d for _, d in pairs)
        scored = dict(pairs)  # t -> d
        seg.reset()
        for t in range(k, k + horizon + 1):
            r = _step(seg, m, seq, t)
            if t in scored:
                r = _at_size(r, seq.labels[t].shape)
            tally.times["key" if r.is_keyframe else "non"].append(r.seconds)
            if t not in scored:
                continue
            d = scored[t]
            tally.cms[d].update(r.labels, seq.labels[t])
            if r.warped_labels is not None:
                tally.corrected[d].append(corrected_labels(r.warped_labels, r.labels))
            if panels is not None and d == max(intervals) and len(panels) < panel_samples:
                panels.append({"frame": seq.frames[t], "coarse": r.maps["coarse"], "edge": r.maps["edge"],
                               "fine": r.maps["fine"], "warped": r.warped_labels, "rectified": r.labels,
                               "gt": seq.labels[t], "title": f"{m.name} seq {seq.index} frame {t} interval {d}"})


def _stream_tc(m: Method, seq: _Sequence, tally: _Tally, *, tc_interval: int, tc_flow: FlowLookup, device) -> None:
    """Eq. (8) on a streaming run at ``tc_interval``: each prediction against the previous one warped
    by ``tc_flow``, per sequence and pooled by the pair's place t mod ``tc_interval``."""
    seg = _segmenter(m, tc_interval, device)
    prev = None
    for t in range(len(seq.frames)):
        r = _at_size(_step(seg, m, seq, t), seq.full_size)
        if prev is not None:
            flow, valid = tc_flow(seq.index, t)
            tally.tc.add_pair(prev, r.labels, flow, valid, position=t % tc_interval)
        prev = r.labels
    tally.tc.end_sequence()


def _join_ranks(tallies: dict[str, _Tally], intervals: Sequence[int], world: int) -> None:
    """Every rank's counts summed and lists joined in rank order (under torchrun)."""
    for tally in tallies.values():
        for d in intervals:
            tally.cms[d].all_reduce()
        tally.tc.all_reduce()
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, {n: (t.corrected, t.times) for n, t in tallies.items()})
    for n, tally in tallies.items():
        tally.corrected = {d: sum((g[n][0][d] for g in gathered), []) for d in intervals}
        tally.times = {k: sum((g[n][1][k] for g in gathered), []) for k in ("key", "non")}


def _method_report(m: Method, tally: _Tally, intervals: Sequence[int]) -> dict[str, Any]:
    """A method's entry of the report: per interval mIoU, per-class IoU, corrected labels and ms per
    frame (keyframe plus d non-keyframes, from the median step times); TC overall, per clip, by place."""
    key_s = float(np.median(tally.times["key"])) if tally.times["key"] else float("nan")
    non_s = float(np.median(tally.times["non"])) if tally.times["non"] else float("nan")
    rows = {}
    for d in intervals:
        res = tally.cms[d].compute()
        ms = key_s * 1000 if m.mode == "per_frame" else (key_s + d * non_s) / (d + 1) * 1000
        rows[str(d)] = {"miou": res["miou"], "per_class_iou": [None if np.isnan(v) else float(v)
                                                               for v in res["per_class_iou"]],
                        "corrected_labels": float(np.mean(tally.corrected[d])) if tally.corrected[d] else 0.0,
                        "ms_per_frame": ms}
    tc_vals = tally.tc.per_sequence
    return {"mode": m.mode, "intervals": rows, "ms_keyframe": key_s * 1000, "ms_non_keyframe": non_s * 1000,
            "temporal_consistency": tally.tc.compute() if tc_vals else None,
            "tc_per_sequence": [float(v) for v in tc_vals], "tc_by_position": tally.tc.by_position()}


def _check_target(target: str, methods: Sequence[Method], intervals: Sequence[int]) -> None:
    """ValueError for a target the methods or intervals cannot be scored at (single frames: per_frame at 1)."""
    if target not in TARGETS:
        raise ValueError(f"target {target!r} is not one of {TARGETS}")
    if target == "single":
        other = [m.name for m in methods if m.mode != "per_frame"]
        if other or tuple(intervals) != (1,):
            raise ValueError("target 'single' (single frames) scores per_frame rows at interval 1 only, got "
                             f"rows {other or 'per_frame'} at intervals {list(intervals)}")


def evaluate(methods: Sequence[Method], source, *, num_classes: int, intervals: Sequence[int] = DEFAULT_INTERVALS,
             target: str = "all", tc_interval: int = 5, tc_flow: FlowLookup | None = None,
             tc_flow_name: str = "none", device=None, max_sequences: int | None = None,
             panel_samples: int = 0, progress: bool = True, rank: int = 0, world: int = 1,
             model_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Run the protocol for every method over ``source`` (a ``SequenceSource``); returns the raw report.

    ``tc_flow``: the flow TC warps with (None: no TC). ``model_size`` (H, W): segment frames
    downscaled to this size (the memory budget) and score the labels upsampled back to the ground
    truth's size (nearest neighbour). ``rank``/``world``: this process's share of the sequences
    under torch.distributed; every rank returns the joined report. ``num_classes``: of the scored
    labels (the sets' count where the methods have ``label_sets``).
    """
    _check_target(target, methods, intervals)
    n_seq = source.num_sequences() if max_sequences is None else min(max_sequences, source.num_sequences())
    seqs = list(range(rank, n_seq, world))
    tallies = {m.name: _Tally.empty(num_classes, intervals, tc_interval) for m in methods}
    panels: list[dict[str, Any]] = []
    bar = tqdm(total=len(seqs) * len(methods), desc="eval", unit="seq·method", disable=not progress or rank != 0)
    for s in seqs:
        seq = _load_sequence(source, s, methods=methods, intervals=intervals, target=target, model_size=model_size)
        for m in methods:
            tally = tallies[m.name]
            if m.mode == "per_frame":
                _score_per_frame(m, seq, tally, device=device)
            else:
                want_panel = panel_samples > len(panels) and m.mode == "evss" and rank == 0
                _score_runs(m, seq, tally, intervals=intervals, device=device,
                            panels=panels if want_panel else None, panel_samples=panel_samples)
            if tc_flow is not None and len(seq.frames) > 1:
                _stream_tc(m, seq, tally, tc_interval=tc_interval, tc_flow=tc_flow, device=device)
            bar.update(1)
    bar.close()
    if world > 1:
        _join_ranks(tallies, intervals, world)
    report: dict[str, Any] = {"num_sequences": n_seq, "intervals": list(intervals), "target": target,
                              "tc_interval": tc_interval, "tc_flow": tc_flow_name,
                              "methods": {m.name: _method_report(m, tallies[m.name], intervals) for m in methods}}
    report["panels"] = panels
    return report
